"""The kinds of call the clients coalesce or cut: how payloads become one request and its answer is shared out.

A payload is one call's share of a request: packed transfer records, account
messages, ids to look up, or one payment. Both clients use these, the
asynchronous one and the one for threads, so a request is built and answered
the same way in each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from ledger.records.layout import Account, Transfer
from ledger.records.limits import TRANSFER_SIZE
from ledger.v1 import ledger_pb2, types_pb2, wallet_pb2

from ._errors import LedgerError
from ._records import (
    AccountOutcome,
    TransferOutcome,
    account_from_message,
    account_outcomes,
    id_messages,
    transfer_from_message,
    transfer_outcomes,
)

Payload = TypeVar("Payload")
Result = TypeVar("Result")


@dataclass(frozen=True, slots=True)
class Kind(Generic[Payload, Result]):
    rpc: str
    """The method: the Ledger service's by name, another service's as Service/Method."""
    count: Callable[[Payload], int]
    request: Callable[[Sequence[Payload]], Any]
    answer: Callable[[Sequence[Payload], Any], list[Result]]
    """Each payload's share of the response, in order."""


def _share(counts: Sequence[int], results: list[Any], what: str) -> list[list[Any]]:
    if len(results) != sum(counts):
        raise LedgerError(f"the server answered {len(results)} results for {sum(counts)} {what}")
    shares = []
    start = 0
    for count in counts:
        shares.append(results[start : start + count])
        start += count
    return shares


def _transfers_count(payload: bytes) -> int:
    return len(payload) // TRANSFER_SIZE


def _transfers_answer(payloads: Sequence[bytes], response: ledger_pb2.PackedTransferResults) -> list[Any]:
    return _share([_transfers_count(p) for p in payloads], transfer_outcomes(response.results), "transfers")


def _accounts_answer(
    payloads: Sequence[list[types_pb2.Account]], response: ledger_pb2.CreateAccountsResponse
) -> list[Any]:
    return _share([len(p) for p in payloads], account_outcomes(response.results), "accounts")


def _lookup_request(payloads: Sequence[list[int]]) -> ledger_pb2.LookupRequest:
    return ledger_pb2.LookupRequest(ids=id_messages(i for p in payloads for i in p))


def _found_accounts(payloads: Sequence[list[int]], response: ledger_pb2.LookupAccountsResponse) -> list[Any]:
    found = {a.id: a for a in map(account_from_message, response.accounts)}
    return [[found[i] for i in ids if i in found] for ids in payloads]


def _found_transfers(payloads: Sequence[list[int]], response: ledger_pb2.LookupTransfersResponse) -> list[Any]:
    found = {t.id: t for t in map(transfer_from_message, response.transfers)}
    return [[found[i] for i in ids if i in found] for ids in payloads]


CREATE_TRANSFERS: Kind[bytes, list[TransferOutcome]] = Kind(
    "CreateTransfersPacked",
    _transfers_count,
    lambda payloads: ledger_pb2.PackedTransfers(records=b"".join(payloads)),
    _transfers_answer,
)
CREATE_ACCOUNTS: Kind[list[types_pb2.Account], list[AccountOutcome]] = Kind(
    "CreateAccounts",
    len,
    lambda payloads: ledger_pb2.CreateAccountsRequest(accounts=[m for p in payloads for m in p]),
    _accounts_answer,
)
LOOKUP_ACCOUNTS: Kind[list[int], list[Account]] = Kind("LookupAccounts", len, _lookup_request, _found_accounts)
LOOKUP_TRANSFERS: Kind[list[int], list[Transfer]] = Kind("LookupTransfers", len, _lookup_request, _found_transfers)


PAYMENT_EVENTS: Final = 16
"""What one payment counts for in a shared request (a chain of transfers and the policy): a request of 8190
events carries at most 511 payments, within the 512 one PayBatch takes."""


def _pay_answer(
    payloads: Sequence[Any], response: wallet_pb2.PayBatchReply | wallet_pb2.PayByCodeBatchReply
) -> list[Any]:
    return [share[0] for share in _share([1] * len(payloads), list(response.replies), "payments")]


PAY: Kind[wallet_pb2.PayRequest, wallet_pb2.PayReply] = Kind(
    "Wallet/PayBatch",
    lambda payload: PAYMENT_EVENTS,
    lambda payloads: wallet_pb2.PayBatchRequest(payments=payloads),
    _pay_answer,
)
PAY_BY_CODE: Kind[wallet_pb2.PayByCodeRequest, wallet_pb2.PayReply] = Kind(
    "Wallet/PayByCodeBatch",
    lambda payload: PAYMENT_EVENTS,
    lambda payloads: wallet_pb2.PayByCodeBatchRequest(payments=payloads),
    _pay_answer,
)
