"""Payment codes a customer's phone shows: derived offline, valid in their window and the grace one, paying
once, naming the wallet without showing its id; devices enrolled, listed and revoked; on both engines."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.wallet import CodePayment, DeviceReply, HoldReply, PaymentReply, WalletResult, events_of
from ledger.wallet import _paycodes as paycodes
from ledger.wallet._state import CODES_KEPT_STEPS
from tests.unit.test_wallet_domain import available, engines, opened, shop, top_up
from tests.wallets import SECOND_NS, WalletBench


def enrolled(
    bench: WalletBench, customer: str = "anna", key: str = "phone-1", name: str = "Anna's phone"
) -> DeviceReply:
    with bench.op() as op:
        reply = bench.wallets.enroll_device(op, "shop-a", customer, name, key)
    assert reply.ok, reply.message
    return reply


def code_now(bench: WalletBench, device: DeviceReply, seconds_ago: float = 0) -> str:
    """What the phone shows now (computed as the app does, from what enrolment gave it)."""
    step = paycodes.step_at(bench.clock.now_ns - int(seconds_ago * SECOND_NS))
    return paycodes.make_code(device.seed, device.code_key, device.number, step)


def pay_code(bench: WalletBench, code: str, amount: int, transaction: str, terminal: str = "bar-1") -> PaymentReply:
    with bench.op() as op:
        return bench.wallets.pay_by_code(
            op, CodePayment(tenant="shop-a", code=code, amount=amount, terminal=terminal, transaction=transaction)
        )


@pytest.fixture(params=engines(), ids=lambda cls: cls.__name__)
def counter(request: pytest.FixtureRequest) -> WalletBench:
    bench = WalletBench(request.param)
    shop(bench, fee_fixed=0)
    opened(bench)
    assert top_up(bench, 10_000, "t1").ok
    return bench


def test_a_code_pays_once_and_a_retry_of_its_transaction_replays(counter: WalletBench) -> None:
    device = enrolled(counter)
    code = code_now(counter, device)
    assert len(code) == 18 and code.startswith("28") and code.isdigit()
    assert f"{device.wallet_id:032x}" not in code and str(device.number) not in code
    paid = pay_code(counter, code, 450, "tx-1")
    assert paid.ok and paid.paid == 450 and paid.wallet_id == device.wallet_id and available(counter) == 9_550
    # the same transaction again (a terminal that lost the reply): the same answer, nothing moves
    again = pay_code(counter, code, 450, "tx-1")
    assert again.replayed and again.payment_id == paid.payment_id and available(counter) == 9_550
    # the same code from another transaction, or from another terminal at the same moment: refused
    assert pay_code(counter, code, 450, "tx-2").result is WalletResult.CODE_USED
    assert pay_code(counter, code, 10, "tx-1", terminal="bar-2").result is WalletResult.CODE_USED
    assert available(counter) == 9_550
    # the same transaction id with another code or amount: the key was used for another request
    assert pay_code(counter, code, 451, "tx-1").result is WalletResult.IDEMPOTENCY_KEY_REUSED
    # the next window's code pays again
    counter.clock.advance(paycodes.STEP_SECONDS)
    assert pay_code(counter, code_now(counter, device), 50, "tx-3").ok and available(counter) == 9_500


def test_a_code_of_the_window_before_is_taken_within_the_grace_and_an_older_one_is_not(counter: WalletBench) -> None:
    device = enrolled(counter)
    step_ns = paycodes.STEP_SECONDS * SECOND_NS
    counter.clock.now_ns = (counter.clock.now_ns // step_ns + 1) * step_ns  # the start of a window
    previous = code_now(counter, device, seconds_ago=1)  # shown a second before the window turned
    older = code_now(counter, device, seconds_ago=paycodes.STEP_SECONDS + 1)
    future = code_now(counter, device, seconds_ago=-paycodes.STEP_SECONDS)
    assert pay_code(counter, older, 10, "tx-old").result is WalletResult.CODE_INVALID
    assert pay_code(counter, future, 10, "tx-next").result is WalletResult.CODE_INVALID
    counter.clock.advance(paycodes.STEP_SECONDS - 1)  # the last second of the grace
    assert pay_code(counter, previous, 10, "tx-grace").ok
    counter.clock.advance(1)
    late = code_now(counter, device, seconds_ago=2 * paycodes.STEP_SECONDS)
    assert pay_code(counter, late, 10, "tx-late").result is WalletResult.CODE_INVALID
    assert available(counter) == 9_990


def test_bad_codes_get_one_answer_that_tells_nothing_and_move_nothing(counter: WalletBench) -> None:
    device = enrolled(counter)
    good = code_now(counter, device)
    wrong_password = good[:-6] + f"{(int(good[-6:]) + 1) % 10**6:06d}"
    other_number = good[:2] + f"{(int(good[2:12]) + 1) % 10**10:010d}" + good[12:]
    for code in ("", "28", "1" * 18, good[:-1], good + "0", "28abcdefghij123456", wrong_password, other_number,
                 "\uff12\uff18" + good[2:]):  # fmt: skip
        reply = pay_code(counter, code, 10, f"tx-{code}")
        assert reply.result is WalletResult.CODE_INVALID, code
        assert reply.message == "code: not a payment code of this tenant valid now (codes turn every 30 seconds)"
    # another tenant's terminal cannot take shop A's code
    shop(counter, "shop-b")
    with counter.op() as op:
        foreign = counter.wallets.pay_by_code(
            op, CodePayment(tenant="shop-b", code=good, amount=10, terminal="t", transaction="x")
        )
    assert foreign.result is WalletResult.CODE_INVALID and available(counter) == 10_000
    for terminal, transaction in (("", "x"), ("t", ""), ("t", "x" * 256), ("t\n", "x")):
        with counter.op() as op:
            reply = counter.wallets.pay_by_code(
                op, CodePayment(tenant="shop-a", code=good, amount=10, terminal=terminal, transaction=transaction)
            )
        assert reply.result is WalletResult.IDEMPOTENCY_KEY_INVALID
    # the code is still good: none of that used it
    assert pay_code(counter, good, 10, "tx-good").ok


def test_a_declined_code_payment_leaves_the_code_for_another_and_a_revoked_device_pays_no_more(
    counter: WalletBench,
) -> None:
    device = enrolled(counter)
    code = code_now(counter, device)
    declined = pay_code(counter, code, 20_000, "tx-big")
    assert declined.result is WalletResult.INSUFFICIENT_FUNDS and available(counter) == 10_000
    assert pay_code(counter, code, 20_000, "tx-big").replayed  # the decline is remembered for its retries
    assert pay_code(counter, code, 2_000, "tx-smaller").ok
    with counter.op() as op:
        revoked = counter.wallets.revoke_device(op, "shop-a", device.device_id)
    assert revoked.ok and revoked.revoked_at and not revoked.seed
    counter.clock.advance(paycodes.STEP_SECONDS)
    assert pay_code(counter, code_now(counter, device), 10, "tx-after").result is WalletResult.CODE_INVALID
    with counter.op() as op:
        assert counter.wallets.revoke_device(op, "shop-a", 12345).result is WalletResult.DEVICE_NOT_FOUND
        assert counter.wallets.revoke_device(op, "shop-a", device.device_id).revoked_at == revoked.revoked_at


def test_devices_are_enrolled_once_per_key_listed_and_survive_a_restart(counter: WalletBench) -> None:
    first = enrolled(counter)
    again = enrolled(counter)
    assert again.replayed and (again.device_id, again.number, again.seed) == (first.device_id, first.number, first.seed)
    with counter.op() as op:
        reused = counter.wallets.enroll_device(op, "shop-a", "anna", "another name", "phone-1")
        missing = counter.wallets.enroll_device(op, "shop-a", "nobody", "x", "phone-9")
    assert reused.result is WalletResult.IDEMPOTENCY_KEY_REUSED and missing.result is WalletResult.WALLET_NOT_FOUND
    second = enrolled(counter, key="tablet", name="Anna's tablet")
    assert second.number != first.number and second.seed != first.seed and second.code_key == first.code_key
    listed = counter.wallets.devices("shop-a", "anna")
    assert isinstance(listed, list) and [d.device_id for d in listed] == [first.device_id, second.device_id]
    assert all(not d.seed for d in listed)
    code = code_now(counter, second)
    assert pay_code(counter, code, 10, "tx-1").ok
    # a restart rebuilds devices and used codes from the journal; a snapshot carries them too
    for wallets in (counter.restarted(), _from_snapshot(counter)):
        counter.wallets = wallets
        assert pay_code(counter, code, 10, "tx-2").result is WalletResult.CODE_USED
        counter.clock.advance(paycodes.STEP_SECONDS)
        assert pay_code(counter, code_now(counter, first), 10, f"tx-{id(wallets)}").ok
    kinds = [event.type for seq, records in enumerate(counter.journal, 1) for event in events_of(seq, records)]
    assert kinds.count("device.enrolled") == 2 and "payment.succeeded" in kinds


def _from_snapshot(bench: WalletBench) -> object:
    from ledger.wallet import Wallets

    restored = Wallets()
    restored.restore(bench.wallets.snapshot())
    return restored


def test_used_codes_are_forgotten_once_no_code_of_their_window_is_taken(counter: WalletBench) -> None:
    device = enrolled(counter)
    for n in range(CODES_KEPT_STEPS + 3):
        assert pay_code(counter, code_now(counter, device), 1, f"tx-{n}").ok
        counter.clock.advance(paycodes.STEP_SECONDS)
    assert sum(map(len, counter.wallets.state.codes_used.values())) <= CODES_KEPT_STEPS + 1


@given(st.binary(min_size=32, max_size=32), st.integers(1, paycodes.NUMBER_MODULUS - 1), st.integers(0, 2**40))
def test_a_code_reads_back_as_its_device_number_in_its_window(seed: bytes, number: int, step: int) -> None:
    key = seed[::-1]
    code = paycodes.make_code(seed, key, number, step)
    parsed = paycodes.parse_code(code)
    assert parsed is not None
    masked, password = parsed
    now = step * paycodes.STEP_SECONDS * 10**9
    assert (step, number) in paycodes.candidates(key, masked, now)
    assert paycodes.password_matches(seed, step, password)


def test_the_derivation_is_the_one_enrolled_phones_make() -> None:
    """Phones derive codes offline: a change to the derivation would leave every enrolled phone showing codes
    the ledger refuses. These values were made by the first release's derivation."""
    secret, device_id = bytes(range(32)), 0x0123456789ABCDEF0123456789ABCDEF
    seed, key = paycodes.device_seed(secret, device_id), paycodes.code_key(secret)
    assert seed.hex() == "eb09288f85d50f1220bfa6c76c21e145b993ba03f659dbf81e744bb8c923c007"
    assert key.hex() == "2412ebda3547f50860df8e6f84a53c5e32d7263db1e11622f195d46475fe75af"
    assert paycodes.make_code(seed, key, 1_234_567_890, 59_000_000) == "284978291480012060"


