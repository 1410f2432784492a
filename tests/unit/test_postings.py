"""The native postings module against the pure-Python one, on random journals."""

from __future__ import annotations

import os
import struct
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.engine import Transfer, pack_transfers
from ledger.journal import _postings_py
from tests.support import format_examples

try:
    from ledger.journal import _postings_c
except ImportError:
    _postings_c = None  # type: ignore[assignment]

if _postings_c is None and (os.environ.get("CI") == "true" or os.environ.get("LEDGER_ENGINE") == "cython"):
    raise RuntimeError("the native postings module (ledger.journal._postings_c) is not built")

IMPLEMENTATIONS: list[ModuleType] = [_postings_py] + ([_postings_c] if _postings_c is not None else [])
EDGE_IDS = [1, 2, 3, 2**64 - 1, 2**64, 2**64 + 1, 2**127, 2**128 - 2]


@st.composite
def journals(draw: st.DrawFn) -> tuple[bytes, int]:
    count = draw(st.integers(0, 40))
    transfers = []
    timestamp = draw(st.integers(1, 2**62))
    for i in range(count):
        debit = draw(st.sampled_from(EDGE_IDS))
        credit = draw(st.sampled_from([a for a in EDGE_IDS if a != debit]))
        timestamp += draw(st.integers(1, 3))
        transfers.append(Transfer(id=i + 1, debit_account_id=debit, credit_account_id=credit, amount=1,
                                  ledger=1, code=1, timestamp=timestamp))  # fmt: skip
    return pack_transfers(transfers), draw(st.integers(0, 2**40))


