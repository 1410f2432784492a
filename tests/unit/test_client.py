"""ledger.client without a server: checked packing, batches and chains, request bounds, backoff, configuration."""

from __future__ import annotations

import random
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.client import AccountFilter, ClientConfig, LedgerError, LedgerTimeout
from ledger.client._batching import Batch, Entry, request_bounds
from ledger.client._records import (
    TRANSFER_WIDTHS,
    AccountOutcome,
    TransferOutcome,
    account_messages,
    account_outcomes,
    field_value,
    pack_transfers,
    transfer_outcomes,
)
from ledger.client._retry import Attempts, backoff_seconds
from ledger.engine import Account, CreateAccountResult, CreateTransferResult, Transfer, TransferFlags
from ledger.engine import pack_transfers as engine_pack_transfers
from ledger.records.layout import TRANSFER_RESULT_STRUCT
from ledger.records.limits import BATCH_EVENTS_MAX
from ledger.server import accounts_to_packed
from ledger.v1 import ledger_pb2
from tests.support import format_examples

u128 = st.sampled_from([0, 1, 2**64 - 1, 2**64, 2**128 - 1]) | st.integers(0, 2**128 - 1)
u64 = st.sampled_from([0, 1, 2**63 - 1, 2**64 - 1]) | st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)
transfers = st.builds(
    Transfer, id=u128, debit_account_id=u128, credit_account_id=u128, amount=u64, ledger=u32, code=u16, flags=u16,
    pending_id=u128, timeout=u32, user_data_128=u128, user_data_64=u64, user_data_32=u32, timestamp=u64,
)  # fmt: skip


@format_examples()
@given(st.lists(transfers, max_size=10))
def test_transfers_pack_exactly_as_the_engine_packs_them(items: list[Transfer]) -> None:
    assert pack_transfers(items) == engine_pack_transfers(items)
    as_mappings = [{name: getattr(t, name) for name in ("id", "amount", "flags", "user_data_128")} for t in items]
    assert pack_transfers(as_mappings) == engine_pack_transfers([Transfer(**m) for m in as_mappings])


@given(u128)
def test_uuids_and_ints_are_the_same_ids(value: int) -> None:
    as_uuid = uuid.UUID(int=value)
    assert pack_transfers([{"id": as_uuid, "pending_id": as_uuid}]) == pack_transfers(
        [{"id": value, "pending_id": value}]
    )
    assert pack_transfers([Transfer(id=as_uuid)]) == Transfer(id=value).pack()  # type: ignore[arg-type]


def test_accounts_become_the_messages_the_server_packs() -> None:
    account = Account(id=uuid.UUID(int=2**100 + 7), ledger=978, code=2, flags=10, user_data_128=5)  # type: ignore[arg-type]
    [message] = account_messages([account])
    assert accounts_to_packed([message]) == transfer_free_pack(account)


def transfer_free_pack(account: Account) -> bytes:
    return Account(id=2**100 + 7, ledger=account.ledger, code=account.code, flags=account.flags,
                   user_data_128=account.user_data_128).pack()  # fmt: skip


