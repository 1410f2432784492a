"""Pay links against a plain model, on both engines.

Hypothesis runs a state machine over one tenant (partial payment allowed, three wrong PINs lock for 10
minutes) and two customers: links made single-use, reusable or partial, for any customer or for one; the
customer's wallet and PIN (none, right or wrong) given on a link's page, then the one-time code (right or
wrong), again and again (retries), for links open, paid, expired and cancelled; top-ups between, unlocks,
clock jumps, the expiry sweep, and restarts from the journal and from a snapshot.

The model predicts every answer, and after every step the wallets' balances and PIN locks and every link's
status, payments and sum paid are the model's: a link pays at most its amount (or, reusable, its amount each
time), a one-time code pays once (its retries replay), and nothing pays past a wrong code, a lock or an expiry.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import event, settings
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
from ledger.wallet import TenantSettings, TopUp, TopUpSource, WalletResult, Wallets
from ledger.wallet._domain import CHALLENGE_SECONDS, CHALLENGE_TRIES, CHALLENGES_PER_PAYMENT, LINK_CHALLENGES_FREE
from ledger.wallet._state import CHALLENGES_KEPT_SECONDS
from tests.support import ENGINE_CLASSES
from tests.wallets import SECOND_NS, WalletBench

WR = WalletResult
ATTEMPTS = 3
LOCK_SECONDS = 600
CUSTOMERS = ("anna", "ben")
HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$model-hash-of-the-pin"
CODE = "246810"


@dataclass
class ModelLink:
    link_id: int
    token: str
    amount: int
    reusable: bool
    partial: bool
    customer: str
    expires_at: int
    status: str = "open"
    paid: int = 0
    payments: int = 0
    challenges: int = 0


@dataclass
class ModelChallenge:
    link: str
    customer: str
    expires_at: int
    tries: int = CHALLENGE_TRIES
    paid: int = -1
    """What its payment paid, once answered (-1: not yet)."""
    forgotten: bool = False
    """Dropped a day after it expired, when a later one was made (then answered as unknown)."""


@dataclass
class ModelWallet:
    balance: int = 5_000
    failures: int = 0
    locked_until: int = 0


class PayLinkMachine(RuleBasedStateMachine):
    engine_class: type[Engine]

    def __init__(self) -> None:
        super().__init__()
        self.bench = WalletBench(self.engine_class)
        self.wallets = {customer: ModelWallet() for customer in CUSTOMERS}
        self.links: dict[str, ModelLink] = {}
        self.challenges: dict[int, ModelChallenge] = {}
        self.top_ups = 0

    @property
    def now(self) -> int:
        return self.bench.clock.now_ns

    @initialize()
    def set_up(self) -> None:
        tenant = TenantSettings(partial_payment=True, pin_attempts=ATTEMPTS, pin_lock_seconds=LOCK_SECONDS)
        with self.bench.op() as op:
            assert self.bench.wallets.create_tenant(op, "shop", "EUR", tenant, actor="test").ok
        for customer in CUSTOMERS:
            with self.bench.op() as op:
                assert self.bench.wallets.open_wallet(op, "shop", customer).ok
                assert self.bench.wallets.top_up(op, TopUp(tenant="shop", customer=customer, amount=5_000,
                                                           key=f"t-{customer}", source=TopUpSource.GIFT,
                                                           never_expires=True)).ok  # fmt: skip
                assert self.bench.wallets.set_pin(op, "shop", customer, HASH).ok

    def refusal(self, link: ModelLink) -> WalletResult | None:
        if link.status != "open":
            return WR.REQUEST_NOT_OPEN
        if self.now >= link.expires_at:
            return WR.REQUEST_EXPIRED
        return None

    # -- rules ----------------------------------------------------------------------------------------------

    @rule(amount=st.sampled_from([1, 700, 2_500, 5_000, 9_000]),
          kind=st.sampled_from(["single", "reusable", "partial"]), seconds=st.sampled_from([60, 600, 86_400]),
          customer=st.sampled_from(["", "", "anna", "ben"]))  # fmt: skip
    def make_link(self, amount: int, kind: str, seconds: int, customer: str) -> None:
        key = f"link-{len(self.links)}"
        with self.bench.op() as op:
            reply = self.bench.wallets.create_pay_link(op, "shop", amount, f"order {key}", "", "+4915112345678",
                                                       customer, seconds, key, reusable=kind == "reusable",
                                                       partial=kind == "partial")  # fmt: skip
        assert reply.ok and reply.status == "open"
        self.links[key] = ModelLink(reply.link_id, reply.token, amount, kind == "reusable", kind == "partial",
                                    customer, self.now + seconds * SECOND_NS)  # fmt: skip

    @precondition(lambda self: bool(self.links))
    @rule(data=st.data(), customer=st.sampled_from([*CUSTOMERS, "eve"]), pin=st.sampled_from([True, True, False, None]))
    def start(self, data: st.DataObject, customer: str, pin: bool | None) -> None:
        key = data.draw(st.sampled_from(sorted(self.links)), label="link")
        link = self.links[key]
        challenge_id = len(self.challenges) + 1
        now = self.now
        pin_ok = None  # as the server checks it: against the named wallet's hash (none: no wallet, never right)
        if pin is not None:
            pin_ok = pin and self.bench.wallets.link_pin_hash(link.token, customer) == HASH
        with self.bench.op() as op:
            reply = self.bench.wallets.start_pay_link_payment(op, link.token, customer, pin_ok, challenge_id, CODE)
        wallet = self.wallets.get(customer)
        refused = self.refusal(link)
        if refused is not None:
            assert reply.result is refused
            return
        foreign = link.customer not in ("", customer)  # another customer's link: as a wrong PIN
        right = pin is True and wallet is not None and not foreign
        if pin is None and not foreign:
            assert reply.result is WR.PIN_REQUIRED
        elif not right:
            if wallet is not None and wallet.locked_until <= now:
                wallet.failures += 1
                if wallet.failures >= ATTEMPTS:
                    wallet.failures, wallet.locked_until = 0, now + LOCK_SECONDS * SECOND_NS
                    assert reply.result is WR.PIN_LOCKED
                    return
            locked = wallet is not None and wallet.locked_until > now
            assert reply.result is (WR.PIN_LOCKED if locked else WR.PIN_INVALID)
        elif wallet is not None and wallet.locked_until > now:
            assert reply.result is WR.PIN_LOCKED
        elif link.challenges >= LINK_CHALLENGES_FREE + CHALLENGES_PER_PAYMENT * link.payments:
            assert reply.result is WR.LIMIT_EXCEEDED
        else:
            assert reply.ok, reply.message
            assert wallet is not None
            wallet.failures = 0
            link.challenges += 1
            expires_at = min(now + CHALLENGE_SECONDS * SECOND_NS, link.expires_at)
            self.challenges[challenge_id] = ModelChallenge(key, customer, expires_at)
            kept = [known for known in self.challenges.values() if not known.forgotten]
            since = expires_at - CHALLENGES_KEPT_SECONDS * SECOND_NS
            if kept[0].expires_at < since:  # the oldest kept is past its day: all that are go
                for known in kept:
                    known.forgotten = known.expires_at < since

    @precondition(lambda self: bool(self.challenges))
    @rule(data=st.data(), right=st.sampled_from([True, True, False]))
    def answer(self, data: st.DataObject, right: bool) -> None:
        challenge_id = data.draw(st.sampled_from(sorted(self.challenges)), label="challenge")
        challenge = self.challenges[challenge_id]
        link = self.links[challenge.link]
        wallet = self.wallets[challenge.customer]
        now = self.now
        with self.bench.op() as op:
            reply = self.bench.wallets.pay_pay_link(op, link.token, challenge_id, CODE if right else "000000")
        if challenge.forgotten:
            assert reply.result is WR.CHALLENGE_INVALID
            return
        if challenge.paid >= 0:  # answered before: the same payment again, or a wrong code refused
            assert (reply.result, reply.replayed, reply.paid) == ((WR.OK, True, challenge.paid) if right else
                                                                  (WR.CHALLENGE_INVALID, False, 0))  # fmt: skip
            return
        refused = self.refusal(link)
        if refused is not None:
            assert reply.result is refused
        elif challenge.tries <= 0 or now >= challenge.expires_at:
            assert reply.result is WR.CHALLENGE_INVALID
        elif not right:
            assert reply.result is WR.CHALLENGE_INVALID
            challenge.tries -= 1
        elif wallet.locked_until > now:
            assert reply.result is WR.PIN_LOCKED
        else:
            paid = min(link.amount, wallet.balance) if link.partial else link.amount
            if not paid or paid > wallet.balance:
                assert reply.result is WR.INSUFFICIENT_FUNDS  # not kept: the code may be answered again
                return
            assert reply.ok and reply.paid == paid and not reply.replayed, reply.message
            event(f"paid a {'reusable' if link.reusable else 'partial' if link.partial else 'single-use'} link")
            wallet.balance -= paid
            challenge.paid = paid
            link.paid += paid
            link.payments += 1
            link.status = "open" if link.reusable else "paid" if paid == link.amount else "partially_paid"

    @precondition(lambda self: bool(self.links))
    @rule(data=st.data(), customer=st.sampled_from(CUSTOMERS))
    def pay(self, data: st.DataObject, customer: str) -> None:
        """The common path: the right PIN, then the right code at once."""
        before = set(self.challenges)
        self.start(data, customer, True)
        for made in set(self.challenges) - before:
            self.answer(_Only(made), True)

    @precondition(lambda self: bool(self.links))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.links)), label="link")
        link = self.links[key]
        with self.bench.op() as op:
            reply = self.bench.wallets.cancel_pay_link(op, "shop", link.link_id)
        if link.status == "open" and self.now < link.expires_at:
            link.status = "cancelled"
        assert reply.ok and reply.status == self.shown_status(link)

    @rule(customer=st.sampled_from(CUSTOMERS), amount=st.sampled_from([100, 3_000]))
    def top_up(self, customer: str, amount: int) -> None:
        self.top_ups += 1
        with self.bench.op() as op:
            assert self.bench.wallets.top_up(op, TopUp(tenant="shop", customer=customer, amount=amount,
                                                       key=f"top-{self.top_ups}", source=TopUpSource.GIFT,
                                                       never_expires=True)).ok  # fmt: skip
        self.wallets[customer].balance += amount

    @rule(customer=st.sampled_from(CUSTOMERS))
    def unlock(self, customer: str) -> None:
        with self.bench.op() as op:
            assert self.bench.wallets.unlock_pin(op, "shop", customer, actor="desk", reason="called").ok
        self.wallets[customer].failures = 0
        self.wallets[customer].locked_until = 0

    @rule(seconds=st.sampled_from([1, 59, 60, CHALLENGE_SECONDS, LOCK_SECONDS, 86_400]))
    def wait(self, seconds: int) -> None:
        self.bench.clock.advance(seconds)

    @rule()
    def sweep(self) -> None:
        with self.bench.op() as op:
            self.bench.wallets.sweep(op)
        for link in self.links.values():
            if link.status == "open" and self.now >= link.expires_at:
                link.status = "expired"

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

    def shown_status(self, link: ModelLink) -> str:
        return "expired" if link.status == "open" and self.now >= link.expires_at else link.status

    @invariant()
    def wallets_and_links_are_the_models(self) -> None:
        for customer, wallet in self.wallets.items():
            with self.bench.op() as op:
                assert self.bench.wallets.balance(op, "shop", customer).available == wallet.balance, customer
                status = self.bench.wallets.pin_status(op, "shop", customer)
            locked = status.locked_until if status.locked_until > self.now else 0
            assert (status.failures, locked) == (wallet.failures, wallet.locked_until if locked else 0), customer
        for key, link in self.links.items():
            with self.bench.op() as op:
                found = self.bench.wallets.pay_link(op, "shop", link.link_id)
            assert (found.status, found.paid, found.payments) == (self.shown_status(link), link.paid,
                                                                   link.payments), key  # fmt: skip
            assert link.paid <= link.amount * max(link.payments, 1)


class _Only:
    """A draw that gives one value: a rule calling another with its choice made."""

    def __init__(self, value: object) -> None:
        self.value = value

    def draw(self, strategy: object, label: str | None = None) -> object:
        return self.value


@pytest.mark.parametrize("engine_class", list(ENGINE_CLASSES.values()), ids=list(ENGINE_CLASSES))
def test_pay_links_agree_with_a_plain_model(engine_class: type[Engine]) -> None:
    machine = type(f"PayLinkMachine_{engine_class.__name__}", (PayLinkMachine,), {"engine_class": engine_class})
    run_state_machine_as_test(
        machine, settings=settings(max_examples=max(25, settings().max_examples // 10), stateful_step_count=40)
    )