# -- payment PINs ------------------------------------------------------------------------------------------

from ledger.wallet import TenantSettings  # noqa: E402 - the PIN tests' own
from ledger.wallet._pins import hash_pin, pin_matches, pin_problem  # noqa: E402


def pin_settings(bench: WalletBench, **settings: int) -> None:
    with bench.op() as op:
        assert bench.wallets.configure_tenant(op, "shop-a", TenantSettings(**settings), actor="test").ok


def set_pin(bench: WalletBench, pin: str, customer: str = "anna") -> None:
    assert pin_problem(pin) is None
    with bench.op() as op:
        assert bench.wallets.set_pin(op, "shop-a", customer, hash_pin(pin)).ok


def pay_with_pin(
    bench: WalletBench, device: DeviceReply, amount: int, transaction: str, pin: str | None
) -> PaymentReply:
    """As the server does: the PIN checked outside the writer against the code's wallet's hash."""
    code = code_now(bench, device)
    pin_ok = None
    if pin is not None:
        pin_ok = pin_matches(bench.wallets.pin_hash_for_code("shop-a", code, bench.clock.now_ns), pin)
    with bench.op() as op:
        return bench.wallets.pay_by_code(
            op, CodePayment(tenant="shop-a", code=code, amount=amount, terminal="t", transaction=transaction,
                            pin_ok=pin_ok),
        )  # fmt: skip


