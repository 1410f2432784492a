"""Pay links: made by a shop for a customer's phone or e-mail, paid once (or again, reusable) from a wallet
whose owner gives its PIN and the one-time code sent to the contact; in part where allowed; expired, cancelled,
and kept across a restart; on both engines."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.wallet import ChallengeReply, LinkReply, PaymentReply, WalletResult, events_of
from ledger.wallet._domain import CHALLENGE_SECONDS, CHALLENGE_TRIES, LINK_CHALLENGES_FREE, LINK_PIN_FAILURES_MAX
from ledger.wallet._links import contact_problem, masked_contact
from ledger.wallet._pins import pin_matches
from tests.unit.test_wallet_domain import available, engines, opened, shop, top_up
from tests.unit.test_wallet_paycodes import set_pin
from tests.wallets import WalletBench

PIN = "4711"


@pytest.fixture(params=engines(), ids=lambda cls: cls.__name__)
def links(request: pytest.FixtureRequest) -> WalletBench:
    bench = WalletBench(request.param)
    shop(bench, fee_fixed=0, partial_payment=True)
    opened(bench)
    assert top_up(bench, 10_000, "t1").ok
    set_pin(bench, PIN)
    return bench


def made(bench: WalletBench, key: str = "link-1", amount: int = 2_500, **fields: Any) -> LinkReply:
    with bench.op() as op:
        return bench.wallets.create_pay_link(
            op, "shop-a", amount, str(fields.pop("reference", "order 1001")), str(fields.pop("description", "")),
            str(fields.pop("contact", "+4915112345678")), str(fields.pop("customer", "")),
            int(fields.pop("seconds", 0)), key, **fields,
        )  # fmt: skip


def start(bench: WalletBench, token: str, customer: str = "anna", pin: str | None = PIN,
          challenge: int = 1, code: str = "123456") -> ChallengeReply:  # fmt: skip
    pin_ok = None if pin is None else pin_matches(bench.wallets.link_pin_hash(token, customer), pin)
    with bench.op() as op:
        return bench.wallets.start_pay_link_payment(op, token, customer, pin_ok, challenge, code)


def pay(bench: WalletBench, token: str, challenge: int = 1, code: str = "123456") -> PaymentReply:
    with bench.op() as op:
        return bench.wallets.pay_pay_link(op, token, challenge, code)


def kinds_of(bench: WalletBench) -> list[str]:
    return [event.type for seq, records in enumerate(bench.journal, 1) for event in events_of(seq, records)]


def read(bench: WalletBench, link: LinkReply, by_token: bool = False) -> LinkReply:
    with bench.op() as op:
        if by_token:
            return bench.wallets.pay_link(op, "", 0, link.token)
        return bench.wallets.pay_link(op, "shop-a", link.link_id)


def test_a_link_is_paid_once_with_the_pin_and_the_one_time_code(links: WalletBench) -> None:
    link = made(links, description="Two tickets\nrow 5")
    assert link.ok and link.status == "open" and len(link.token) == 26 and link.currency == "EUR"
    again = made(links, description="Two tickets\nrow 5")
    assert again.replayed and again.token == link.token
    assert made(links).result is WalletResult.IDEMPOTENCY_KEY_REUSED
    public = read(links, link, by_token=True)
    assert public.contact == "" and public.amount == 2_500 and public.description == "Two tickets\nrow 5"
    challenge = start(links, link.token)
    assert challenge.ok and challenge.contact == "+4915112345678" and challenge.sent_to == "+49••••••••678"
    assert challenge.link is not None and challenge.link.reference == "order 1001"
    wrong = pay(links, link.token, code="654321")
    assert wrong.result is WalletResult.CHALLENGE_INVALID and f"{CHALLENGE_TRIES - 1} more" in wrong.message
    paid = pay(links, link.token)
    assert paid.ok and paid.paid == 2_500 and available(links) == 7_500
    # the page sent it twice (a double tap, a lost reply): the same payment, nothing more moves
    again = pay(links, link.token)
    assert again.replayed and again.payment_id == paid.payment_id and available(links) == 7_500
    after = read(links, link)
    assert (after.status, after.paid, after.payments, after.payment_id) == ("paid", 2_500, 1, paid.payment_id)
    # paid: no new challenge, no new payment
    assert start(links, link.token, challenge=2).result is WalletResult.REQUEST_NOT_OPEN
    kinds = kinds_of(links)
    assert kinds.count("pay_link.created") == 1 and kinds.count("pay_link.code_sent") == 1
    assert kinds.count("pay_link.code_refused") == 1 and kinds.count("pay_link.paid") == 1


def test_a_wrong_pin_or_an_unknown_wallet_gets_one_answer_and_the_pin_locks(links: WalletBench) -> None:
    link = made(links)
    unknown = start(links, link.token, customer="nobody")
    wrong = start(links, link.token, pin="9517")
    assert unknown.result is wrong.result is WalletResult.PIN_INVALID and unknown.message == wrong.message
    assert start(links, link.token, pin=None).result is WalletResult.PIN_REQUIRED
    # for another customer's link, the right PIN of one's own wallet is refused the same way
    other = made(links, "link-2", customer="ben")
    assert start(links, other.token).message == wrong.message
    for _ in range(3):  # the tenant's default allows 5 tries in a row
        start(links, link.token, pin="9517")
    locked = start(links, link.token)
    assert locked.result is WalletResult.PIN_LOCKED and available(links) == 10_000
    assert "anna" not in locked.message


def test_a_link_takes_a_bounded_number_of_wrong_pins(links: WalletBench) -> None:
    link = made(links)
    for number in range(LINK_PIN_FAILURES_MAX):
        assert start(links, link.token, customer=f"guess-{number}").result is WalletResult.PIN_INVALID
    assert start(links, link.token).result is WalletResult.PIN_LOCKED


def test_one_time_codes_expire_are_used_up_and_are_bounded(links: WalletBench) -> None:
    link = made(links)
    assert start(links, link.token, challenge=1).ok
    links.clock.advance(CHALLENGE_SECONDS)
    assert pay(links, link.token, challenge=1).result is WalletResult.CHALLENGE_INVALID
    assert start(links, link.token, challenge=2).ok
    for _ in range(CHALLENGE_TRIES):
        assert pay(links, link.token, challenge=2, code="000000").result is WalletResult.CHALLENGE_INVALID
    assert pay(links, link.token, challenge=2).result is WalletResult.CHALLENGE_INVALID  # used up, even right
    assert pay(links, link.token, challenge=99).result is WalletResult.CHALLENGE_INVALID
    for number in range(3, LINK_CHALLENGES_FREE + 1):
        assert start(links, link.token, challenge=number).ok
    assert start(links, link.token, challenge=500).result is WalletResult.LIMIT_EXCEEDED
    assert available(links) == 10_000


def test_a_partial_link_pays_what_the_wallet_holds_and_a_reusable_one_pays_again(links: WalletBench) -> None:
    partial = made(links, "big", amount=12_000, partial=True)
    assert start(links, partial.token).ok
    paid = pay(links, partial.token)
    assert paid.ok and paid.paid == 10_000 and paid.remainder == 2_000 and available(links) == 0
    assert read(links, partial).status == "partially_paid" and read(links, partial).paid == 10_000
    assert top_up(links, 5_000, "t2").ok
    reusable = made(links, "tab", amount=1_000, reusable=True)
    for number in (1, 2, 3):
        assert start(links, reusable.token, challenge=10 + number).ok
        assert pay(links, reusable.token, challenge=10 + number).paid == 1_000
    tab = read(links, reusable)
    assert tab.status == "open" and tab.payments == 3 and tab.paid == 3_000 and available(links) == 2_000
    kinds = kinds_of(links)
    assert kinds.count("pay_link.partially_paid") == 1 and kinds.count("pay_link.paid") == 3
    # a decline is not kept: the link stays open for the customer to top up and try again
    short = made(links, "short", amount=4_000)
    assert start(links, short.token, challenge=20).ok
    assert pay(links, short.token, challenge=20).result is WalletResult.INSUFFICIENT_FUNDS
    assert read(links, short).status == "open"


def test_links_expire_are_cancelled_and_survive_a_restart(links: WalletBench) -> None:
    link = made(links, seconds=60)
    cancelled = made(links, "link-2")
    with links.op() as op:
        assert links.wallets.cancel_pay_link(op, "shop-a", cancelled.link_id).status == "cancelled"
    assert start(links, cancelled.token).result is WalletResult.REQUEST_NOT_OPEN
    assert start(links, link.token).ok
    links.clock.advance(60)
    assert read(links, link).status == "expired"
    assert pay(links, link.token).result is WalletResult.REQUEST_EXPIRED
    with links.op() as op:
        links.wallets.sweep(op)
    kinds = kinds_of(links)
    assert kinds.count("pay_link.expired") == 1 and kinds.count("pay_link.cancelled") == 1
    restarted = links.restarted()
    with links.op() as op:
        assert restarted.pay_link(op, "shop-a", link.link_id).status == "expired"
        assert restarted.pay_link(op, "", 0, cancelled.token).status == "cancelled"
    assert restarted.state.snapshot() == links.wallets.state.snapshot()
    assert available(links) == 10_000


def test_bad_links_are_refused_with_the_field_named(links: WalletBench) -> None:
    cases: list[tuple[dict[str, Any], WalletResult, str]] = [
        ({"amount": 0}, WalletResult.AMOUNT_INVALID, "amount"),
        ({"amount": -5}, WalletResult.AMOUNT_INVALID, "amount"),
        ({"reference": ""}, WalletResult.REFERENCE_REQUIRED, "reference"),
        ({"reference": "x\n"}, WalletResult.REFERENCE_REQUIRED, "reference"),
        ({"description": "d" * 1_001}, WalletResult.REFERENCE_REQUIRED, "description"),
        ({"contact": "0151 1234"}, WalletResult.CONTACT_INVALID, "contact"),
        ({"contact": "anna@"}, WalletResult.CONTACT_INVALID, "contact"),
        ({"seconds": 59}, WalletResult.EXPIRY_INVALID, "seconds"),
        ({"seconds": 31 * 86_400}, WalletResult.EXPIRY_INVALID, "seconds"),
        ({"partial": True, "reusable": True}, WalletResult.PARTIAL_PAYMENT_DISABLED, "partial"),
        ({"customer": "x" * 300}, WalletResult.CUSTOMER_INVALID, "customer"),
    ]
    for number, (fields, result, field) in enumerate(cases):
        reply = made(links, f"bad-{number}", **fields)
        assert reply.result is result and reply.message.startswith(field), (fields, reply.message)
    with links.op() as op:
        assert links.wallets.pay_link(op, "shop-a", 12345).result is WalletResult.REQUEST_NOT_FOUND
        assert links.wallets.pay_link(op, "", 0, "nope").result is WalletResult.REQUEST_NOT_FOUND
        assert links.wallets.pay_link(op, "shop-z", 1).result is WalletResult.TENANT_NOT_FOUND
    shop(links, "shop-b")
    link = made(links)
    with links.op() as op:  # another tenant's id names nothing
        assert links.wallets.pay_link(op, "shop-b", link.link_id).result is WalletResult.REQUEST_NOT_FOUND
    assert contact_problem("+4915112345678") is None and contact_problem("a.b+c@example.co.uk") is None
    assert masked_contact("anna@example.com") == "a•••@example.com"
