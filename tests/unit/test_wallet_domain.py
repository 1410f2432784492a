"""The wallet domain's rules, over a bare engine (tests/wallets.py), on both engines."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.engine import Account, ReferenceEngine, unpack_accounts
from ledger.engine._api import Engine
from ledger.records.layout import pack_ids
from ledger.wallet import (
    WALLET_LEDGER_FIRST,
    AccountCode,
    GrantItem,
    Payment,
    PaymentReply,
    Refund,
    RefundReply,
    TenantSettings,
    TopUp,
    TopUpReply,
    TopUpSource,
    WalletResult,
    decode_records,
    encode_record,
    events_of,
    operation_id,
    parse_cursor,
    wallet_id,
)
from ledger.wallet._state import PAYMENT_RECORD_FLAG, unpack_grants
from tests.wallets import SECOND_NS, WalletBench, snapshot_parts

DAY = 86_400


def engines() -> list[type[Engine]]:
    found: list[type[Engine]] = [ReferenceEngine]
    try:
        from ledger.engine._c import NativeEngine

        found.append(NativeEngine)
    except ImportError:
        pass
    return found


@pytest.fixture(params=engines(), ids=lambda cls: cls.__name__)
def bench(request: pytest.FixtureRequest) -> WalletBench:
    return WalletBench(request.param)


def shop(bench: WalletBench, tenant: str = "shop-a", **settings: Any) -> None:
    with bench.op() as op:
        reply = bench.wallets.create_tenant(op, tenant, "EUR", TenantSettings(**settings), actor="test")
    assert reply.ok, reply.message


def opened(bench: WalletBench, customer: str = "anna", tenant: str = "shop-a") -> int:
    with bench.op() as op:
        reply = bench.wallets.open_wallet(op, tenant, customer)
    assert reply.ok, reply.message
    return reply.wallet_id


def top_up(bench: WalletBench, amount: int, key: str, customer: str = "anna", **fields: Any) -> TopUpReply:
    request = TopUp(
        tenant=str(fields.pop("tenant", "shop-a")),
        customer=customer,
        amount=amount,
        key=key,
        source=fields.pop("source", TopUpSource.PURCHASE),
        reference=str(fields.pop("reference", "psp-1")),
        **fields,
    )
    with bench.op() as op:
        return bench.wallets.top_up(op, request)


def pay(bench: WalletBench, amount: int, key: str, customer: str = "anna", partial: bool = False) -> PaymentReply:
    with bench.op() as op:
        return bench.wallets.pay(
            op,
            Payment(
                tenant="shop-a", customer=customer, amount=amount, key=key, order_reference="4711", partial=partial
            ),
        )


def available(bench: WalletBench, customer: str = "anna") -> int:
    with bench.op() as op:
        return bench.wallets.balance(op, "shop-a", customer).available


def account(bench: WalletBench, account_id: int) -> Account:
    return unpack_accounts(bench.engine.lookup_accounts(pack_ids([account_id])))[0]


def test_two_tenants_in_one_currency_get_ledgers_of_their_own(bench: WalletBench) -> None:
    shop(bench, "shop-a")
    shop(bench, "shop-b")
    a, b = bench.wallets.get_tenant("shop-a"), bench.wallets.get_tenant("shop-b")
    assert a.ledger == WALLET_LEDGER_FIRST and b.ledger == WALLET_LEDGER_FIRST + 1
    assert a.currency == b.currency == "EUR"
    for name, account_id in a.accounts.items():
        record = account(bench, account_id)
        assert record.ledger == a.ledger and record.code == AccountCode[name.upper()]
    assert set(a.accounts.values()).isdisjoint(b.accounts.values())


def test_creating_a_tenant_again_is_idempotent_and_other_settings_are_refused(bench: WalletBench) -> None:
    shop(bench, fee_fixed=10)
    with bench.op() as op:
        again = bench.wallets.create_tenant(op, "shop-a", "EUR", TenantSettings(fee_fixed=10), actor="t")
        other = bench.wallets.create_tenant(op, "shop-a", "EUR", TenantSettings(fee_fixed=11), actor="t")
        bad_currency = bench.wallets.create_tenant(op, "shop-x", "XXX", TenantSettings(), actor="t")
        bad_fee = bench.wallets.create_tenant(op, "shop-y", "EUR", TenantSettings(fee_per_mille=1001), actor="t")
        bad_id = bench.wallets.create_tenant(op, "no spaces", "EUR", TenantSettings(), actor="t")
    assert again.ok and again.ledger == WALLET_LEDGER_FIRST
    assert other.result is WalletResult.TENANT_EXISTS
    assert bad_currency.result is WalletResult.TENANT_INVALID and "currency" in bad_currency.message
    assert bad_fee.result is WalletResult.TENANT_INVALID and "fee_per_mille" in bad_fee.message
    assert bad_id.result is WalletResult.TENANT_INVALID and "tenant" in bad_id.message
    assert len(bench.wallets.state.tenants) == 1


def test_opening_a_wallet_is_idempotent_and_its_id_is_derived(bench: WalletBench) -> None:
    shop(bench)
    first = opened(bench)
    assert first == opened(bench) == wallet_id("shop-a", "anna", "EUR")
    assert opened(bench, "ben") != first


def test_top_up_policy_rejections_name_the_rule_and_move_nothing(bench: WalletBench) -> None:
    shop(bench, topup_amounts=(1000, 2000), max_balance=2500)
    opened(bench)
    not_offered = top_up(bench, 1500, "k1")
    assert not_offered.result is WalletResult.AMOUNT_NOT_ALLOWED
    assert "10.00 EUR, 20.00 EUR" in not_offered.message
    assert top_up(bench, 2000, "k2").ok
    over = top_up(bench, 1000, "k3")
    assert over.result is WalletResult.MAX_BALANCE_EXCEEDED and "25.00 EUR" in over.message
    no_reference = top_up(bench, 1000, "k4", reference="")
    assert no_reference.result is WalletResult.REFERENCE_REQUIRED
    operator = top_up(bench, 100, "k5", source=TopUpSource.OPERATOR, reference="goodwill")
    assert operator.result is WalletResult.REFERENCE_REQUIRED and "operator" in operator.message
    zero = top_up(bench, 0, "k6")
    assert zero.result is WalletResult.AMOUNT_INVALID
    wrong = top_up(bench, 1000, "k7", currency="USD")
    assert wrong.result is WalletResult.CURRENCY_MISMATCH
    assert available(bench) == 2000


def test_self_top_up_off_refuses_purchases_but_not_operator_credit(bench: WalletBench) -> None:
    shop(bench, self_topup=False, topup_min=500, topup_max=5000)
    opened(bench)
    assert top_up(bench, 1000, "k1").result is WalletResult.SELF_TOPUP_DISABLED
    credit = top_up(bench, 100, "k2", source=TopUpSource.OPERATOR, operator="op-7", reference="goodwill")
    assert credit.ok and available(bench) == 100


def test_a_top_up_retry_replays_and_a_changed_request_is_refused(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    first = top_up(bench, 1000, "k1")
    assert top_up(bench, 1000, "k1") == replace(first, replayed=True)
    assert top_up(bench, 1001, "k1").result is WalletResult.IDEMPOTENCY_KEY_REUSED
    assert available(bench) == 1000


def test_full_payment_with_fee_and_partial_payment(bench: WalletBench) -> None:
    shop(bench, partial_payment=True, fee_fixed=5, fee_per_mille=15)
    opened(bench)
    top_up(bench, 2000, "t1")
    full = pay(bench, 1000, "p1")
    # fee = 5 + round_half_up(1000 * 15 / 1000) = 20
    assert (full.paid, full.fee, full.remainder, full.balance) == (1000, 20, 0, 980)
    short = pay(bench, 5000, "p2")
    assert short.result is WalletResult.INSUFFICIENT_FUNDS
    partial = pay(bench, 5000, "p3", partial=True)
    # the most paid with paid + 5 + round(paid * 0.015) <= 980: 961 + 5 + 14 = 980
    assert (partial.paid, partial.fee, partial.remainder, partial.balance) == (961, 19, 4039, 0)
    assert available(bench) == 0
    tenant = bench.wallets.get_tenant("shop-a")
    assert account(bench, tenant.accounts["fees"]).credits_posted == 39
    assert account(bench, tenant.accounts["revenue"]).credits_posted == 1961


def test_partial_payment_needs_the_tenant_to_allow_it(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    top_up(bench, 100, "t1")
    assert pay(bench, 500, "p1", partial=True).result is WalletResult.PARTIAL_PAYMENT_DISABLED
    assert available(bench) == 100


def test_a_declined_payment_is_replayed_even_after_a_top_up(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    declined = pay(bench, 500, "p1")
    top_up(bench, 1000, "t1")
    assert pay(bench, 500, "p1") == replace(declined, replayed=True)
    assert available(bench) == 1000


def test_a_payment_retry_replays_its_reply_after_a_restart(bench: WalletBench) -> None:
    shop(bench, fee_fixed=3)
    opened(bench)
    top_up(bench, 1000, "t1")
    first = pay(bench, 400, "p1")
    bench.wallets = bench.restarted()
    top_up(bench, 1000, "t2")
    assert pay(bench, 400, "p1") == replace(first, replayed=True)
    assert pay(bench, 401, "p1").result is WalletResult.IDEMPOTENCY_KEY_REUSED
    assert available(bench) == 1000 - 403 + 1000


def test_spending_takes_the_soonest_expiring_credit_first(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    now = bench.clock.now_ns
    top_up(bench, 1000, "forever", never_expires=True)
    top_up(bench, 300, "late", expires_at=now + 20 * DAY * SECOND_NS)
    top_up(bench, 200, "soon", expires_at=now + 10 * DAY * SECOND_NS)
    pay(bench, 250, "p1")
    with bench.op() as op:
        balance = bench.wallets.balance(op, "shop-a", "anna")
    assert balance.expiring == [[now + 20 * DAY * SECOND_NS, 250]]
    assert balance.available == 1250


def test_expired_credit_is_never_spent_and_the_sweep_moves_it_to_breakage(bench: WalletBench) -> None:
    shop(bench)
    wallet = opened(bench)
    top_up(bench, 500, "forever", never_expires=True)
    top_up(bench, 300, "soon", expires_at=bench.clock.now_ns + 60 * SECOND_NS)
    bench.clock.advance(61)
    assert available(bench) == 500  # before any sweep ran
    assert pay(bench, 600, "p1").result is WalletResult.INSUFFICIENT_FUNDS
    with bench.op() as op:
        assert bench.wallets.sweep(op) == 1
    tenant = bench.wallets.get_tenant("shop-a")
    assert account(bench, tenant.accounts["breakage"]).credits_posted == 300
    assert account(bench, wallet).credits_posted - account(bench, wallet).debits_posted == 500
    with bench.op() as op:
        assert bench.wallets.sweep(op) == 0


def test_tenant_default_expiry_applies_to_credit_without_one(bench: WalletBench) -> None:
    shop(bench, credit_expiry_seconds=DAY)
    opened(bench)
    reply = top_up(bench, 100, "t1")
    lifetime = reply.expires_at - reply.timestamp
    assert DAY * SECOND_NS - SECOND_NS < lifetime <= DAY * SECOND_NS


def test_refunds_are_bounded_by_what_the_wallet_paid(bench: WalletBench) -> None:
    shop(bench, partial_payment=True, refund_to_credit=True)
    opened(bench)
    top_up(bench, 600, "t1")
    payment = pay(bench, 1000, "p1", partial=True)
    assert (payment.paid, payment.remainder) == (600, 400)
    payment_id = payment.payment_id

    def refund(amount: int, key: str, to_credit: bool = False) -> RefundReply:
        with bench.op() as op:
            return bench.wallets.refund(
                op, Refund(tenant="shop-a", payment_id=payment_id, amount=amount, key=key, to_credit=to_credit)
            )

    first = refund(400, "r1")
    assert first.ok and first.refundable == 200
    assert refund(400, "r1") == replace(first, replayed=True)  # a retry, said to be one
    over = refund(201, "r2")
    assert over.result is WalletResult.REFUND_EXCEEDS_PAYMENT and "2.00 EUR" in over.message
    assert refund(200, "r3").ok
    assert refund(1, "r4").result is WalletResult.REFUND_EXCEEDS_PAYMENT
    assert refund(400, "r5", to_credit=True).ok
    assert refund(1, "r6", to_credit=True).result is WalletResult.REFUND_EXCEEDS_PAYMENT
    assert available(bench) == 1000
    with bench.op() as op:
        unknown = bench.wallets.refund(op, Refund(tenant="shop-a", payment_id=12345, amount=1, key="r7"))
    assert unknown.result is WalletResult.PAYMENT_NOT_FOUND


def test_holds_capture_part_and_release_the_rest(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    top_up(bench, 1000, "t1")
    with bench.op() as op:
        hold = bench.wallets.authorize(op, "shop-a", "anna", 700, "h1", seconds=3600, reference="table 4")
    assert hold.ok and hold.balance == 300
    assert available(bench) == 300
    with bench.op() as op:
        too_much = bench.wallets.capture(op, "shop-a", hold.hold_id, 701, "c0")
        captured = bench.wallets.capture(op, "shop-a", hold.hold_id, 500, "c1")
        again = bench.wallets.capture(op, "shop-a", hold.hold_id, 500, "c2")
    assert too_much.result is WalletResult.CAPTURE_EXCEEDS_HOLD
    assert captured.ok and captured.amount == 500 and captured.balance == 500
    assert again.result is WalletResult.HOLD_NOT_PENDING
    assert available(bench) == 500
    # The capture is refunded by the hold's id, up to what it captured, after a restart too.

    def refund(amount: int, key: str) -> RefundReply:
        with bench.op() as op:
            return bench.wallets.refund(op, Refund(tenant="shop-a", payment_id=hold.hold_id, amount=amount, key=key))

    first = refund(300, "r1")
    assert first.ok and (first.refundable, first.balance, first.payment_id) == (200, 800, hold.hold_id)
    bench.wallets = bench.restarted()
    assert refund(201, "r2").result is WalletResult.REFUND_EXCEEDS_PAYMENT
    assert refund(200, "r3").ok and available(bench) == 1000


def test_a_hold_expires_and_its_credit_returns(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    top_up(bench, 1000, "t1")
    with bench.op() as op:
        hold = bench.wallets.authorize(op, "shop-a", "anna", 400, "h1", seconds=60, reference="r")
    bench.clock.advance(61)
    with bench.op() as op:
        assert bench.wallets.sweep(op) == 1
    assert available(bench) == 1000
    with bench.op() as op:
        late = bench.wallets.capture(op, "shop-a", hold.hold_id, 0, "c1")
    assert late.result is WalletResult.HOLD_NOT_PENDING


def test_credit_reserved_by_a_hold_stays_capturable_past_its_expiry_and_a_void_sends_it_to_breakage(
    bench: WalletBench,
) -> None:
    shop(bench)
    opened(bench)
    top_up(bench, 300, "soon", expires_at=bench.clock.now_ns + 60 * SECOND_NS)
    top_up(bench, 300, "soon2", expires_at=bench.clock.now_ns + 60 * SECOND_NS)
    with bench.op() as op:
        first = bench.wallets.authorize(op, "shop-a", "anna", 300, "h1", seconds=3600, reference="r")
        second = bench.wallets.authorize(op, "shop-a", "anna", 300, "h2", seconds=3600, reference="r")
    bench.clock.advance(61)
    with bench.op() as op:
        assert bench.wallets.capture(op, "shop-a", first.hold_id, 0, "c1").ok
        voided = bench.wallets.void(op, "shop-a", second.hold_id, "v1")
    assert voided.ok and voided.balance == 0  # released, but expired: never spendable
    with bench.op() as op:
        assert bench.wallets.sweep(op) == 1
    tenant = bench.wallets.get_tenant("shop-a")
    assert account(bench, tenant.accounts["breakage"]).credits_posted == 300
    assert account(bench, tenant.accounts["revenue"]).credits_posted == 300


def test_a_frozen_wallet_takes_refunds_only_and_a_wallet_closes_at_zero(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    top_up(bench, 500, "t1")
    payment = pay(bench, 200, "p1")
    with bench.op() as op:
        assert bench.wallets.set_status(op, "shop-a", "anna", "frozen", actor="op-1", reason="fraud check").ok
    assert pay(bench, 10, "p2").result is WalletResult.WALLET_FROZEN
    assert top_up(bench, 10, "t2").result is WalletResult.WALLET_FROZEN
    with bench.op() as op:
        refund = Refund(tenant="shop-a", payment_id=payment.payment_id, amount=200, key="r1")
        assert bench.wallets.refund(op, refund).ok
        closing = bench.wallets.set_status(op, "shop-a", "anna", "closed", actor="op-1", reason="left")
    assert closing.result is WalletResult.WALLET_NOT_EMPTY


def test_the_domain_rebuilt_from_its_records_equals_the_live_one(bench: WalletBench) -> None:
    shop(bench, partial_payment=True, fee_per_mille=10, low_balance_threshold=300)
    opened(bench)
    opened(bench, "ben")
    top_up(bench, 1000, "t1", expires_at=bench.clock.now_ns + 30 * SECOND_NS)
    top_up(bench, 500, "t2", customer="ben")
    pay(bench, 800, "p1")
    with bench.op() as op:
        bench.wallets.authorize(op, "shop-a", "ben", 100, "h1", seconds=60, reference="r")
    bench.clock.advance(61)
    with bench.op() as op:
        bench.wallets.sweep(op)
    top_up(bench, 100, "t3", expires_at=bench.clock.now_ns + 3_600 * SECOND_NS)
    top_up(bench, 100, "t4", customer="ben", expires_at=bench.clock.now_ns + 60 * SECOND_NS)
    live = bench.wallets.snapshot()
    assert bench.restarted().snapshot() == live
    restored = type(bench.wallets)()
    restored.restore(live)
    assert restored.snapshot() == live
    # A snapshot of version 1 (all JSON, grants unpacked) restores to the same state.
    data, packed = snapshot_parts(live)
    assert packed
    data["version"] = 1
    data["grants"] = [[wallet, unpack_grants(grants)] for wallet, grants in restored.state.grants.items()]
    restored.restore(json.dumps(data).encode())
    assert restored.snapshot() == live
    # A damaged one is refused, never half restored.
    for damaged in (live[:5], live[:-1], live[:-40], b"LWS3" + live[4:], live + b"\0"):
        with pytest.raises(ValueError, match="wallet snapshot"):
            restored.restore(damaged)


def test_operator_bookings_are_reversed_at_most_once_and_kept_in_the_audit_trail(bench: WalletBench) -> None:
    shop(bench)
    wallet = opened(bench)
    ben = opened(bench, "ben")
    with bench.op() as op:
        credit = bench.wallets.book(
            op, "shop-a", "anna", 700, "b1", direction="credit", operator="op-1", reason="goodwill"
        )
        debit = bench.wallets.book(op, "shop-a", "anna", 200, "b2", direction="debit", operator="op-2", reason="fix")
        over = bench.wallets.book(op, "shop-a", "anna", 501, "b3", direction="debit", operator="op-2", reason="fix")
        anonymous = bench.wallets.book(op, "shop-a", "anna", 1, "b4", direction="credit", operator="", reason="x")
        other = bench.wallets.book(op, "shop-a", "ben", 50, "b5", direction="credit", operator="op-1", reason="promo")
    assert credit.ok and credit.balance == 700 and debit.ok and debit.balance == 500
    assert over.result is WalletResult.INSUFFICIENT_FUNDS
    assert anonymous.result is WalletResult.REFERENCE_REQUIRED and "operator" in anonymous.message
    with bench.op() as op:
        reversal = bench.wallets.reverse(op, "shop-a", debit.booking_id, "r1", operator="op-3", reason="wrong")
        again = bench.wallets.reverse(op, "shop-a", debit.booking_id, "r2", operator="op-3", reason="wrong")
        of_reversal = bench.wallets.reverse(op, "shop-a", reversal.booking_id, "r3", operator="op-3", reason="x")
        unknown = bench.wallets.reverse(op, "shop-a", 12345, "r4", operator="op-3", reason="x")
    assert reversal.ok and reversal.reverses == debit.booking_id and reversal.balance == 700
    assert again.result is WalletResult.BOOKING_ALREADY_REVERSED
    assert of_reversal.result is WalletResult.BOOKING_NOT_FOUND
    assert unknown.result is WalletResult.BOOKING_NOT_FOUND
    assert available(bench) == 700
    trail = bench.wallets.bookings("shop-a")
    assert [b.booking_id for b in trail] == [credit.booking_id, debit.booking_id, other.booking_id, reversal.booking_id]
    assert [b.booking_id for b in bench.wallets.bookings("shop-a", operator="op-1")] == [
        credit.booking_id, other.booking_id
    ]  # fmt: skip
    assert {b.wallet for b in bench.wallets.bookings("shop-a", wallet=ben)} == {ben}
    assert [b.booking_id for b in bench.wallets.bookings("shop-a", after=debit.booking_id, limit=1)] == [
        other.booking_id
    ]  # fmt: skip
    assert bench.wallets.bookings("shop-a", since=bench.clock.now_ns + 1) == []
    assert {b.wallet for b in trail} == {wallet, ben}
    assert bench.restarted().snapshot() == bench.wallets.snapshot()


def test_reversing_a_credit_needs_the_credit_still_spendable(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    with bench.op() as op:
        credit = bench.wallets.book(op, "shop-a", "anna", 300, "b1", direction="credit", operator="op", reason="x")
    pay(bench, 200, "p1")
    with bench.op() as op:
        refused = bench.wallets.reverse(op, "shop-a", credit.booking_id, "r1", operator="op", reason="undo")
    assert refused.result is WalletResult.INSUFFICIENT_FUNDS
    assert available(bench) == 100


def test_vouchers_issue_redeem_spend_deactivate_and_expire(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    tenant = bench.wallets.get_tenant("shop-a")
    expiry = bench.clock.now_ns + 3600 * SECOND_NS
    with bench.op() as op:
        gift = bench.wallets.issue_voucher(op, "shop-a", 2500, "v1", expires_at=expiry)
        again = bench.wallets.issue_voucher(op, "shop-a", 2500, "v1", expires_at=expiry)
        other = bench.wallets.issue_voucher(op, "shop-a", 2600, "v1", expires_at=expiry)
        card = bench.wallets.issue_voucher(op, "shop-a", 1000, "v2", never_expires=True)
        spare = bench.wallets.issue_voucher(op, "shop-a", 700, "v3", expires_at=expiry)
    assert gift.ok and len(gift.code) == 21 and again == gift and card.code != gift.code
    assert other.result is WalletResult.IDEMPOTENCY_KEY_REUSED
    assert account(bench, tenant.accounts["vouchers"]).credits_posted == 4200
    typo = gift.code[:-1] + ("0" if gift.code[-1] != "0" else "1")
    with bench.op() as op:
        assert bench.wallets.voucher_balance(op, "shop-a", typo).result is WalletResult.VOUCHER_NOT_FOUND
        assert bench.wallets.voucher_balance(op, "shop-b", gift.code).result is WalletResult.TENANT_NOT_FOUND
        assert bench.wallets.voucher_balance(op, "shop-a", gift.code.lower().replace("-", " ")).remaining == 2500
        redeemed = bench.wallets.redeem_voucher(op, "shop-a", gift.code, "anna", "r1")
        twice = bench.wallets.redeem_voucher(op, "shop-a", gift.code, "anna", "r2")
        part = bench.wallets.spend_voucher(op, "shop-a", card.code, 400, "s1", order_reference="o-1")
        rest = bench.wallets.spend_voucher(op, "shop-a", card.code, 900, "s2", order_reference="o-2")
        deactivated = bench.wallets.deactivate_voucher(op, "shop-a", spare.code, "d1", reason="lost")
        after = bench.wallets.spend_voucher(op, "shop-a", spare.code, 1, "s3", order_reference="o-3")
    assert redeemed.ok and redeemed.amount == 2500 and redeemed.balance == 2500
    assert twice.result is WalletResult.VOUCHER_EMPTY
    assert (part.amount, part.remaining, rest.amount, rest.remaining, rest.requested) == (400, 600, 600, 0, 900)
    assert deactivated.ok and deactivated.amount == 700
    assert after.result is WalletResult.VOUCHER_DEACTIVATED
    with bench.op() as op:
        balance = bench.wallets.balance(op, "shop-a", "anna")
    assert balance.expiring == [[expiry, 2500]]  # redeemed credit expires with its voucher
    assert account(bench, tenant.accounts["revenue"]).credits_posted == 1000
    assert bench.restarted().snapshot() == bench.wallets.snapshot()


def test_an_expired_voucher_moves_to_breakage_and_is_refused(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    tenant = bench.wallets.get_tenant("shop-a")
    with bench.op() as op:
        voucher = bench.wallets.issue_voucher(op, "shop-a", 800, "v1", expires_at=bench.clock.now_ns + 60 * SECOND_NS)
        bench.wallets.spend_voucher(op, "shop-a", voucher.code, 300, "s1", order_reference="o")
    bench.clock.advance(61)
    with bench.op() as op:
        refused = bench.wallets.redeem_voucher(op, "shop-a", voucher.code, "anna", "r1")
        assert bench.wallets.sweep(op) == 1
        shown = bench.wallets.voucher_balance(op, "shop-a", voucher.code)
    assert refused.result is WalletResult.VOUCHER_EXPIRED
    assert shown.result is WalletResult.VOUCHER_EXPIRED and shown.status == "expired" and shown.remaining == 0
    assert account(bench, tenant.accounts["breakage"]).credits_posted == 500
    vouchers = account(bench, tenant.accounts["vouchers"])
    assert vouchers.credits_posted - vouchers.debits_posted == 0


def test_a_grant_run_pays_each_customer_once_and_all_or_nothing_refuses_as_a_whole(bench: WalletBench) -> None:
    shop(bench, max_balance=20_000)
    opened(bench, "emp-1")
    items = [GrantItem(customer=f"emp-{n}", amount=5000, expires_at=bench.clock.now_ns + DAY * SECOND_NS)
             for n in range(1, 301)]  # fmt: skip
    with bench.op() as op:
        march = bench.wallets.grant_run(op, "shop-a", "2027-03", items, all_or_nothing=True, open_wallets=True)
        again = bench.wallets.grant_run(op, "shop-a", "2027-03", items, all_or_nothing=True, open_wallets=True)
    assert all(reply.ok for reply in march) and again == [replace(reply, replayed=True) for reply in march]
    tenant = bench.wallets.get_tenant("shop-a")
    assert account(bench, tenant.accounts["benefits"]).debits_posted == 300 * 5000
    bad = [GrantItem(customer="emp-1", amount=4000), GrantItem(customer="emp-2", amount=16000),
           GrantItem(customer="no wallet", amount=1)]  # fmt: skip
    with bench.op() as op:
        refused = bench.wallets.grant_run(op, "shop-a", "2027-04", bad, all_or_nothing=True)
        separate = bench.wallets.grant_run(op, "shop-a", "2027-04b", bad, all_or_nothing=False)
    assert [reply.result for reply in refused] == [
        WalletResult.GRANT_RUN_REFUSED, WalletResult.MAX_BALANCE_EXCEEDED, WalletResult.WALLET_NOT_FOUND
    ]  # fmt: skip
    assert [reply.result for reply in separate] == [
        WalletResult.OK, WalletResult.MAX_BALANCE_EXCEEDED, WalletResult.WALLET_NOT_FOUND
    ]  # fmt: skip
    assert available(bench, "emp-1") == 9000 and available(bench, "emp-2") == 5000
    with bench.op() as op:
        fixed = bench.wallets.grant_run(op, "shop-a", "2027-04", bad[:1], all_or_nothing=True)
    assert fixed[0].ok and available(bench, "emp-1") == 13000  # run 2027-04b paid 4000, run 2027-04 another
    assert bench.restarted().snapshot() == bench.wallets.snapshot()


def test_the_domain_records_become_events_with_stable_ids_and_cursors(bench: WalletBench) -> None:
    shop(bench, low_balance_threshold=500)
    opened(bench)
    top_up(bench, 1000, "t1", expires_at=bench.clock.now_ns + 60 * SECOND_NS)
    pay(bench, 600, "p1")
    bench.clock.advance(61)
    with bench.op() as op:
        bench.wallets.sweep(op)
    events = [event for seq, records in enumerate(bench.journal, 1) for event in events_of(seq, records)]
    assert [event.type for event in events] == [
        "tenant.created", "wallet.opened", "wallet.balance_below", "wallet.topped_up", "payment.succeeded",
        "wallet.balance_below", "credit.expired",
    ]  # fmt: skip
    assert len({event.event_id for event in events}) == len(events)
    expired = events[-1]
    assert expired.tenant == "shop-a" and expired.amount == 400 and expired.wallet == wallet_id("shop-a", "anna", "EUR")
    seq, index = parse_cursor(events[4].cursor) or (0, 0)
    assert [event.type for event in events_of(seq, bench.journal[seq - 1], index)] == []
    assert parse_cursor("") == (0, -1) and parse_cursor("1.x") is None and parse_cursor("12.3") == (12, 3)


def test_a_wallet_is_paid_out_or_written_off_and_then_closes(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    opened(bench, "ben")
    top_up(bench, 500, "t1", never_expires=True)
    top_up(bench, 200, "t2", expires_at=bench.clock.now_ns + 60 * SECOND_NS)
    top_up(bench, 300, "t3", customer="ben")
    with bench.op() as op:
        hold = bench.wallets.authorize(op, "shop-a", "ben", 100, "h1", seconds=3600, reference="r")
    bench.clock.advance(61)  # anna's 200 expired, not yet swept: it moves with the rest
    with bench.op() as op:
        held = bench.wallets.empty_wallet(op, "shop-a", "ben", "e0", destination="payout", operator="o", reason="r")
        bench.wallets.void(op, "shop-a", hold.hold_id, "v1")
        paid_out = bench.wallets.empty_wallet(op, "shop-a", "anna", "e1", destination="payout", operator="o",
                                              reason="moved away")  # fmt: skip
        nothing = bench.wallets.empty_wallet(op, "shop-a", "anna", "e2", destination="payout", operator="o", reason="r")
        written = bench.wallets.empty_wallet(op, "shop-a", "ben", "e3", destination="breakage", operator="o",
                                             reason="dormant")  # fmt: skip
        closed = bench.wallets.set_status(op, "shop-a", "anna", "closed", actor="o", reason="moved away")
        assert bench.wallets.sweep(op) == 0  # the expired grant left with the payout
    assert held.result is WalletResult.WALLET_NOT_EMPTY and "held" in held.message
    assert paid_out.ok and paid_out.amount == 700 and nothing.result is WalletResult.AMOUNT_INVALID
    assert written.ok and written.amount == 300 and closed.ok
    tenant = bench.wallets.get_tenant("shop-a")
    assert account(bench, tenant.accounts["payouts"]).credits_posted == 700
    assert account(bench, tenant.accounts["breakage"]).credits_posted == 300
    assert top_up(bench, 1, "t4").result is WalletResult.WALLET_CLOSED
    assert bench.restarted().snapshot() == bench.wallets.snapshot()


def test_a_captured_hold_is_refunded_by_its_id_or_its_captures_under_one_bound(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    top_up(bench, 1000, "t1")
    with bench.op() as op:
        hold = bench.wallets.authorize(op, "shop-a", "anna", 800, "h1", seconds=600, reference="pump 3")
        bench.wallets.capture(op, "shop-a", hold.hold_id, 600, "c1")
        capture_id = operation_id("shop-a", "c1")
        by_hold = bench.wallets.refund(op, Refund(tenant="shop-a", payment_id=hold.hold_id, amount=400, key="r1"))
        by_capture = bench.wallets.refund(op, Refund(tenant="shop-a", payment_id=capture_id, amount=201, key="r2"))
        rest = bench.wallets.refund(op, Refund(tenant="shop-a", payment_id=capture_id, amount=200, key="r3"))
    assert by_hold.ok and by_hold.refundable == 200
    assert by_capture.result is WalletResult.REFUND_EXCEEDS_PAYMENT
    assert rest.ok and available(bench) == 1000
    assert bench.restarted().snapshot() == bench.wallets.snapshot()


@pytest.mark.parametrize("seed", range(5))
def test_paying_many_at_once_answers_and_books_as_paying_one_after_another(seed: int) -> None:
    import random

    engine_class = engines()[seed % len(engines())]
    benches = [WalletBench(engine_class), WalletBench(engine_class)]
    rng = random.Random(seed)
    for bench in benches:
        shop(bench, partial_payment=True, fee_fixed=3, fee_per_mille=20)
        shop(bench, "shop-b", low_balance_threshold=300)
        for customer in ("anna", "ben", "cleo", "dan"):
            opened(bench, customer)
            top_up(bench, 1000, f"t-{customer}", customer=customer, never_expires=True)
        opened(bench, "anna", tenant="shop-b")
        top_up(bench, 900, "tb", customer="anna", tenant="shop-b")
        top_up(bench, 200, "g-cleo", customer="cleo", expires_at=bench.clock.now_ns + 3600 * SECOND_NS)
        with bench.op() as op:
            bench.wallets.set_status(op, "shop-a", "dan", "frozen", actor="o", reason="r")
    requests = []
    for number in range(120):
        key = f"p{rng.randrange(100)}"  # repeated keys: retries, in the same batch and across
        customer = rng.choice(["anna", "ben", "cleo", "dan", "eve"])
        tenant = "shop-b" if customer == "anna" and rng.random() < 0.2 else "shop-a"
        amount = rng.choice([0, 1, 50, 97, 300, 999, 1500, -3])
        requests.append(
            Payment(
                tenant=tenant,
                customer=customer,
                amount=amount,
                key=key if number % 7 else "",
                order_reference="o",
                partial=rng.random() < 0.5,
            )
        )
    one_by_one: list[PaymentReply] = []
    with benches[0].op() as op:
        for item in requests:
            one_by_one.append(benches[0].wallets.pay(op, item))
    together: list[PaymentReply] = []
    for start in range(0, len(requests), 40):
        with benches[1].op() as op:
            together += benches[1].wallets.pay_many(op, requests[start : start + 40])

    def shown(reply: PaymentReply) -> PaymentReply:
        return PaymentReply(**{**reply.to_json(), "result": reply.result, "timestamp": 0})

    assert [shown(reply) for reply in together] == [shown(reply) for reply in one_by_one]
    snapshots = [snapshot_parts(bench.wallets.snapshot()) for bench in benches]
    for snapshot, _ in snapshots:  # each tenant's secret is drawn at random
        for tenant in snapshot["tenants"]:
            del tenant["secret"]
    assert snapshots[1] == snapshots[0]
    for tenant_id in ("shop-a", "shop-b"):
        for account_id in benches[0].wallets.get_tenant(tenant_id).accounts.values():
            first, second = account(benches[0], account_id), account(benches[1], account_id)
            assert (first.debits_posted, first.credits_posted) == (second.debits_posted, second.credits_posted)
    events = [
        [(e.type, e.amount, e.wallet, e.operation) for s, r in enumerate(b.journal, 1) for e in events_of(s, r)]
        for b in benches
    ]
    assert events[1] == events[0]


def test_a_payments_compact_record_reads_back_as_the_record_the_json_encoder_writes() -> None:
    from ledger.wallet._state import encode_payment_record

    cases = (
        ("shop-a", "4711", 2**128 - 2, 16),
        ("s", 'quote " and \\ and ü and \u2028', 1, 2**128 - 16),
        ("x" * 64, "\u0001" + "€" * 254, 2**64, 2**64 - 16),
    )
    spent_cases: tuple[list[list[int]], ...] = ([], [[2**128 - 1, 2**63 - 1]], [[1, 5], [2**64, 7], [2**127, 1]])
    for (tenant, order, wallet, payment_id), spent in zip(cases, spent_cases, strict=True):
        facts = [["spend", wallet, spent]] if spent else []
        record = {"op": "payment_succeeded", "tenant": tenant, "at": 10**18, "wallet": wallet, "id": payment_id,
                  "order": order, "requested": 2**63 - 1, "paid": 7, "fee": 0, "facts": facts}  # fmt: skip
        compact = encode_payment_record(tenant, 10**18, wallet, payment_id, order, 2**63 - 1, 7, 0, spent)
        assert list(decode_records(compact)) == [record]
        assert len(compact) < len(encode_record(record))
        # Compact and JSON records mix in one commit's domain bytes, and cut short they are refused.
        both = encode_record(record) + compact + encode_record(record)
        assert list(decode_records(both)) == [record] * 3
        for cut in (1, 5, len(compact) - 1):
            with pytest.raises(ValueError, match="cut short"):
                list(decode_records(compact[:cut]))
        # A spend part cut short inside the record's own size does not add up.
        header = int.from_bytes(compact[:4], "little")
        damaged = (header - 1).to_bytes(4, "little") + compact[4:-1]
        with pytest.raises(ValueError, match="do not add up"):
            list(decode_records(damaged))


def test_a_payment_spending_expiring_credit_is_journaled_compact_and_replays_to_the_same_state(
    bench: WalletBench,
) -> None:
    shop(bench, credit_expiry_seconds=3_600, fee_fixed=5)
    opened(bench)
    assert top_up(bench, 1_000, "t1").ok
    paid = pay(bench, 300, "p1")
    assert paid.ok and paid.fee == 5
    record = bench.journal[-1]
    assert int.from_bytes(record[:4], "little") & PAYMENT_RECORD_FLAG
    (decoded,) = decode_records(record)
    (grant_id,) = bench.wallets.state.grants_of(paid.wallet_id)[0][2:]
    assert decoded["facts"] == [["spend", paid.wallet_id, [[grant_id, 305]]]]
    assert bench.restarted().snapshot() == bench.wallets.snapshot()


def test_a_payments_chain_packed_in_one_call_is_the_linked_chain_of_its_transfers(bench: WalletBench) -> None:
    from ledger.wallet._codes import AccountCode, TransferCode
    from ledger.wallet._domain import _chain, _payment_chain, _transfer
    from ledger.wallet._ids import step_id

    shop(bench)
    tenant = bench.wallets.state.tenants["shop-a"]
    for key_id, wallet, paid, fee, balance, partial in (
        (16, 1, 1, 0, 0, False),
        (2**128 - 16, 2**128 - 2, 2**63 - 1, 2**63 - 1, 2**64 - 1, True),
        (2**64, 2**64 + 1, 500, 17, 1234, False),
    ):
        request = Payment(tenant="shop-a", customer="c", amount=paid + 3, key="k", order_reference="o", partial=partial)
        fp = 2**64 - 1 - paid % 7
        first = _transfer(
            key_id, wallet, tenant.accounts[AccountCode.REVENUE], paid, tenant.ledger, TransferCode.PAYMENT,
            user_data_128=fp | balance << 64, user_data_64=request.amount, user_data_32=int(partial),
        )  # fmt: skip
        fee_transfer = _transfer(
            step_id(key_id, 1), wallet, tenant.accounts[AccountCode.FEES], fee, tenant.ledger,
            TransferCode.PAYMENT_FEE, user_data_128=key_id,
        )  # fmt: skip
        expected = _chain(first, fee_transfer) if fee else first
        assert _payment_chain(tenant, request, key_id, fp, wallet, paid, fee, balance) == expected


def test_a_payments_fingerprint_written_out_is_the_general_one() -> None:
    from ledger.wallet._ids import fingerprint, payment_fingerprint

    for customer, amount, order, partial, currency in (
        ("anna", 1, "4711", False, ""),
        ("quote ' and \" and \\", 2**63 - 1, "\u2028 ü \x00", True, "EUR"),
        ("", 0, "", False, "JPY"),
    ):
        assert payment_fingerprint(customer, amount, order, partial, currency) == fingerprint(
            "pay", customer, amount, order, partial, currency
        )


def test_credit_a_void_gives_back_expires_once(bench: WalletBench, caplog: pytest.LogCaptureFixture) -> None:
    # The hold takes all of the grant, so the grant leaves the wallet's list while its first expiry entry
    # stays queued; the void queues a second one. The sweep must expire it once, not try twice.
    shop(bench)
    opened(bench)
    top_up(bench, 300, "soon", expires_at=bench.clock.now_ns + 60 * SECOND_NS)
    with bench.op() as op:
        hold = bench.wallets.authorize(op, "shop-a", "anna", 300, "h1", seconds=3600, reference="r")
        assert bench.wallets.void(op, "shop-a", hold.hold_id, "v1").ok
    bench.clock.advance(61)
    with caplog.at_level(logging.ERROR, logger="ledger.wallet"), bench.op() as op:
        assert bench.wallets.sweep(op) == 1
    assert caplog.records == []
    tenant = bench.wallets.get_tenant("shop-a")
    assert account(bench, tenant.accounts["breakage"]).credits_posted == 300


def test_a_hold_past_its_expiry_is_neither_captured_nor_voided_before_the_sweep(bench: WalletBench) -> None:
    shop(bench)
    opened(bench)
    top_up(bench, 1000, "t1")
    with bench.op() as op:
        hold = bench.wallets.authorize(op, "shop-a", "anna", 400, "h1", seconds=60, reference="r")
    bench.clock.advance(60)  # at its expiry, and no sweep has run
    with bench.op() as op:
        late = bench.wallets.capture(op, "shop-a", hold.hold_id, 0, "c1")
        too_late = bench.wallets.void(op, "shop-a", hold.hold_id, "v1")
    assert late.result is too_late.result is WalletResult.HOLD_NOT_PENDING
    assert available(bench) == 600  # reserved until the sweep voids it
    with bench.op() as op:
        assert bench.wallets.sweep(op) == 1
    assert available(bench) == 1000
    tenant = bench.wallets.get_tenant("shop-a")
    assert account(bench, tenant.accounts["revenue"]).credits_posted == 0


_IDS = st.integers(1, 2**128 - 2)
_TRIPLES = st.tuples(st.integers(0, 2**63 - 1), _IDS, _IDS)


@given(st.lists(_TRIPLES, max_size=30))
def test_expiry_entries_sort_as_their_triples_and_give_them_back(triples: list[tuple[int, int, int]]) -> None:
    from ledger.wallet._state import expiry_entry, expiry_parts

    entries = [expiry_entry(*triple) for triple in triples]
    assert [expiry_parts(entry) for entry in sorted(entries)] == sorted(triples)


@given(st.lists(st.tuples(st.integers(0, 2**63 - 1), st.integers(1, 2**63 - 1), _IDS), max_size=8))
def test_packed_grants_read_back_as_they_were(grants: list[tuple[int, int, int]]) -> None:
    from ledger.wallet._state import pack_grants, unpack_grants

    listed = [list(grant) for grant in sorted(grants)]
    assert unpack_grants(pack_grants(listed)) == listed
    assert len(pack_grants(listed)) == 32 * len(listed)


@given(
    st.lists(st.tuples(st.integers(0, 2**63 - 1), st.integers(1, 2**20), _IDS), min_size=2, max_size=6),
    st.data(),
)
def test_spending_packed_grants_is_spending_their_list(grants: list[tuple[int, int, int]], data: st.DataObject) -> None:
    from ledger.wallet._state import WalletState, pack_grants

    listed = [list(grant) for grant in sorted({grant[2]: grant for grant in grants}.values())]
    # A grant before it whose remaining and id hold this one's id where no id starts.
    target = listed[-1][2]
    decoy = [0, target & 2**64 - 1, target >> 64]
    if decoy[1] and decoy[2] and decoy[2] not in {grant[2] for grant in listed}:
        listed.insert(len(listed) - 1, decoy)  # not first: a search for an id starts at the first id
    state = WalletState(grants={7: pack_grants(listed)})
    expected = [list(grant) for grant in listed]
    for grant_id in data.draw(st.lists(st.sampled_from([grant[2] for grant in listed]), max_size=4)):
        held = next((grant for grant in expected if grant[2] == grant_id), None)
        if held is None:
            continue
        spent = data.draw(st.integers(1, held[1]))
        state._spend(7, [[0, 5], [grant_id, spent]])
        held[1] -= spent
        expected = [grant for grant in expected if grant[1]]
        assert state.grants_of(7) == expected
        assert (7 in state.grants) == bool(expected)
    if expected:
        missing = next(n for n in range(1, 10) if n not in {grant[2] for grant in expected})
        with pytest.raises(AssertionError, match="does not hold"):
            state._spend(7, [[missing, 1]])


def test_a_key_paid_on_the_general_path_is_a_retry_for_the_rest_of_its_batch(bench: WalletBench) -> None:
    """Anna's credit expires (her payment takes the general path); Ben's does not (the common case). The same
    key for Ben later in the batch is another request under a used key, as it is one by one: never a payment
    the engine refuses."""
    shop(bench)
    for customer in ("anna", "ben"):
        opened(bench, customer)
    now = bench.clock.now_ns
    assert top_up(bench, 1_000, "a", customer="anna", expires_at=now + 10 * DAY * SECOND_NS).ok
    assert top_up(bench, 1_000, "b", customer="ben", never_expires=True).ok
    first = Payment(tenant="shop-a", customer="anna", amount=100, key="k", order_reference="o")
    again = Payment(tenant="shop-a", customer="anna", amount=100, key="k", order_reference="o")
    other = Payment(tenant="shop-a", customer="ben", amount=100, key="k", order_reference="o")
    with bench.op() as op:
        replies = bench.wallets.pay_many(op, [first, other, again])
    assert [reply.result for reply in replies] == [WalletResult.OK, WalletResult.IDEMPOTENCY_KEY_REUSED,
                                                   WalletResult.OK]  # fmt: skip
    assert replies[2].replayed and replies[2].payment_id == replies[0].payment_id
    assert available(bench, "anna") == 900 and available(bench, "ben") == 1_000
