"""Differential and invariant tests: the Cython engine against the reference engine.

The Cython engine runs twice: keeping every record, and with a hot window of
one transfer and a cold reader over the entries it handed out, so that every
idempotency check, late post or void and lookup of an older transfer reads its
record back as it would from the journal.

Hypothesis drives the engines with the same random batch sequences, biased
to the edges where money code breaks: 0, 1, the exact available balance and
one more, 2**63 - 1 and past it, repeated ids, chains broken in the middle,
holds at their exact expiry, full tables. After every batch both engines
must return the same bytes (results, journal entries, expired holds) and
hold the same state, and the invariants must hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ledger.engine import (
    Account,
    AccountFlags,
    CreateTransferResult,
    EngineConfig,
    EngineState,
    ReferenceEngine,
    Transfer,
    TransferFlags,
    pack_accounts,
    pack_ids,
    pack_transfers,
    unpack_account_balances,
    unpack_account_results,
    unpack_accounts,
    unpack_transfer_results,
    unpack_transfers,
)
from ledger.records.limits import AMOUNT_MAX, ID_INT_MAX
from tests.support import ENGINE_CLASSES, SECOND, ColdJournal, ManualClock

TF = TransferFlags
AF = AccountFlags

ACCOUNT_IDS = [1, 2, 3, 4, 5, 6, 7]
EDGE_IDS = [0, ID_INT_MAX]
TRANSFER_IDS = list(range(1, 25))
EDGE_AMOUNTS = [0, 1, 2, 3, 100, AMOUNT_MAX - 1, AMOUNT_MAX, AMOUNT_MAX + 1, 2**64 - 1]
TIMEOUTS = [0, 0, 1, 2, 2**32 - 1]
CLOCK_STEPS = [0, 1, SECOND - 1, SECOND, SECOND + 1, 2 * SECOND]
FLAG_CHOICES = [
    0, 0, 0,
    TF.LINKED, TF.LINKED,
    TF.PENDING, TF.PENDING | TF.LINKED,
    TF.POST_PENDING_TRANSFER, TF.POST_PENDING_TRANSFER | TF.LINKED,
    TF.VOID_PENDING_TRANSFER,
    TF.BALANCING_DEBIT, TF.BALANCING_CREDIT, TF.BALANCING_DEBIT | TF.PENDING,
    TF.PENDING | TF.CLOSING_DEBIT, TF.PENDING | TF.CLOSING_CREDIT, TF.CLOSING_DEBIT,
    TF.PENDING | TF.POST_PENDING_TRANSFER, TF.POST_PENDING_TRANSFER | TF.BALANCING_DEBIT,
    1 << 8, 1 << 15,
]  # fmt: skip
ACCOUNT_FLAG_CHOICES = [
    0, 0, AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AF.CREDITS_MUST_NOT_EXCEED_DEBITS, AF.HISTORY, AF.LINKED, AF.CLOSED,
    AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.CREDITS_MUST_NOT_EXCEED_DEBITS, 1 << 9,
]  # fmt: skip


def small_capacity() -> EngineConfig:
    return EngineConfig(accounts_max=6, transfers_max=40, pending_transfers_max=4, verify=True)


def make_engines(clock: ManualClock, cold: ColdJournal) -> list[Any]:
    """Every available engine, and the native one again reading all but the newest transfer back from `cold`."""
    engines = [cls(small_capacity(), clock=clock) for cls in ENGINE_CLASSES.values()]
    if "cython" in ENGINE_CLASSES:
        config = replace(small_capacity(), transfers_hot=1)
        engines.append(ENGINE_CLASSES["cython"](config, clock=clock, cold_reader=cold))
    return engines


def stored_records(journal: list[tuple[str, Any]]) -> ColdJournal:
    """A cold reader over every transfer record of `journal`."""
    return ColdJournal(bytearray(b"".join(bytes(entry[1]) for kind, entry in journal if kind == "transfers")))


@dataclass
class Pair:
    """The reference engine and every other available engine, fed the same inputs."""

    clock: ManualClock = field(default_factory=ManualClock)
    engines: list[Any] = field(default_factory=list)
    journal: list[tuple[str, Any]] = field(default_factory=list)
    cold: ColdJournal = field(default_factory=ColdJournal)
    """What the cold-reading engine reads old records from: the entries handed out so far."""

    def __post_init__(self) -> None:
        self.engines = make_engines(self.clock, self.cold)

    @property
    def reference(self) -> ReferenceEngine:
        return self.engines[0]  # type: ignore[no-any-return]

    def accounts(self) -> dict[int, Account]:
        state = self.reference.export_state()
        return {a.id: a for a in unpack_accounts(state.accounts)}

    def create_accounts(self, accounts: list[Account]) -> list[int]:
        outputs = [engine.create_accounts(pack_accounts(accounts)) for engine in self.engines]
        first = outputs[0]
        for output in outputs[1:]:
            assert output.results == first.results
            assert bytes(output.entries) == bytes(first.entries)
            assert output.timestamp_last == first.timestamp_last
        self.journal.append(("accounts", (bytes(first.entries), first.timestamp_last)))
        self.check()
        return [r.result for r in unpack_account_results(first.results)]

    def create_transfers(self, transfers: list[Transfer]) -> list[tuple[int, int, int]]:
        outputs = [engine.create_transfers(pack_transfers(transfers)) for engine in self.engines]
        first = outputs[0]
        for output in outputs[1:]:
            if output.results != first.results:
                expected = unpack_transfer_results(first.results)
                got = unpack_transfer_results(output.results)
                diffs = [(t, e, g) for t, e, g in zip(transfers, expected, got, strict=True) if e != g]
                raise AssertionError(f"results differ: {diffs}")
            assert bytes(output.entries) == bytes(first.entries)
            assert output.expired == first.expired
            assert output.balances == first.balances
            assert (output.timestamp_first, output.timestamp_last) == (first.timestamp_first, first.timestamp_last)
        self.check_balance_history(first)
        self.cold.add(bytes(first.entries))
        self.journal.append(
            ("transfers", (first.expired, bytes(first.entries), first.timestamp_first, first.timestamp_last))
        )
        self.check()
        return [(r.result, r.timestamp, r.amount) for r in unpack_transfer_results(first.results)]

    def check_balance_history(self, applied: Any) -> None:
        """One entry per HISTORY account per transfer created; each account's last one is its balance now."""
        accounts = self.accounts()
        stored = unpack_transfers(applied.entries)
        expected = [
            (account_id, t.timestamp)
            for t in stored
            for account_id in (t.debit_account_id, t.credit_account_id)
            if accounts[account_id].flags & AF.HISTORY
        ]
        history = unpack_account_balances(applied.balances)
        assert [(b.account_id, b.timestamp) for b in history] == expected
        for b in history:
            a = accounts[b.account_id]
            last = [h for h in history if h.account_id == b.account_id][-1]
            assert (last.debits_pending, last.debits_posted, last.credits_pending, last.credits_posted) == (
                a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted,
            )  # fmt: skip

    def expire(self) -> None:
        outputs = [engine.expire_pending_transfers() for engine in self.engines]
        assert len({o.expired for o in outputs}) == 1
        first = outputs[0]
        self.journal.append(("transfers", (first.expired, b"", first.timestamp_first, first.timestamp_last)))
        self.check()

    def check(self) -> None:
        states = [engine.export_state() for engine in self.engines]
        assert all(state == states[0] for state in states[1:]), "engine states differ"
        for engine, state in zip(self.engines, states, strict=True):
            snapshot = engine.export_snapshot()
            assert (snapshot.accounts, snapshot.transfer_status) == (state.accounts, state.transfer_status)
            assert snapshot.timestamp_last == state.timestamp_last
        stats = [engine.stats() for engine in self.engines]
        assert all(s == stats[0] for s in stats[1:])
        ids = pack_ids([*TRANSFER_IDS, 100, 101, 102, 0, ID_INT_MAX])
        found = [engine.lookup_transfers(ids) for engine in self.engines]
        assert all(f == found[0] for f in found[1:]), "lookups differ"
        statuses = [[engine.transfer_status(i) for i in (*TRANSFER_IDS, 100, 101)] for engine in self.engines]
        assert all(s == statuses[0] for s in statuses[1:]), "statuses differ"
        accounts = unpack_accounts(states[0].accounts)
        assert sum(a.debits_posted for a in accounts) == sum(a.credits_posted for a in accounts)
        assert sum(a.debits_pending for a in accounts) == sum(a.credits_pending for a in accounts)
        for a in accounts:
            if a.flags & AF.DEBITS_MUST_NOT_EXCEED_CREDITS:
                assert a.debits_pending + a.debits_posted <= a.credits_posted
            if a.flags & AF.CREDITS_MUST_NOT_EXCEED_DEBITS:
                assert a.credits_pending + a.credits_posted <= a.debits_posted
            assert a.debits_pending + a.debits_posted <= AMOUNT_MAX
            assert a.credits_pending + a.credits_posted <= AMOUNT_MAX