@pytest.mark.parametrize(
    ("item", "error", "message"),
    [
        ({"id": 1, "amount": -1}, ValueError, r"transfers\[0\]\.amount: -1 is out of range \(0 to 2\*\*64 - 1\)"),
        ({"id": 1, "code": 70_000}, ValueError, r"transfers\[0\]\.code: 70000 is out of range \(0 to 2\*\*16 - 1\)"),
        ({"id": 2**128}, ValueError, r"transfers\[0\]\.id: .* is out of range"),
        ({"id": 1, "ledger": "978"}, TypeError, r"transfers\[0\]\.ledger: expected an integer, got str"),
        ({"id": 1, "flags": True}, TypeError, r"transfers\[0\]\.flags: expected an integer, got bool"),
        ({"id": 1.5}, TypeError, r"transfers\[0\]\.id: expected an integer or a UUID, got float"),
        ({"id": 1, "amout": 5}, ValueError, r"transfers\[0\]: unknown field amout"),
        ({"amount": 5}, ValueError, r"transfers\[0\]\.id: missing"),
        (Account(id=1), TypeError, r"transfers\[0\]: expected a Transfer or a mapping of its fields, got Account"),
    ],
)
def test_what_a_record_cannot_carry_is_named(item: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        pack_transfers([item])


class Index:
    """An integer-like object that is not an int (as a numpy integer is): the struct would take it."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def edge_values(width: int) -> st.SearchStrategy[Any]:
    return st.sampled_from([0, 1, 2**width - 1, 2**width, 2**64, 2**128, -1, -(2**64), True, False, 1.0])


@given(
    st.sampled_from(sorted(TRANSFER_WIDTHS)).flatmap(
        lambda name: st.tuples(st.just(name), edge_values(TRANSFER_WIDTHS[name]))
    )
)
def test_a_transfer_is_refused_exactly_as_its_fields_alone_are(field: tuple[str, Any]) -> None:
    # A Transfer takes the fast path, a mapping of the same fields the checked one: same record, or same error.
    name, value = field
    fields = {"id": 7, name: value}
    try:
        expected: Any = pack_transfers([fields], "calls")
    except (TypeError, ValueError) as exc:
        expected = (type(exc), str(exc))
    try:
        got: Any = pack_transfers([Transfer(**fields)], "calls")
    except (TypeError, ValueError) as exc:
        got = (type(exc), str(exc))
    assert got == expected


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"amount": -1}, ValueError, r"transfers\[1\]\.amount: -1 is out of range \(0 to 2\*\*64 - 1\)"),
        ({"amount": 2**64}, ValueError, r"transfers\[1\]\.amount: 18446744073709551616 is out of range"),
        ({"id": -1}, ValueError, r"transfers\[1\]\.id: -1 is out of range \(0 to 2\*\*128 - 1\)"),
        ({"credit_account_id": 2**128}, ValueError, r"transfers\[1\]\.credit_account_id: .* is out of range"),
        ({"code": 2**16}, ValueError, r"transfers\[1\]\.code: 65536 is out of range \(0 to 2\*\*16 - 1\)"),
        ({"flags": True}, TypeError, r"transfers\[1\]\.flags: expected an integer, got bool"),
        ({"ledger": Index(978)}, TypeError, r"transfers\[1\]\.ledger: expected an integer, got Index"),
        ({"amount": 1.0}, TypeError, r"transfers\[1\]\.amount: expected an integer, got float"),
    ],
)
def test_a_transfer_value_that_does_not_fit_is_named(
    fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        pack_transfers([Transfer(id=1), Transfer(**{"id": 2, **fields})])


def test_transfers_with_uuids_and_flag_enums_take_the_checked_path_to_the_same_record() -> None:
    flags = TransferFlags.LINKED | TransferFlags.PENDING
    record = pack_transfers([Transfer(id=uuid.UUID(int=2**70 + 1), flags=flags)])  # type: ignore[arg-type]
    assert record == Transfer(id=2**70 + 1, flags=3).pack()


def test_result_codes_become_their_enum_members_and_an_unknown_one_is_named() -> None:
    ok, exists = CreateTransferResult.OK, CreateTransferResult.EXISTS
    packed = TRANSFER_RESULT_STRUCT.pack(ok, 0, 5, 10) + TRANSFER_RESULT_STRUCT.pack(exists, 0, 3, 7)
    assert transfer_outcomes(packed) == [TransferOutcome(ok, 5, 10), TransferOutcome(exists, 3, 7)]
    assert type(transfer_outcomes(packed)[0].result) is CreateTransferResult
    with pytest.raises(LedgerError, match="the server answered CreateTransferResult 999, unknown to this client"):
        transfer_outcomes(packed + TRANSFER_RESULT_STRUCT.pack(999, 0, 0, 0))
    results = [ledger_pb2.CreateAccountsResult(result=CreateAccountResult.OK, timestamp=4)]
    assert account_outcomes(results) == [AccountOutcome(CreateAccountResult.OK, 4)]
    with pytest.raises(LedgerError, match="the server answered CreateAccountResult 998, unknown to this client"):
        account_outcomes([*results, ledger_pb2.CreateAccountsResult(result=998)])


def test_flags_and_enums_are_integers() -> None:
    packed = pack_transfers([{"id": 1, "flags": TransferFlags.LINKED | TransferFlags.PENDING}])
    assert Transfer.unpack(packed).flags == 3
    assert field_value(TransferFlags.PENDING, 16, "flags") == 2


def entry(count: int, *, open_chain: bool = False, gone: bool = False, deadline: float = 0.0) -> Entry[int, bool]:
    return Entry(count, count, open_chain, 1.0, deadline, gone)


def test_a_batch_keeps_calls_whole_and_in_order() -> None:
    pending = deque([entry(3), entry(4, gone=True), entry(BATCH_EVENTS_MAX - 5), entry(3), entry(1)])
    batch = Batch(entry(2))
    batch.extend(pending, lambda gone: gone)
    # The caller that gave up is dropped; the call of 3 that does not fit stays, whole, for the next batch.
    assert [e.count for e in batch.entries] == [2, 3, BATCH_EVENTS_MAX - 5]
    assert batch.closed and batch.count == BATCH_EVENTS_MAX
    assert [e.count for e in pending] == [3, 1]


def test_a_call_that_leaves_a_chain_open_ends_its_batch() -> None:
    pending = deque([entry(1), entry(2, open_chain=True), entry(1), entry(1)])
    batch = Batch(entry(1))
    batch.extend(pending, lambda gone: gone)
    assert [e.count for e in batch.entries] == [1, 1, 2] and batch.closed
    assert len(pending) == 2
    # Opening a chain as the first call closes the batch at once: nothing may follow it.
    alone = Batch(entry(1, open_chain=True))
    alone.extend(pending, lambda gone: gone)
    assert len(alone.entries) == 1 and len(pending) == 2


def test_a_batch_waits_as_long_as_its_most_patient_caller() -> None:
    batch = Batch(entry(1, deadline=5.0))
    batch.extend(deque([entry(1, deadline=9.0), entry(1, deadline=2.0)]), lambda gone: gone)
    assert batch.deadline == 9.0


@given(st.lists(st.booleans(), max_size=300), st.integers(1, 40))
def test_requests_cover_every_event_and_never_cut_a_chain(linked: list[bool], limit: int) -> None:
    try:
        bounds = request_bounds(len(linked), linked.__getitem__, limit)
    except ValueError as exc:
        # Only when some chain is longer than one request.
        start = int(str(exc).split()[1])
        assert all(linked[start : start + limit])
        return
    assert [b[0] for b in bounds] == [0, *(b[1] for b in bounds)][: len(bounds)]
    assert (bounds[-1][1] if bounds else 0) == len(linked)
    for start, end in bounds:
        assert 0 < end - start <= limit
        assert end == len(linked) or not linked[end - 1], "a request ends inside a chain"


def test_backoff_doubles_with_full_jitter_up_to_its_ceiling() -> None:
    config = ClientConfig(retry_backoff_initial_seconds=0.1, retry_backoff_max_seconds=1.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (60, 1.0)]:
        pauses = [backoff_seconds(config, attempt, rng) for _ in range(200)]
        assert min(pauses) >= 0 and max(pauses) <= ceiling
        assert max(pauses) > ceiling * 0.8  # jitter spans the whole range


def test_attempts_retry_only_what_is_transient() -> None:
    attempts = Attempts(3.0)
    attempts.count = 2
    attempts.failed(grpc.StatusCode.UNAVAILABLE, "journal down")
    attempts.failed(grpc.StatusCode.RESOURCE_EXHAUSTED, "backlog full")
    timeout = attempts.timeout()
    assert isinstance(timeout, LedgerTimeout)
    assert str(timeout) == (
        "no answer within 3 s (2 attempts; last answer RESOURCE_EXHAUSTED: backlog full): "
        "the outcome is unknown; retrying with the same ids is safe"
    )
    with pytest.raises(LedgerTimeout):
        attempts.failed(grpc.StatusCode.DEADLINE_EXCEEDED, "")
    with pytest.raises(Exception, match="INTERNAL: boom"):
        attempts.failed(grpc.StatusCode.INTERNAL, "boom")


def test_filters_round_trip_and_name_what_does_not_fit() -> None:
    f = AccountFilter(account_id=uuid.UUID(int=2**90), timestamp_min=5, limit=10, exclude_credits=True, code=3,
                      user_data_128=2**127, reversed=True)  # fmt: skip
    message = f.to_message()
    assert isinstance(message, ledger_pb2.AccountFilter)
    back = AccountFilter.from_message(message)
    assert back == AccountFilter(account_id=2**90, timestamp_min=5, limit=10, exclude_credits=True, code=3,
                                 user_data_128=2**127, reversed=True)  # fmt: skip
    with pytest.raises(ValueError, match=r"filter\.code: 65536 is out of range"):
        AccountFilter(account_id=1, code=65_536).to_message()
    with pytest.raises(TypeError, match=r"filter\.reversed: expected a bool"):
        AccountFilter(account_id=1, reversed=1).to_message()  # type: ignore[arg-type]


def test_configuration_from_the_environment(tmp_path: Path) -> None:
    environ = {"LEDGER_SERVER": "ledger.internal:7100", "LEDGER_API_KEY": "k", "LEDGER_TIMEOUT_SECONDS": "5",
               "LEDGER_TLS_CA": str(tmp_path / "ca.pem"), "LEDGER_BATCH_IN_FLIGHT_MAX": "2"}  # fmt: skip
    config = ClientConfig.from_env(environ, api_key="override")
    assert (config.server, config.api_key, config.timeout_seconds) == ("ledger.internal:7100", "override", 5.0)
    assert config.tls_ca == tmp_path / "ca.pem" and config.uses_tls and config.batch_in_flight_max == 2
    assert config.metadata == (("authorization", "Bearer override"),)
    assert ClientConfig.from_env({}).metadata == () and not ClientConfig.from_env({}).uses_tls
    with pytest.raises(ValueError, match=r"tls_ca: cannot read .*ca\.pem"):
        config.credentials()
    with pytest.raises(ValueError, match="LEDGER_TIMEOUT_SECONDS='soon' is not a valid float"):
        ClientConfig.from_env({"LEDGER_TIMEOUT_SECONDS": "soon"})
    with pytest.raises(ValueError, match="tls_cert and tls_key go together"):
        ClientConfig(tls_cert=tmp_path / "c.pem")
    with pytest.raises(ValueError, match="timeout_seconds must be positive"):
        ClientConfig(timeout_seconds=0)
    with pytest.raises(ValueError, match="batch_in_flight_max must be between 1 and 64"):
        ClientConfig(batch_in_flight_max=0)