@format_examples()
@given(st.lists(journals(), min_size=1, max_size=13))
def test_implementations_agree(commits: list[tuple[bytes, int]]) -> None:
    outputs = []
    for module in IMPLEMENTATIONS:
        runs = [module.sort_postings(transfers, first) for transfers, first in commits]
        merged = module.merge_runs(runs)
        found = {account: module.account_range(merged, account) for account in EDGE_IDS}
        rows = [(lo, hi, module.entries(merged, start, end)) for lo, hi, start, end in module.groups(merged)]
        outputs.append((runs, merged, found, rows, module.copy_rows(merged)))
    assert all(output == outputs[0] for output in outputs[1:])
    runs, merged, found, rows, copied = outputs[0]
    assert copied == b"".join(_copy_row(lo, hi, entries) for lo, hi, entries in rows)
    assert len(merged) == sum(len(run) for run in runs) == 64 * sum(len(t) // 128 for t, _ in commits)
    for lo, hi, entries in rows:
        start, end = found[lo | hi << 64]
        count = end - start
        assert len(entries) == 16 * count
        timestamps = [int.from_bytes(entries[8 * i : 8 * i + 8], "little") for i in range(count)]
        assert timestamps == sorted(timestamps)


@pytest.mark.parametrize("module", IMPLEMENTATIONS, ids=lambda m: m.implementation)
def test_postings_name_both_sides_of_every_transfer(module: ModuleType) -> None:
    transfers = pack_transfers(
        [
            Transfer(id=1, debit_account_id=5, credit_account_id=7, amount=1, ledger=1, code=1, timestamp=100),
            Transfer(id=2, debit_account_id=7, credit_account_id=5, amount=1, ledger=1, code=1, timestamp=101),
        ]
    )
    run = module.sort_postings(transfers, 10)
    assert module.groups(run) == [(5, 0, 0, 2), (7, 0, 2, 4)]
    words = memoryview(module.entries(run, 0, 2)).cast("Q").tolist()
    assert words == [100, 101, 10 << 1, (11 << 1) | 1]  # debited by transfer 10, credited by transfer 11
    assert module.account_range(run, 6) == (2, 2)


@pytest.mark.parametrize("module", IMPLEMENTATIONS, ids=lambda m: m.implementation)
def test_merging_many_runs_and_runs_already_merged_sorts_them_all(module: ModuleType) -> None:
    """The tail's runs are merged again and again (a merged run with new ones), in any count."""
    import random

    rng = random.Random(7)
    runs = []
    for commit in range(45):
        transfers = [
            Transfer(
                id=commit * 100 + i + 1,
                debit_account_id=rng.choice(EDGE_IDS[:4]),
                credit_account_id=rng.choice(EDGE_IDS[4:]),
                amount=1,
                ledger=1,
                code=1,
                timestamp=1000 * commit + i,
            )
            for i in range(rng.randint(0, 30))
        ]
        runs.append(module.sort_postings(pack_transfers(transfers), commit * 100))
    expected = _postings_py.merge_runs(runs)  # the reference sorts every posting afresh
    assert len(expected) == sum(len(run) for run in runs)
    assert module.merge_runs(runs) == expected
    assert module.merge_runs([module.merge_runs(runs[:33]), *runs[33:]]) == expected
    assert module.merge_runs([]) == b""


@given(st.lists(st.tuples(st.sampled_from(EDGE_IDS), st.sampled_from(EDGE_IDS), st.integers(1, 5)), max_size=60))
def test_records_out_of_timestamp_order_are_sorted_alike(rows: list[tuple[int, int, int]]) -> None:
    """A commit's records come in timestamp order (the native sort relies on it to sort by account alone);
    records that do not are still sorted by account, timestamp and ref, as the reference does."""
    transfers = pack_transfers(
        [
            Transfer(
                id=i + 1,
                debit_account_id=debit,
                credit_account_id=credit,
                amount=1,
                ledger=1,
                code=1,
                timestamp=timestamp,
            )
            for i, (debit, credit, timestamp) in enumerate(rows)
            if debit != credit
        ]
    )
    expected = _postings_py.sort_postings(transfers, 3)
    for module in IMPLEMENTATIONS:
        assert module.sort_postings(transfers, 3) == expected


def _copy_row(lo: int, hi: int, entries: bytes) -> bytes:
    """One history row in PostgreSQL's COPY BINARY, field by field: its field count, then each length and value."""
    count = len(entries) // 16

    def field(value: int, size: int) -> bytes:
        return size.to_bytes(4, "big") + value.to_bytes(size, "big")

    first, last = int.from_bytes(entries[:8], "little"), int.from_bytes(entries[8 * count - 8 : 8 * count], "little")
    head = (6).to_bytes(2, "big") + field(lo, 8) + field(hi, 8) + field(first, 8) + field(last, 8) + field(count, 4)
    return head + len(entries).to_bytes(4, "big") + entries


_BALANCE_ENTRY = struct.Struct("<QQQQQQQQ")


@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(EDGE_IDS),
                st.integers(1, 2**63),
                st.lists(st.integers(0, 2**64 - 1), min_size=4, max_size=4),
            ),
            max_size=20,
        ),
        max_size=6,
    )
)
def test_balance_tails_agree(commits: list[list[tuple[int, int, list[int]]]]) -> None:
    """Each account's tail holds its entries' timestamps and four balances in the commits' order."""
    expected: dict[tuple[int, int], tuple[bytearray, bytearray]] = {}
    for entries in commits:
        for account, timestamp, values in entries:
            tail = expected.setdefault((account & 2**64 - 1, account >> 64), (bytearray(), bytearray()))
            tail[0].extend(timestamp.to_bytes(8, "little"))
            tail[1].extend(b"".join(value.to_bytes(8, "little") for value in values))
    for module in IMPLEMENTATIONS:
        table: dict[tuple[int, int], tuple[bytearray, bytearray]] = {}
        for entries in commits:
            block = b"".join(
                _BALANCE_ENTRY.pack(account & 2**64 - 1, account >> 64, timestamp, *values, 0)
                for account, timestamp, values in entries
            )
            module.add_balances(table, block)
        assert table == expected, module.implementation