@st.composite
def accounts_batch(draw: st.DrawFn) -> list[Account]:
    count = draw(st.integers(1, 6))
    return [
        Account(
            id=draw(st.sampled_from(ACCOUNT_IDS + EDGE_IDS)),
            ledger=draw(st.sampled_from([1, 1, 1, 2, 0])),
            code=draw(st.sampled_from([1, 1, 2, 0])),
            flags=draw(st.sampled_from(ACCOUNT_FLAG_CHOICES)),
            user_data_64=draw(st.sampled_from([0, 0, 1])),
            timestamp=draw(st.sampled_from([0] * 15 + [1])),
            debits_posted=draw(st.sampled_from([0] * 15 + [1])),
        )
        for _ in range(count)
    ]


def available(accounts: dict[int, Account], account_id: int) -> list[int]:
    """The exact amount the account can still give, and one more."""
    a = accounts.get(account_id)
    if a is None:
        return [1]
    room = max(0, a.credits_posted - a.debits_posted - a.debits_pending)
    return [room, room + 1]


def draw_transfer(draw: st.DrawFn, accounts: dict[int, Account], recent: list[Transfer]) -> Transfer:
    if recent and draw(st.integers(0, 5)) == 0:
        # Resubmit an earlier transfer unchanged, or with one field changed.
        base = draw(st.sampled_from(recent))
        change = draw(st.sampled_from(["none", "none", "amount", "code", "user_data_64", "flags", "debit"]))
        if change == "amount":
            return Transfer(**{**_fields(base), "amount": (base.amount + 1) % 2**64})
        if change == "code":
            return Transfer(**{**_fields(base), "code": base.code + 1})
        if change == "user_data_64":
            return Transfer(**{**_fields(base), "user_data_64": base.user_data_64 + 1})
        if change == "flags":
            return Transfer(**{**_fields(base), "flags": base.flags ^ TF.LINKED})
        if change == "debit":
            return Transfer(**{**_fields(base), "debit_account_id": draw(st.sampled_from(ACCOUNT_IDS))})
        return base
    flags = int(draw(st.sampled_from(FLAG_CHOICES)))
    debit = draw(st.sampled_from(ACCOUNT_IDS + EDGE_IDS if draw(st.integers(0, 9)) == 0 else ACCOUNT_IDS))
    credit = draw(st.sampled_from(ACCOUNT_IDS + EDGE_IDS if draw(st.integers(0, 9)) == 0 else ACCOUNT_IDS))
    post_or_void = flags & (TF.POST_PENDING_TRANSFER | TF.VOID_PENDING_TRANSFER)
    if post_or_void and draw(st.booleans()):
        debit = credit = 0
    amount = draw(st.sampled_from(EDGE_AMOUNTS + available(accounts, debit) + [draw(st.integers(1, 500))] * 4))
    return Transfer(
        id=draw(st.sampled_from(TRANSFER_IDS + EDGE_IDS if draw(st.integers(0, 19)) == 0 else TRANSFER_IDS)),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        ledger=0 if post_or_void and draw(st.booleans()) else draw(st.sampled_from([1, 1, 1, 1, 2, 0])),
        code=draw(st.sampled_from([1, 1, 1, 2, 0])),
        flags=flags,
        pending_id=draw(st.sampled_from(TRANSFER_IDS)) if post_or_void or draw(st.integers(0, 19)) == 0 else 0,
        timeout=draw(st.sampled_from(TIMEOUTS)) if flags & TF.PENDING or draw(st.integers(0, 19)) == 0 else 0,
        user_data_64=draw(st.sampled_from([0, 0, 7])),
        timestamp=draw(st.sampled_from([0] * 30 + [1])),
        reserved=draw(st.sampled_from([0] * 30 + [1])),
    )