def test_a_pin_is_needed_above_the_tenants_amount_exactly(counter: WalletBench) -> None:
    pin_settings(counter, pin_above=2_000)
    device = enrolled(counter)
    assert pay_with_pin(counter, device, 2_000, "at-the-edge", None).ok  # not above: no PIN needed
    counter.clock.advance(paycodes.STEP_SECONDS)
    over = pay_with_pin(counter, device, 2_001, "over", None)
    assert over.result is WalletResult.PIN_REQUIRED and "no payment PIN" in over.message
    set_pin(counter, "4711")
    assert pay_with_pin(counter, device, 2_001, "over-2", None).result is WalletResult.PIN_REQUIRED
    assert pay_with_pin(counter, device, 2_001, "over-3", "4711").ok
    assert available(counter) == 10_000 - 2_000 - 2_001


def test_wrong_pins_lock_code_payments_until_the_time_or_an_operator_unlocks(counter: WalletBench) -> None:
    pin_settings(counter, pin_above=100, pin_attempts=3, pin_lock_seconds=600)
    device = enrolled(counter)
    set_pin(counter, "4711")
    first = pay_with_pin(counter, device, 500, "w1", "0000")
    assert first.result is WalletResult.PIN_INVALID and "2 more wrong" in first.message
    assert pay_with_pin(counter, device, 500, "w1", "0000").replayed  # its retry counts nothing more
    assert pay_with_pin(counter, device, 500, "w2", "1111").result is WalletResult.PIN_INVALID
    locked_at = counter.clock.now_ns
    locked = pay_with_pin(counter, device, 500, "w3", "2222")
    assert locked.result is WalletResult.PIN_LOCKED and "locked until" in locked.message
    # locked: even the right PIN and a payment below the PIN amount are refused
    assert pay_with_pin(counter, device, 500, "r1", "4711").result is WalletResult.PIN_LOCKED
    assert pay_with_pin(counter, device, 50, "small", None).result is WalletResult.PIN_LOCKED
    with counter.op() as op:
        status = counter.wallets.pin_status(op, "shop-a", "anna")
    assert status.pin_set and status.locked_until == locked_at + 600 * SECOND_NS and status.failures == 0
    counter.clock.advance(600)
    assert pay_with_pin(counter, device, 500, "r2", "4711").ok  # the lock ran out
    counter.clock.advance(paycodes.STEP_SECONDS)  # (the code of that window paid)
    for n in range(3):
        pay_with_pin(counter, device, 500, f"again-{n}", "9999")
    assert pay_with_pin(counter, device, 500, "r3", "4711").result is WalletResult.PIN_LOCKED
    with counter.op() as op:
        unlocked = counter.wallets.unlock_pin(op, "shop-a", "anna", actor="ops", reason="customer called")
    assert unlocked.ok and not unlocked.locked_until and not unlocked.failures
    assert pay_with_pin(counter, device, 500, "r4", "4711").ok
    kinds = [event.type for seq, records in enumerate(counter.journal, 1) for event in events_of(seq, records)]
    assert kinds.count("wallet.locked") == 2 and "wallet.unlocked" in kinds and "wallet.pin_set" in kinds
    # a restart keeps the PIN, its count and locks
    counter.wallets = counter.restarted()
    with counter.op() as op:
        assert counter.wallets.pin_status(op, "shop-a", "anna").pin_set
    counter.clock.advance(paycodes.STEP_SECONDS)
    assert pay_with_pin(counter, device, 500, "r5", "4711").ok and available(counter) == 10_000 - 1_500


