"""Payments by code against a plain model of the counter, on both engines.

Hypothesis runs a state machine over one tenant (PINs above 5.00, three wrong tries lock for 10 minutes, at
most 30.00 a clock hour per wallet) and two customers with two phones each: payments by the code of the
current window, of the one before (the grace) and of the one before that, with no PIN, the right one or a
wrong one; retries of earlier transactions with the same request and with another; cancels within and past
their window; unlocks; revoked phones; clock jumps; and restarts from the journal and from a snapshot.

The same payments and retries also go in batches (Wallets.pay_by_code_many, what PayByCodeBatch runs), a
code or a transaction sometimes twice in one batch: the model answers a batch's payments as if they came one
after the other, so the batched path must agree with the unary one.

The model predicts every answer and after every step the engine's wallet balances must be the model's:
money is conserved, a code never pays twice, a locked wallet and a cancelled transaction never pay, and a
retry replays its original answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger.engine import Engine
from ledger.wallet import CodePayment, PaymentReply, TenantSettings, TopUp, TopUpSource, WalletResult, Wallets
from ledger.wallet import _paycodes as paycodes
from tests.support import ENGINE_CLASSES
from tests.wallets import SECOND_NS, WalletBench

WR = WalletResult
PIN = "4711"
PIN_ABOVE = 500
ATTEMPTS = 3
LOCK_SECONDS = 600
HOUR_MAX = 3_000
CANCEL_SECONDS = 600
CUSTOMERS = ("anna", "ben")
STEP = paycodes.STEP_SECONDS
AGES = st.sampled_from([0, 0, 0, 1, 2])
"""How many windows ago the code shown was made: the current one mostly, the grace one, one past it."""
AMOUNTS = st.sampled_from([1, 200, PIN_ABOVE, PIN_ABOVE + 1, 1_500, HOUR_MAX, 20_000])
PINS = st.sampled_from([None, None, True, False])
"""No PIN given, the right one, a wrong one."""


@dataclass
class Sent:
    """A transaction as the terminal sent it, and what the model said it did."""

    code: str
    amount: int
    pin: bool | None
    result: WalletResult
    customer: str = ""
    paid_at: int = 0


@dataclass
class ModelWallet:
    balance: int = 10_000
    failures: int = 0
    locked_until: int = 0
    spent: dict[int, int] = field(default_factory=dict)
    """Clock hour -> amount asked by code in it."""


class CounterMachine(RuleBasedStateMachine):
    engine_class: type[Engine]

    def __init__(self) -> None:
        super().__init__()
        self.bench = WalletBench(self.engine_class)
        self.wallets = {customer: ModelWallet() for customer in CUSTOMERS}
        self.phones: dict[tuple[str, int], tuple[bytes, bytes, int, int]] = {}
        """(customer, n) -> seed, code key, number, device id."""
        self.revoked: set[tuple[str, int]] = set()
        self.used: set[tuple[str, int, int]] = set()
        """(customer, phone, window) that paid."""
        self.sent: dict[str, Sent] = {}
        self.cancelled: dict[str, bool] = {}
        """Transaction -> whether its cancel refunded."""
        self.transactions = 0

    @property
    def now(self) -> int:
        return self.bench.clock.now_ns

    @initialize()
    def set_up(self) -> None:
        settings_ = TenantSettings(pin_above=PIN_ABOVE, pin_attempts=ATTEMPTS, pin_lock_seconds=LOCK_SECONDS,
                                   wallet_hour_amount=HOUR_MAX)  # fmt: skip
        with self.bench.op() as op:
            assert self.bench.wallets.create_tenant(op, "bar", "EUR", settings_, actor="test").ok
        for customer in CUSTOMERS:
            with self.bench.op() as op:
                assert self.bench.wallets.open_wallet(op, "bar", customer).ok
                request = TopUp(tenant="bar", customer=customer, amount=10_000, key=f"t-{customer}",
                                source=TopUpSource.GIFT, never_expires=True)  # fmt: skip
                assert self.bench.wallets.top_up(op, request).ok
                assert self.bench.wallets.set_pin(op, "bar", customer, HASHES[PIN]).ok
            for n in range(2):
                with self.bench.op() as op:
                    device = self.bench.wallets.enroll_device(op, "bar", customer, f"phone {n}", f"{customer}-{n}")
                assert device.ok
                self.phones[(customer, n)] = (device.seed, device.code_key, device.number, device.device_id)

    # -- the model's answer --------------------------------------------------------------------------------

    def expect(self, customer: str, phone: int, age: int, amount: int, pin: bool | None) -> tuple[WalletResult, int]:
        """What a new transaction gets, and the window it pays from."""
        window = paycodes.step_at(self.now) - age
        wallet = self.wallets[customer]
        if age > paycodes.GRACE_STEPS or (customer, phone) in self.revoked:
            return WR.CODE_INVALID, window
        if (customer, phone, window) in self.used:
            return WR.CODE_USED, window
        if wallet.locked_until > self.now:
            return WR.PIN_LOCKED, window
        if pin is False:
            return (WR.PIN_LOCKED if wallet.failures + 1 >= ATTEMPTS else WR.PIN_INVALID), window
        if amount > PIN_ABOVE and pin is not True:
            return WR.PIN_REQUIRED, window
        if wallet.spent.get(self.now // SECOND_NS // 3_600, 0) + amount > HOUR_MAX:
            return WR.LIMIT_EXCEEDED, window
        if amount > wallet.balance:
            return WR.INSUFFICIENT_FUNDS, window
        return WR.OK, window

    def apply(
        self, customer: str, phone: int, window: int, amount: int, pin: bool | None, result: WalletResult
    ) -> None:
        wallet = self.wallets[customer]
        if result is WR.OK:
            wallet.balance -= amount
            hour = self.now // SECOND_NS // 3_600
            wallet.spent[hour] = wallet.spent.get(hour, 0) + amount
            self.used.add((customer, phone, window))
            if pin:
                wallet.failures = 0
        elif result in (WR.PIN_INVALID, WR.PIN_LOCKED) and pin is False and wallet.locked_until <= self.now:
            wallet.failures += 1
            if wallet.failures >= ATTEMPTS:
                wallet.failures, wallet.locked_until = 0, self.now + LOCK_SECONDS * SECOND_NS

    # -- rules ----------------------------------------------------------------------------------------------

    def code(self, customer: str, phone: int, age: int) -> str:
        seed, key, number, _ = self.phones[(customer, phone)]
        return paycodes.make_code(seed, key, number, paycodes.step_at(self.now) - age)

    def paying(self, transaction: str, code: str, amount: int, pin: bool | None) -> CodePayment:
        pin_ok = None
        if pin is not None:
            stored = self.bench.wallets.pin_hash_for_code("bar", code, self.now)
            pin_ok = stored is not None and stored == HASHES[PIN] and pin  # the hash check, without Argon2's cost
        return CodePayment(tenant="bar", code=code, amount=amount, terminal="till", transaction=transaction,
                           pin_ok=pin_ok)  # fmt: skip

    def pay(self, transaction: str, code: str, amount: int, pin: bool | None) -> WalletResult:
        with self.bench.op() as op:
            reply = self.bench.wallets.pay_by_code(op, self.paying(transaction, code, amount, pin))
        return reply.result

    def paid(self, transaction: str, reply: PaymentReply) -> None:
        """A new transaction's answer: when it paid, by the ledger's clock (what a cancel is measured from)."""
        if reply.result is WR.OK and not reply.replayed:
            self.sent[transaction].paid_at = reply.timestamp

    def new_transaction(self, customer: str, phone: int, age: int, amount: int, pin: bool | None) -> tuple[str, str]:
        """A new transaction's id and code, and what the model says it does (applied to the model)."""
        self.transactions += 1
        transaction = f"tx{self.transactions}"
        expected, window = self.expect(customer, phone, age, amount, pin)
        code = self.code(customer, phone, age)
        self.apply(customer, phone, window, amount, pin, expected)
        self.sent[transaction] = Sent(code, amount, pin, expected, customer)
        return transaction, code

    @rule(customer=st.sampled_from(CUSTOMERS), phone=st.integers(0, 1), age=AGES, amount=AMOUNTS, pin=PINS)
    def new_payment(self, customer: str, phone: int, age: int, amount: int, pin: bool | None) -> None:
        transaction, code = self.new_transaction(customer, phone, age, amount, pin)
        with self.bench.op() as op:
            reply = self.bench.wallets.pay_by_code(op, self.paying(transaction, code, amount, pin))
        assert reply.result is self.sent[transaction].result
        self.paid(transaction, reply)

    @rule(data=st.data(), count=st.integers(1, 6))
    def batch(self, data: st.DataObject, count: int) -> None:
        """New payments and retries of earlier transactions (of this batch too) in one pay_by_code_many."""
        requests: list[CodePayment] = []
        expected: list[WalletResult] = []
        new: list[str] = []
        for _ in range(count):
            if self.sent and data.draw(st.booleans(), label="retry"):
                transaction = data.draw(st.sampled_from(sorted(self.sent)), label="transaction")
                result = WR.PAYMENT_CANCELLED if transaction in self.cancelled else self.sent[transaction].result
            else:
                customer = data.draw(st.sampled_from(CUSTOMERS), label="customer")
                phone, age = data.draw(st.integers(0, 1), label="phone"), data.draw(AGES, label="age")
                amount, pin = data.draw(AMOUNTS, label="amount"), data.draw(PINS, label="pin")
                transaction = self.new_transaction(customer, phone, age, amount, pin)[0]
                result = self.sent[transaction].result
                new.append(transaction)
            sent = self.sent[transaction]
            requests.append(self.paying(transaction, sent.code, sent.amount, sent.pin))
            expected.append(result)
        with self.bench.op() as op:
            replies = self.bench.wallets.pay_by_code_many(op, requests)
        assert [reply.result for reply in replies] == expected
        for request, reply in zip(requests, replies, strict=True):
            if request.transaction in new:
                self.paid(request.transaction, reply)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data(), same=st.booleans())
    def retry(self, data: st.DataObject, same: bool) -> None:
        transaction = data.draw(st.sampled_from(sorted(self.sent)), label="transaction")
        sent = self.sent[transaction]
        amount = sent.amount if same else sent.amount + 1
        expected = WR.PAYMENT_CANCELLED if transaction in self.cancelled else sent.result if same else None
        result = self.pay(transaction, sent.code, amount, sent.pin)
        if expected is None:  # another request under a used key: refused, unless the first was never kept
            assert result is WR.IDEMPOTENCY_KEY_REUSED
        else:
            assert result is expected

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        transaction = data.draw(st.sampled_from(sorted(self.sent)), label="transaction")
        sent = self.sent[transaction]
        now = self.now  # as the cancel reads it (the engine's clock moves on while it applies)
        with self.bench.op() as op:
            reply = self.bench.wallets.cancel_code_payment(op, "bar", "till", transaction, "changed mind")
        if transaction in self.cancelled:
            assert reply.ok and reply.status == "cancelled"
            return
        if sent.result is WR.OK and now - sent.paid_at > CANCEL_SECONDS * SECOND_NS:
            assert reply.result is WR.CANCEL_TOO_LATE
            return
        assert reply.ok and reply.status == "cancelled"
        refunded = sent.result is WR.OK
        if refunded:
            self.wallets[sent.customer].balance += sent.amount
        self.cancelled[transaction] = refunded

    @rule(customer=st.sampled_from(CUSTOMERS))
    def unlock(self, customer: str) -> None:
        with self.bench.op() as op:
            assert self.bench.wallets.unlock_pin(op, "bar", customer, actor="desk", reason="called").ok
        self.wallets[customer].failures = 0
        self.wallets[customer].locked_until = 0

    @rule(customer=st.sampled_from(CUSTOMERS), phone=st.integers(0, 1))
    def revoke(self, customer: str, phone: int) -> None:
        with self.bench.op() as op:
            assert self.bench.wallets.revoke_device(op, "bar", self.phones[(customer, phone)][3]).ok
        self.revoked.add((customer, phone))

    @rule(seconds=st.sampled_from([1, STEP - 1, STEP, STEP + 1, 2 * STEP, LOCK_SECONDS, 3_600]))
    def wait(self, seconds: int) -> None:
        self.bench.clock.advance(seconds)

    @rule(how=st.sampled_from(["journal", "snapshot"]))
    def restart(self, how: str) -> None:
        live = self.bench.wallets.snapshot()
        if how == "journal":
            wallets = self.bench.restarted()
        else:
            wallets = Wallets()
            wallets.restore(live)
        assert wallets.snapshot() == live
        self.bench.wallets = wallets

    @invariant()
    def balances_and_pins_are_the_models(self) -> None:
        for customer, wallet in self.wallets.items():
            with self.bench.op() as op:
                balance = self.bench.wallets.balance(op, "bar", customer)
            assert balance.available == wallet.balance, customer
            with self.bench.op() as op:
                status = self.bench.wallets.pin_status(op, "bar", customer)
            locked = status.locked_until if status.locked_until > self.now else 0
            assert (status.failures, locked) == (wallet.failures, wallet.locked_until if locked else 0), customer


HASHES = {PIN: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$model-hash-of-the-pin"}
"""The tests' PIN hash: the machine compares it instead of running Argon2 (its own tests do that)."""


@pytest.mark.parametrize("engine_class", list(ENGINE_CLASSES.values()), ids=list(ENGINE_CLASSES))
def test_payments_by_code_agree_with_a_plain_model(engine_class: type[Engine]) -> None:
    machine = type(f"CounterMachine_{engine_class.__name__}", (CounterMachine,), {"engine_class": engine_class})
    run_state_machine_as_test(
        machine, settings=settings(max_examples=max(25, settings().max_examples // 10), stateful_step_count=40)
    )