def _fields(t: Transfer) -> dict[str, int]:
    return {name: getattr(t, name) for name in t.__dataclass_fields__}


FUNDING = [
    Account(id=1, ledger=1, code=1),
    Account(id=2, ledger=1, code=2, flags=AF.DEBITS_MUST_NOT_EXCEED_CREDITS),
    Account(id=3, ledger=1, code=2, flags=AF.DEBITS_MUST_NOT_EXCEED_CREDITS),
    Account(id=4, ledger=1, code=3, flags=AF.CREDITS_MUST_NOT_EXCEED_DEBITS),
]


@given(st.data())
def test_engines_agree_and_invariants_hold(data: st.DataObject) -> None:
    pair = Pair()
    if data.draw(st.booleans(), label="fund wallets"):
        pair.create_accounts(FUNDING)
        pair.create_transfers(
            [Transfer(id=100 + i, debit_account_id=1, credit_account_id=i, amount=50, ledger=1, code=1) for i in (2, 3)]
        )
    recent: list[Transfer] = []
    for _ in range(data.draw(st.integers(1, 8), label="batches")):
        pair.clock.advance(ns=data.draw(st.sampled_from(CLOCK_STEPS), label="clock step"))
        kind = data.draw(st.sampled_from(["transfers"] * 6 + ["accounts", "expire"]), label="kind")
        if kind == "accounts":
            pair.create_accounts(data.draw(accounts_batch(), label="accounts"))
            continue
        if kind == "expire":
            pair.expire()
            continue
        accounts = pair.accounts()
        batch = [draw_transfer(data.draw, accounts, recent) for _ in range(data.draw(st.integers(1, 10), label="size"))]
        results = pair.create_transfers(batch)
        recent.extend(batch)
        applied = [t for t, (code, _, _) in zip(batch, results, strict=True) if code == CreateTransferResult.OK]
        if applied and data.draw(st.booleans(), label="retry"):
            before = pair.reference.export_state()
            retried = pair.create_transfers(applied)
            assert {code for code, _, _ in retried} == {CreateTransferResult.EXISTS}
            originals = [r for r in results if r[0] == CreateTransferResult.OK]
            assert [(ts, amount) for _, ts, amount in retried] == [(ts, amount) for _, ts, amount in originals]
            # The retry stored nothing; the only change allowed is the holds whose
            # time ran out when its batch began, which the clock decides, not the retry.
            _, (expired, entries, timestamp_first, timestamp_last) = pair.journal[-1]
            assert entries == b""
            expected = ReferenceEngine(small_capacity(), clock=pair.clock)
            expected.import_state(before)
            expected.replay_transfers(expired, b"", timestamp_first, timestamp_last)
            assert pair.reference.export_state() == expected.export_state()
    assert_replay_and_import_reproduce(pair)