def test_a_pin_belongs_to_a_wallet_that_exists(counter: WalletBench) -> None:
    with counter.op() as op:
        for reply in (counter.wallets.set_pin(op, "shop-a", "nobody", hash_pin("4711")),
                      counter.wallets.pin_status(op, "shop-a", "nobody"),
                      counter.wallets.unlock_pin(op, "shop-a", "nobody", actor="ops", reason="r")):  # fmt: skip
            assert reply.result is WalletResult.WALLET_NOT_FOUND
        assert counter.wallets.set_pin(op, "shop-z", "anna", hash_pin("4711")).result is WalletResult.TENANT_NOT_FOUND
    assert not counter.wallets.state.pins


def test_a_right_pin_clears_the_count_and_pins_are_checked_as_pins() -> None:
    for weak in ("1234", "0000", "98765", "12", "1234567", "12a4", "", "\uff14\uff17\uff11\uff11"):
        assert pin_problem(weak) is not None, weak
    for fine in ("4711", "2580", "135790", "90210"):
        assert pin_problem(fine) is None, fine
    hashed = hash_pin("4711")
    assert hashed.startswith("$argon2id$") and "4711" not in hashed
    assert pin_matches(hashed, "4711") and not pin_matches(hashed, "4712") and not pin_matches(None, "4711")
    assert not pin_matches("not a hash", "4711")


