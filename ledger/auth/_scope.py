"""Tenant scoping: the ledger as a key bound to some ledgers may see and move it.

Checks read the packed records (ledger/engine/_layout.py), so they hold for
the typed, packed and streamed RPCs alike, and for any decoder that produces
those records. Before anything is applied:

- every account created must be in one of the key's ledgers;
- every transfer must name its ledger (not 0: a post or void with ledger 0
  would take the pending transfer's ledger, which may be another tenant's)
  and that ledger must be one of the key's.

The engine then refuses a transfer whose accounts or pending transfer are in
another ledger than the transfer (ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER,
TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS, PENDING_TRANSFER_HAS_DIFFERENT_*),
so no money of another tenant moves. What it answers is then made to say
nothing about the other tenant's records, which the key may not see:

- another tenant's account reads as not found (DEBIT_ACCOUNT_NOT_FOUND,
  CREDIT_ACCOUNT_NOT_FOUND), as it would if it did not exist;
- another tenant's pending transfer reads as PENDING_TRANSFER_NOT_FOUND;
- an id already taken by another tenant's account or transfer answers
  EXISTS_WITH_DIFFERENT_LEDGER (true: the key cannot name that ledger) with
  timestamp and amount 0, instead of the field-by-field comparison and the
  original's timestamp and amount;
- lookups leave out records of other ledgers, and history of another
  tenant's account is an empty page, as for an unknown account.
"""

from __future__ import annotations

import asyncio
import sys
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, Final, Protocol

from ledger.engine import (
    Buffer,
    CreateAccountResult,
    CreateTransferResult,
    Transfer,
    pack_ids,
)
from ledger.engine._api import check_batch
from ledger.engine._layout import ACCOUNT_RESULT_STRUCT, TRANSFER_RESULT_STRUCT
from ledger.engine._limits import (
    ACCOUNT_RESULT_SIZE,
    ACCOUNT_SIZE,
    BATCH_EVENTS_MAX,
    TRANSFER_RESULT_SIZE,
    TRANSFER_SIZE,
)
from ledger.journal import AccountFilter, BalancesPage, TransfersPage

from ._principal import current_principal

ACCOUNT_LEDGER_OFFSET: Final = 48
TRANSFER_LEDGER_OFFSET: Final = 104
ID_OFFSET: Final = 0

AR = CreateAccountResult
TR = CreateTransferResult
_ACCOUNT_EXISTS: Final = frozenset(int(r) for r in AR if r.name.startswith("EXISTS"))
_TRANSFER_EXISTS: Final = frozenset(int(r) for r in TR if r.name.startswith("EXISTS"))
_ACCOUNTS_ELSEWHERE: Final = frozenset(
    {TR.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER, TR.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS}
)
_PENDING_ELSEWHERE: Final = frozenset(
    {
        TR.PENDING_TRANSFER_NOT_PENDING,
        TR.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID,
        TR.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID,
        TR.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER,
    }
)
_TRANSFER_REVIEWED: Final = _TRANSFER_EXISTS | _ACCOUNTS_ELSEWHERE | _PENDING_ELSEWHERE
"""Results that may be about another tenant's record; every other result speaks of the key's own."""
_LEDGERS_LISTED_MAX: Final = 8


class PermissionDenied(Exception):
    """A request names a ledger its key may not touch; nothing of it was applied."""


class LedgerView(Protocol):
    """What the Ledger service asks of the durable ledger (ledger.core.Ledger is one)."""

    async def create_accounts(self, events: Buffer) -> bytes: ...

    async def create_transfers(self, events: Buffer) -> bytes: ...

    async def lookup_accounts(self, ids: Buffer) -> bytes: ...

    async def lookup_transfers(self, ids: Buffer) -> bytes: ...

    async def get_account_transfers(self, f: AccountFilter) -> TransfersPage: ...

    async def get_account_balances(self, f: AccountFilter) -> BalancesPage: ...

    def submit_transfers(self, events: Buffer) -> asyncio.Future[tuple[bytes, int]]: ...

    async def until_durable(self, ticket: int) -> None: ...

    def subscribe_transfers(self, timestamp_min: int) -> AsyncIterator[bytes]: ...


def scoped(ledger: LedgerView) -> LedgerView:
    """`ledger` as the call being served may see it: itself without a key or for an admin key."""
    principal = current_principal()
    if principal is None or principal.ledgers is None:
        return ledger
    return ScopedLedger(ledger, principal.ledgers)