def assert_replay_and_import_reproduce(pair: Pair) -> None:
    """State rebuilt from the journal entries alone, or from an export, equals the live state."""
    expected = pair.reference.export_state()
    for replayed, imported in zip(
        make_engines(pair.clock, stored_records(pair.journal)),
        make_engines(pair.clock, stored_records(pair.journal)),
        strict=True,
    ):
        for kind, entry in pair.journal:
            if kind == "accounts":
                replayed.replay_accounts(*entry)
            else:
                replayed.replay_transfers(*entry)
        assert replayed.export_state() == expected
        imported.import_state(expected)
        imported.verify()
        assert imported.export_state() == expected
    assert_checkpoint_and_replay_reproduce(pair, expected)


def assert_checkpoint_and_replay_reproduce(pair: Pair, expected: EngineState) -> None:
    """A snapshot taken after any prefix of the journal, with the transfers stored up to
    it and the rest of the journal replayed, rebuilds the live state (crash recovery)."""
    for cut in range(len(pair.journal) + 1):
        prefix = ReferenceEngine(small_capacity(), clock=pair.clock)
        for kind, entry in pair.journal[:cut]:
            if kind == "accounts":
                prefix.replay_accounts(*entry)
            else:
                prefix.replay_transfers(*entry)
        snapshot = prefix.export_snapshot()
        stored = b"".join(bytes(entry[1]) for kind, entry in pair.journal[:cut] if kind == "transfers")
        assert len(stored) == 128 * snapshot.transfers_count
        for recovered in make_engines(pair.clock, stored_records(pair.journal)):
            recovered.import_state(EngineState(snapshot.accounts, b"", b"", snapshot.timestamp_last))
            # The stored transfers come back one journal entry at a time, as recovery streams them.
            done = 0
            for kind, entry in pair.journal[:cut]:
                if kind == "transfers":
                    count = len(entry[1]) // 128
                    recovered.restore_transfers(bytes(entry[1]), snapshot.transfer_status[done : done + count])
                    done += count
            recovered.verify()
            for kind, entry in pair.journal[cut:]:
                if kind == "accounts":
                    recovered.replay_accounts(*entry)
                else:
                    recovered.replay_transfers(*entry)
            assert recovered.export_state() == expected


@given(st.data())
def test_linked_chains_are_all_or_nothing(data: st.DataObject) -> None:
    pair = Pair()
    pair.create_accounts(FUNDING)
    pair.create_transfers([Transfer(id=100, debit_account_id=1, credit_account_id=2, amount=50, ledger=1, code=1)])
    length = data.draw(st.integers(2, 6), label="chain length")
    broken_at = data.draw(st.integers(0, length - 1), label="broken at")
    chain = [
        Transfer(
            id=200 + i,
            debit_account_id=2,
            credit_account_id=1,
            amount=1 if i != broken_at else data.draw(st.sampled_from([0, 51, AMOUNT_MAX + 1]), label="bad amount"),
            ledger=1,
            code=1,
            flags=TF.LINKED if i < length - 1 else 0,
        )
        for i in range(length)
    ]
    before = pair.reference.export_state()
    results = pair.create_transfers(chain)
    codes = [code for code, _, _ in results]
    assert codes[broken_at] not in (CreateTransferResult.OK, CreateTransferResult.LINKED_EVENT_FAILED)
    assert all(c == CreateTransferResult.LINKED_EVENT_FAILED for i, c in enumerate(codes) if i != broken_at)
    after = pair.reference.export_state()
    assert (after.accounts, after.transfers) == (before.accounts, before.transfers)