def test_a_pin_check_does_the_same_argon2_work_whether_the_wallet_has_a_pin_or_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ledger.wallet import _pins

    checked: list[str] = []
    real = _pins._HASHER

    class Counting:
        def verify(self, stored: str, pin: str) -> bool:
            checked.append(stored)
            return real.verify(stored, pin)

    hashed = hash_pin("4711")
    monkeypatch.setattr(_pins, "_HASHER", Counting())
    assert not pin_matches(None, "4711") and not pin_matches(hashed, "4712") and pin_matches(hashed, "4711")
    assert checked == [_pins.DUMMY_HASH, hashed, hashed]  # one Argon2id verification each, the dummy's too
    assert _pins.DUMMY_HASH.split("$")[1:4] == hashed.split("$")[1:4]  # with the same parameters


# -- failure handling at the counter -------------------------------------------------------------------------


def status_of(bench: WalletBench, transaction: str, terminal: str = "bar-1") -> Any:
    with bench.op() as op:
        return bench.wallets.code_payment(op, "shop-a", terminal, transaction)


def cancel(bench: WalletBench, transaction: str, terminal: str = "bar-1") -> Any:
    with bench.op() as op:
        return bench.wallets.cancel_code_payment(op, "shop-a", terminal, transaction, "customer changed their mind")


def test_a_terminal_learns_each_transactions_outcome_and_cancels_within_the_window(counter: WalletBench) -> None:
    device = enrolled(counter)
    code = code_now(counter, device)
    unknown = status_of(counter, "tx-lost")
    assert (unknown.result, unknown.status) == (WalletResult.PAYMENT_NOT_FOUND, "unknown")
    paid = pay_code(counter, code, 800, "tx-1")
    found = status_of(counter, "tx-1")
    assert found.ok and found.status == "paid" and found.payment.payment_id == paid.payment_id
    assert pay_code(counter, "28" + "0" * 16, 5, "tx-bad").result is WalletResult.CODE_INVALID
    declined = status_of(counter, "tx-bad")
    assert declined.status == "declined" and declined.payment.result is WalletResult.CODE_INVALID
    # cancelled after it paid: refunded in full into the wallet (no fee here), once
    cancelled = cancel(counter, "tx-1")
    assert cancelled.ok and cancelled.status == "cancelled" and cancelled.refund_id and available(counter) == 10_000
    again = cancel(counter, "tx-1")
    assert again.status == "cancelled" and again.refund_id == cancelled.refund_id and available(counter) == 10_000
    assert pay_code(counter, code, 800, "tx-1").result is WalletResult.PAYMENT_CANCELLED
    # cancelled before anything came (the terminal gave up): a late PayByCode with it pays nothing
    assert cancel(counter, "tx-2").status == "cancelled"
    counter.clock.advance(paycodes.STEP_SECONDS)
    late = pay_code(counter, code_now(counter, device), 100, "tx-2")
    assert late.result is WalletResult.PAYMENT_CANCELLED and available(counter) == 10_000
    # past the window: no cancel, a refund is the way
    assert pay_code(counter, code_now(counter, device), 300, "tx-3").ok
    counter.clock.advance(601)
    too_late = cancel(counter, "tx-3")
    assert too_late.result is WalletResult.CANCEL_TOO_LATE and available(counter) == 9_700
    kinds = [event.type for seq, records in enumerate(counter.journal, 1) for event in events_of(seq, records)]
    assert kinds.count("payment.cancelled") == 2 and "refund.succeeded" in kinds
    counter.wallets = counter.restarted()
    assert status_of(counter, "tx-1").status == "cancelled" and status_of(counter, "tx-3").status == "paid"


# -- risk limits -----------------------------------------------------------------------------------------------