class ScopedLedger:
    """A ledger seen through a key bound to `ledgers`."""

    def __init__(self, ledger: LedgerView, ledgers: frozenset[int]) -> None:
        self._ledger = ledger
        self._ledgers = ledgers

    # -- writes: checked when called, before anything is scheduled -----------------------------

    def create_accounts(self, events: Buffer) -> Coroutine[Any, Any, bytes]:
        """Refuses (PermissionDenied) an account of another ledger at once, then creates the batch."""
        check_batch(events, ACCOUNT_SIZE, "accounts")
        ledgers = _u32s(events, ACCOUNT_LEDGER_OFFSET, ACCOUNT_SIZE)
        if not self._ledgers.issuperset(ledgers):
            index = next(i for i, ledger in enumerate(ledgers) if ledger not in self._ledgers)
            raise PermissionDenied(f"accounts[{index}].ledger: {self._refusal(ledgers[index])}")
        return self._create_accounts(events)

    def create_transfers(self, events: Buffer) -> Coroutine[Any, Any, bytes]:
        """Refuses (PermissionDenied) a transfer of another ledger, or of ledger 0, at once, then applies the batch."""
        self._check_transfers(events)
        return self._create_transfers(events)

    def submit_transfers(self, events: Buffer) -> asyncio.Future[tuple[bytes, int]]:
        """create_transfers for a caller that pipelines (a stream): refused at once, before anything is submitted,
        else (results, ticket) once applied, the results reviewed as create_transfers reviews them."""
        self._check_transfers(events)
        return asyncio.ensure_future(self._submitted(events, self._ledger.submit_transfers(events)))

    async def until_durable(self, ticket: int) -> None:
        await self._ledger.until_durable(ticket)

    async def subscribe_transfers(self, timestamp_min: int) -> AsyncIterator[bytes]:
        """The committed transfers of the key's ledgers (commits with none of them are left out)."""
        async for records in self._ledger.subscribe_transfers(timestamp_min):
            if visible := self._visible(records, TRANSFER_SIZE, TRANSFER_LEDGER_OFFSET):
                yield visible

    def _check_transfers(self, events: Buffer) -> None:
        check_batch(events, TRANSFER_SIZE, "transfers")
        ledgers = _u32s(events, TRANSFER_LEDGER_OFFSET, TRANSFER_SIZE)
        if not self._ledgers.issuperset(ledgers):
            index = next(i for i, ledger in enumerate(ledgers) if ledger not in self._ledgers)
            if ledgers[index] == 0:
                raise PermissionDenied(
                    f"transfers[{index}].ledger: 0 (take the pending transfer's ledger) is refused for a key bound "
                    f"to ledgers; name the ledger, one of {self._listed()}"
                )
            raise PermissionDenied(f"transfers[{index}].ledger: {self._refusal(ledgers[index])}")

    async def _create_accounts(self, events: Buffer) -> bytes:
        results = await self._ledger.create_accounts(events)
        codes = _u32s(results, 0, ACCOUNT_RESULT_SIZE)
        reviewed = [i for i, code in enumerate(codes) if code in _ACCOUNT_EXISTS]
        if not reviewed:
            return results
        view = memoryview(events)
        ids = [_u128(view, i * ACCOUNT_SIZE) for i in reviewed]
        ledgers = await self._ledgers_of(self._ledger.lookup_accounts, ids, ACCOUNT_SIZE, ACCOUNT_LEDGER_OFFSET)
        masked = bytearray(results)
        for index, account_id in zip(reviewed, ids, strict=True):
            if ledgers.get(account_id) not in self._ledgers:
                ACCOUNT_RESULT_STRUCT.pack_into(
                    masked, index * ACCOUNT_RESULT_SIZE, AR.EXISTS_WITH_DIFFERENT_LEDGER, 0, 0
                )
        return bytes(masked)

    async def _create_transfers(self, events: Buffer) -> bytes:
        return await self._review_transfers(events, await self._ledger.create_transfers(events))

    async def _submitted(self, events: Buffer, applied: asyncio.Future[tuple[bytes, int]]) -> tuple[bytes, int]:
        results, ticket = await applied
        return await self._review_transfers(events, results), ticket

    async def _review_transfers(self, events: Buffer, results: bytes) -> bytes:
        codes = _u32s(results, 0, TRANSFER_RESULT_SIZE)
        reviewed = [(i, code) for i, code in enumerate(codes) if code in _TRANSFER_REVIEWED]
        if not reviewed:
            return results
        transfers = {i: Transfer.unpack(events, i * TRANSFER_SIZE) for i, _ in reviewed}
        transfer_ids: set[int] = set()
        account_ids: set[int] = set()
        for index, code in reviewed:
            t = transfers[index]
            if code in _TRANSFER_EXISTS:
                transfer_ids.add(t.id)
            elif code in _ACCOUNTS_ELSEWHERE:
                account_ids.update((t.debit_account_id, t.credit_account_id))
            else:
                transfer_ids.add(t.pending_id)
        ledger_of_transfer = await self._ledgers_of(
            self._ledger.lookup_transfers, transfer_ids, TRANSFER_SIZE, TRANSFER_LEDGER_OFFSET
        )
        ledger_of_account = await self._ledgers_of(
            self._ledger.lookup_accounts, account_ids, ACCOUNT_SIZE, ACCOUNT_LEDGER_OFFSET
        )
        masked = bytearray(results)
        for index, code in reviewed:
            t = transfers[index]
            if code in _TRANSFER_EXISTS:
                # The request's ledger is one of the key's, so a stored transfer outside them has another ledger.
                hidden = TR.EXISTS_WITH_DIFFERENT_LEDGER if ledger_of_transfer.get(t.id) not in self._ledgers else 0
            elif code in _ACCOUNTS_ELSEWHERE:
                if ledger_of_account.get(t.debit_account_id) not in self._ledgers:
                    hidden = TR.DEBIT_ACCOUNT_NOT_FOUND
                elif ledger_of_account.get(t.credit_account_id) not in self._ledgers:
                    hidden = TR.CREDIT_ACCOUNT_NOT_FOUND
                else:
                    hidden = 0
            else:
                hidden = (
                    TR.PENDING_TRANSFER_NOT_FOUND if ledger_of_transfer.get(t.pending_id) not in self._ledgers else 0
                )
            if hidden:
                TRANSFER_RESULT_STRUCT.pack_into(masked, index * TRANSFER_RESULT_SIZE, hidden, 0, 0, 0)
        return bytes(masked)

    async def _ledgers_of(
        self, lookup: Callable[[Buffer], Awaitable[bytes]], ids: Iterable[int], record_size: int, ledger_offset: int
    ) -> dict[int, int]:
        """The ledger of each record found among `ids` (records are never deleted nor change ledger)."""
        wanted = list(ids)
        ledgers: dict[int, int] = {}
        for start in range(0, len(wanted), BATCH_EVENTS_MAX):
            found = memoryview(await lookup(pack_ids(wanted[start : start + BATCH_EVENTS_MAX])))
            record_ledgers = _u32s(found, ledger_offset, record_size)
            for index, ledger in enumerate(record_ledgers):
                ledgers[_u128(found, index * record_size)] = ledger
        return ledgers

    # -- reads: other ledgers are not there --------------------------------------------------------

    async def lookup_accounts(self, ids: Buffer) -> bytes:
        return self._visible(await self._ledger.lookup_accounts(ids), ACCOUNT_SIZE, ACCOUNT_LEDGER_OFFSET)

    async def lookup_transfers(self, ids: Buffer) -> bytes:
        return self._visible(await self._ledger.lookup_transfers(ids), TRANSFER_SIZE, TRANSFER_LEDGER_OFFSET)

    async def get_account_transfers(self, f: AccountFilter) -> TransfersPage:
        f.check()
        if not await self._may_see_account(f.account_id):
            return TransfersPage(transfers=b"", next=None)
        return await self._ledger.get_account_transfers(f)

    async def get_account_balances(self, f: AccountFilter) -> BalancesPage:
        f.check()
        if not await self._may_see_account(f.account_id):
            return BalancesPage(balances=[], next=None)
        return await self._ledger.get_account_balances(f)

    async def _may_see_account(self, account_id: int) -> bool:
        # Every transfer of an account is in the account's ledger, so seeing the account is seeing its history.
        found = await self._ledger.lookup_accounts(pack_ids([account_id]))
        return bool(found) and _u32s(found, ACCOUNT_LEDGER_OFFSET, ACCOUNT_SIZE)[0] in self._ledgers

    def _visible(self, records: bytes, record_size: int, ledger_offset: int) -> bytes:
        ledgers = _u32s(records, ledger_offset, record_size)
        if self._ledgers.issuperset(ledgers):
            return records
        return b"".join(
            records[i * record_size : (i + 1) * record_size]
            for i, ledger in enumerate(ledgers)
            if ledger in self._ledgers
        )

    def _listed(self) -> str:
        ordered = sorted(self._ledgers)
        shown = ", ".join(str(ledger) for ledger in ordered[:_LEDGERS_LISTED_MAX])
        more = f" and {len(ordered) - _LEDGERS_LISTED_MAX} more" if len(ordered) > _LEDGERS_LISTED_MAX else ""
        return f"this key's ledgers ({shown}{more})"

    def _refusal(self, ledger: int) -> str:
        return f"ledger {ledger} is not one of {self._listed()}"


def _u32s(buffer: Buffer, offset: int, record_size: int) -> array[int]:
    """The little-endian u32 at `offset` of every `record_size`-byte record of `buffer`, in one pass."""
    values = array("I")
    values.frombytes(buffer)
    if sys.byteorder != "little":
        values.byteswap()
    return values[offset // 4 :: record_size // 4]


def _u128(view: memoryview, offset: int) -> int:
    return int.from_bytes(view[offset + ID_OFFSET : offset + ID_OFFSET + 16], "little")