def test_risk_limits_hold_at_their_exact_edges_and_name_the_limit(counter: WalletBench) -> None:
    pin_settings(counter, code_payment_max=1_000, wallet_hour_amount=1_500, wallet_hour_count=3,
                 wallet_day_amount=2_500, terminal_day_amount=100_000)  # fmt: skip
    hour_ns = 3_600 * SECOND_NS
    counter.clock.now_ns = (counter.clock.now_ns // (86_400 * SECOND_NS) + 1) * 86_400 * SECOND_NS  # midnight UTC
    phones = [enrolled(counter, key=f"phone-{n}") for n in range(8)]  # a fresh code for each payment

    def pay_next(amount: int, transaction: str, phone: int) -> PaymentReply:
        return pay_code(counter, code_now(counter, phones[phone]), amount, transaction)

    over_one = pay_next(1_001, "one-too-many", 0)
    assert over_one.result is WalletResult.LIMIT_EXCEEDED and over_one.message.startswith("code_payment_max:")
    assert pay_next(1_000, "max", 0).ok  # exactly the largest one payment
    assert pay_next(500, "to-the-hour-amount", 1).ok  # exactly 15.00 this hour
    hour = pay_next(1, "past-the-hour-amount", 2)
    assert hour.result is WalletResult.LIMIT_EXCEEDED and hour.message.startswith("wallet_hour_amount:")
    counter.clock.advance(3_600)  # the next clock hour
    assert pay_next(1, "a", 3).ok and pay_next(1, "b", 4).ok and pay_next(1, "c", 5).ok  # 3 payments: the count
    count = pay_next(1, "d", 6)
    assert count.result is WalletResult.LIMIT_EXCEEDED and count.message.startswith("wallet_hour_count:")
    counter.clock.now_ns += hour_ns
    day = pay_next(998, "past-the-day", 6)  # 1,503 + 998 > 2,500
    assert day.result is WalletResult.LIMIT_EXCEEDED and day.message.startswith("wallet_day_amount:")
    assert pay_next(997, "to-the-day", 6).ok  # exactly 25.00 today
    counter.clock.advance(86_400)
    assert pay_next(1_000, "tomorrow", 7).ok
    assert available(counter) == 10_000 - 2_500 - 1_000
    # a restart keeps the counts
    counter.wallets = counter.restarted()
    assert pay_next(600, "after-restart", 6).result is WalletResult.LIMIT_EXCEEDED  # 10.00 + 6.00 > 15.00 an hour


def test_the_sums_the_limits_count_are_kept_only_while_a_limit_counts_them(counter: WalletBench) -> None:
    phones = [enrolled(counter, key=f"phone-{n}") for n in range(3)]
    assert pay_code(counter, code_now(counter, phones[0]), 700, "before-any-limit").ok
    assert counter.wallets.state.spending == {}  # no limit counts an hour or a day: nothing to keep per payment
    pin_settings(counter, wallet_hour_amount=1_000)
    assert pay_code(counter, code_now(counter, phones[1]), 600, "first-counted").ok  # counted from the limit on
    over = pay_code(counter, code_now(counter, phones[2]), 401, "past-it")
    assert over.result is WalletResult.LIMIT_EXCEEDED and over.message.startswith("wallet_hour_amount:")
    assert counter.restarted().state.spending == counter.wallets.state.spending  # the journal says the same


def test_a_terminal_is_flagged_when_codes_refused_there_pass_the_tenants_threshold(counter: WalletBench) -> None:
    pin_settings(counter, terminal_declines_flag=3, terminal_day_amount=500)
    for n in range(5):
        assert pay_code(counter, "28" + f"{n:016d}", 10, f"bad-{n}").result is WalletResult.CODE_INVALID
    kinds = [event.type for seq, records in enumerate(counter.journal, 1) for event in events_of(seq, records)]
    assert kinds.count("terminal.flagged") == 1  # at the third, once per 10 minutes
    counter.clock.advance(601)
    for n in range(3):
        pay_code(counter, "28" + f"{n:016d}", 10, f"later-{n}")
    kinds = [event.type for seq, records in enumerate(counter.journal, 1) for event in events_of(seq, records)]
    assert kinds.count("terminal.flagged") == 2
    flagged = [e for seq, r in enumerate(counter.journal, 1) for e in events_of(seq, r) if e.type == "terminal.flagged"]
    assert flagged[0].data["terminal"] == "bar-1"
    # the terminal's own limit: what it may take in a day, over every wallet
    device = enrolled(counter)
    assert pay_code(counter, code_now(counter, device), 500, "all-of-it").ok
    counter.clock.advance(paycodes.STEP_SECONDS)
    other = pay_code(counter, code_now(counter, device), 1, "one-more")
    assert other.result is WalletResult.LIMIT_EXCEEDED and other.message.startswith("terminal_day_amount:")
    assert pay_code(counter, code_now(counter, device), 1, "elsewhere", terminal="bar-2").ok


# -- payment requests a terminal shows ---------------------------------------------------------------------------


def request(bench: WalletBench, amount: int, key: str, seconds: int = 60, reference: str = "order 17") -> Any:
    with bench.op() as op:
        return bench.wallets.create_payment_request(op, "shop-a", "bar-1", amount, reference, seconds, key)


def confirm(bench: WalletBench, request_id: int, customer: str = "anna", pin: str | None = None) -> PaymentReply:
    pin_ok = None
    if pin is not None:
        pin_ok = pin_matches(bench.wallets.state.pins.get(_wallet_of(bench, customer)), pin)
    with bench.op() as op:
        return bench.wallets.confirm_payment_request(op, "shop-a", request_id, customer, pin_ok=pin_ok)


def _wallet_of(bench: WalletBench, customer: str) -> int:
    from ledger.wallet import wallet_id

    return wallet_id("shop-a", customer, "EUR")


def test_a_terminals_request_is_paid_once_by_one_customer_before_it_expires(counter: WalletBench) -> None:
    opened(counter, "ben")
    made = request(counter, 1_200, "r1")
    assert made.ok and made.status == "open" and made.expires_at == made.created_at + 60 * SECOND_NS
    assert request(counter, 1_200, "r1").replayed
    assert request(counter, 1_300, "r1").result is WalletResult.IDEMPOTENCY_KEY_REUSED
    poor = confirm(counter, made.request_id, "ben")  # ben has nothing: declined, the request stays open
    assert poor.result is WalletResult.INSUFFICIENT_FUNDS
    paid = confirm(counter, made.request_id)
    assert paid.ok and paid.payment_id == made.request_id and available(counter) == 8_800
    assert confirm(counter, made.request_id).replayed  # anna's phone asked again: the same payment
    assert confirm(counter, made.request_id, "ben").result is WalletResult.REQUEST_NOT_OPEN
    with counter.op() as op:
        assert counter.wallets.payment_request(op, "shop-a", made.request_id).status == "paid"
        assert (
            counter.wallets.cancel_payment_request(op, "shop-a", made.request_id).result
            is WalletResult.REQUEST_NOT_OPEN
        )
    # expiry, cancel, unknown ids
    late = request(counter, 100, "r2", seconds=30)
    counter.clock.advance(30)
    assert confirm(counter, late.request_id).result is WalletResult.REQUEST_EXPIRED
    withdrawn = request(counter, 100, "r3")
    with counter.op() as op:
        assert counter.wallets.cancel_payment_request(op, "shop-a", withdrawn.request_id).status == "cancelled"
        assert counter.wallets.payment_request(op, "shop-a", late.request_id).status == "expired"
        assert counter.wallets.payment_request(op, "shop-a", 12345).result is WalletResult.REQUEST_NOT_FOUND
    assert confirm(counter, withdrawn.request_id).result is WalletResult.REQUEST_NOT_OPEN
    for bad in (
        request(counter, 0, "b1"),
        request(counter, 1, "b2", seconds=601),
        request(counter, 1, "b3", reference=""),
    ):
        assert not bad.ok
    assert available(counter) == 8_800
    kinds = [event.type for seq, records in enumerate(counter.journal, 1) for event in events_of(seq, records)]
    assert kinds.count("payment_request.created") == 3 and kinds.count("payment_request.paid") == 1
    assert "payment_request.cancelled" in kinds
    counter.wallets = counter.restarted()
    with counter.op() as op:
        assert counter.wallets.payment_request(op, "shop-a", made.request_id).status == "paid"


def test_a_request_above_the_pin_amount_needs_the_pin_and_counts_towards_the_limits(counter: WalletBench) -> None:
    pin_settings(counter, pin_above=1_000, wallet_hour_amount=2_000)
    set_pin(counter, "4711")
    made = request(counter, 1_500, "r1")
    assert confirm(counter, made.request_id).result is WalletResult.PIN_REQUIRED
    assert confirm(counter, made.request_id, pin="0000").result is WalletResult.PIN_INVALID
    with counter.op() as op:
        assert counter.wallets.pin_status(op, "shop-a", "anna").failures == 1
    assert confirm(counter, made.request_id, pin="4711").ok
    second = request(counter, 600, "r2")
    limit = confirm(counter, second.request_id)
    assert limit.result is WalletResult.LIMIT_EXCEEDED and limit.message.startswith("wallet_hour_amount:")


def test_terminals_that_stopped_refusing_codes_are_forgotten(counter: WalletBench) -> None:
    from ledger.wallet._state import REFUSING_TERMINALS_KEPT

    for n in range(REFUSING_TERMINALS_KEPT + 200):
        if n == REFUSING_TERMINALS_KEPT // 2:
            counter.clock.advance(601)  # the first half's refusals leave the window
        assert (
            pay_code(counter, "28" + "0" * 16, 1, f"tx-{n}", terminal=f"till-{n}").result is WalletResult.CODE_INVALID
        )
    assert len(counter.wallets.state.refusals) <= REFUSING_TERMINALS_KEPT
    assert "shop-a\x00till-0" not in counter.wallets.state.refusals
    assert f"shop-a\x00till-{REFUSING_TERMINALS_KEPT + 199}" in counter.wallets.state.refusals
    assert counter.restarted().state.refusals == counter.wallets.state.refusals


def hold_code(counter: WalletBench, code: str, amount: int, transaction: str, **fields: Any) -> HoldReply:
    with counter.op() as op:
        return counter.wallets.hold_by_code(op, CodePayment(
            tenant="shop-a", code=code, amount=amount, terminal=str(fields.pop("terminal", "bar-1")),
            transaction=transaction, **fields), seconds=3_600)  # fmt: skip


def test_a_code_holds_an_amount_captured_later_with_the_tip(counter: WalletBench) -> None:
    device = enrolled(counter)
    code = code_now(counter, device)
    held = hold_code(counter, code, 3_000, "table-7")
    assert held.ok and held.status == "pending" and held.wallet_id == device.wallet_id and available(counter) == 7_000
    # a retry of the transaction, even once the code turned: the same hold; the code is used
    counter.clock.advance(2 * paycodes.STEP_SECONDS)
    again = hold_code(counter, code, 3_000, "table-7")
    assert again.replayed and again.hold_id == held.hold_id
    assert (
        hold_code(counter, code, 3_000, "table-7", order_reference="other").result
        is WalletResult.IDEMPOTENCY_KEY_REUSED
    )
    assert pay_code(counter, code, 10, "tx-other").result is WalletResult.CODE_INVALID  # its window is over
    fresh = code_now(counter, device)
    assert hold_code(counter, fresh, 100, "table-8").ok
    assert pay_code(counter, fresh, 10, "tx-again").result is WalletResult.CODE_USED  # held with: used
    # the bill was 26.00 and the tip 2.50: 28.50 captured, the rest released
    with counter.op() as op:
        captured = counter.wallets.capture(op, "shop-a", held.hold_id, 2_850, "capture-7")
    assert captured.ok and available(counter) == 10_000 - 2_850 - 100
    # codes' rules hold: a bad code, a PIN above pin_above, another tenant's code
    assert hold_code(counter, "28" + "0" * 16, 100, "table-9").result is WalletResult.CODE_INVALID
    kinds = [event.type for seq, records in enumerate(counter.journal, 1) for event in events_of(seq, records)]
    assert kinds.count("hold.authorized") == 2 and kinds.count("hold.refused") == 1


def test_a_hold_by_code_needs_the_pin_above_the_tenants_amount(counter: WalletBench) -> None:
    with counter.op() as op:
        tenant = counter.wallets.tenant("shop-a")
        assert tenant is not None
        settings = dataclasses.replace(tenant.settings, pin_above=2_000)
        assert counter.wallets.configure_tenant(op, "shop-a", settings, actor="test").ok
    device = enrolled(counter)
    set_pin(counter, "4711")
    code = code_now(counter, device)
    assert hold_code(counter, code, 2_500, "t1").result is WalletResult.PIN_REQUIRED
    assert hold_code(counter, code, 2_500, "t2", pin_ok=False).result is WalletResult.PIN_INVALID
    assert hold_code(counter, code, 2_500, "t3", pin_ok=True).ok and available(counter) == 7_500
    assert hold_code(counter, code, 2_000, "t4", currency="USD").result is WalletResult.CURRENCY_MISMATCH
