"""Tenant scoping: the ledger as a key bound to some ledgers may see and move it.

Checks read the packed records (ledger/records/layout.py), so they hold for
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
  CREDIT_ACCOUNT_NOT_FOUND), as it would if it did not exist, also where the
  engine found it and went on to the next check (a CREDIT_ACCOUNT_NOT_FOUND
  after another tenant's debit account reads DEBIT_ACCOUNT_NOT_FOUND);
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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Hashable, Iterable
from typing import Any, Final, Protocol

from ledger.engine import (
    Buffer,
    CreateAccountResult,
    CreateTransferResult,
    check_batch,
    pack_ids,
)
from ledger.journal import AccountFilter, BalancesPage, TransfersPage
from ledger.records.layout import (
    ACCOUNT_LEDGER_OFFSET,
    ACCOUNT_RESULT_STRUCT,
    TRANSFER_CREDIT_ACCOUNT_ID_OFFSET,
    TRANSFER_DEBIT_ACCOUNT_ID_OFFSET,
    TRANSFER_ID_OFFSET,
    TRANSFER_LEDGER_OFFSET,
    TRANSFER_PENDING_ID_OFFSET,
    TRANSFER_RESULT_STRUCT,
)
from ledger.records.limits import (
    ACCOUNT_RESULT_SIZE,
    ACCOUNT_SIZE,
    BATCH_EVENTS_MAX,
    ID_SIZE,
    TRANSFER_RESULT_SIZE,
    TRANSFER_SIZE,
)

from ._principal import Principal, current_principal

AR = CreateAccountResult
TR = CreateTransferResult
assert array("I").itemsize == 4, "ledger fields are read as 4-byte unsigned ints"
assert max(AR) < 256 and max(TR) < 256, "result codes are reviewed by their first byte"
_ACCOUNT_EXISTS: Final = frozenset(int(r) for r in AR if r.name.startswith("EXISTS"))
_TRANSFER_EXISTS: Final = frozenset(int(r) for r in TR if r.name.startswith("EXISTS"))
_ACCOUNTS_ELSEWHERE: Final = frozenset(
    {TR.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER, TR.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS}
)
_CREDIT_NOT_FOUND: Final = int(TR.CREDIT_ACCOUNT_NOT_FOUND)
"""Says the debit account exists: if it is another tenant's, it must read as not found instead."""
_PENDING_ELSEWHERE: Final = frozenset(
    {
        TR.PENDING_TRANSFER_NOT_PENDING,
        TR.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID,
        TR.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID,
        TR.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER,
    }
)
_TRANSFER_REVIEWED_BYTES: Final = bytes(
    sorted(_TRANSFER_EXISTS | _ACCOUNTS_ELSEWHERE | _PENDING_ELSEWHERE | {_CREDIT_NOT_FOUND})
)
"""Results that may be about another tenant's record; every other result speaks of the key's own."""
_ACCOUNT_EXISTS_BYTES: Final = bytes(sorted(_ACCOUNT_EXISTS))
_LEDGERS_LISTED_MAX: Final = 8


class PermissionDenied(Exception):
    """A request names a ledger its key may not touch; nothing of it was applied."""


class LedgerView(Protocol):
    """What the Ledger service asks of the durable ledger (ledger.core.Ledger is one)."""

    async def create_accounts(self, events: Buffer) -> bytes: ...

    async def create_transfers(self, events: Buffer) -> bytes: ...

    async def lookup_accounts(self, ids: Buffer) -> bytes: ...

    async def lookup_transfers(self, ids: Buffer) -> bytes: ...

    async def get_account_transfers(self, f: AccountFilter, *, caller: Hashable = None) -> TransfersPage: ...

    async def get_account_balances(self, f: AccountFilter, *, caller: Hashable = None) -> BalancesPage: ...

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
    """A ledger seen through a key bound to `ledgers`.

    The common cases cost a few C-speed passes over the batch (measured in bench/bench_auth.py): the
    ledger fields are compared as bytes, and results are looked at one by one only if a result code that
    may concern another tenant's record occurs in the batch at all.
    """

    def __init__(self, ledger: LedgerView, ledgers: frozenset[int]) -> None:
        self._ledger = ledger
        self._ledgers = ledgers
        self._scope = _Ledgers(ledgers)

    # -- writes: checked when called, before anything is scheduled -----------------------------

    def create_accounts(self, events: Buffer) -> Coroutine[Any, Any, bytes]:
        """Refuses (PermissionDenied) an account of another ledger at once, then creates the batch."""
        check_batch(events, ACCOUNT_SIZE, "accounts")
        data = _as_bytes(events)  # what is checked is what is applied, whatever the caller does to `events`
        index, ledger = self._scope.first_outside(data, ACCOUNT_LEDGER_OFFSET, ACCOUNT_SIZE)
        if index >= 0:
            raise PermissionDenied(f"accounts[{index}].ledger: ledger {ledger} is not one of {self._scope.listed()}")
        return self._create_accounts(data)

    def create_transfers(self, events: Buffer) -> Coroutine[Any, Any, bytes]:
        """Refuses (PermissionDenied) a transfer of another ledger, or of ledger 0, at once, then applies the batch."""
        return self._create_transfers(self._check_transfers(events))

    def submit_transfers(self, events: Buffer) -> asyncio.Future[tuple[bytes, int]]:
        """create_transfers for a caller that pipelines (a stream): refused at once, before anything is submitted,
        else (results, ticket) once applied, the results reviewed as create_transfers reviews them."""
        data = self._check_transfers(events)
        return asyncio.ensure_future(self._submitted(data, self._ledger.submit_transfers(data)))

    async def until_durable(self, ticket: int) -> None:
        await self._ledger.until_durable(ticket)

    async def subscribe_transfers(self, timestamp_min: int) -> AsyncIterator[bytes]:
        """The committed transfers of the key's ledgers (commits with none of them are left out)."""
        async for records in self._ledger.subscribe_transfers(timestamp_min):
            if visible := self._scope.visible(_as_bytes(records), TRANSFER_SIZE, TRANSFER_LEDGER_OFFSET):
                yield visible

    def _check_transfers(self, events: Buffer) -> bytes:
        """The batch as bytes, if every transfer is of the key's ledgers (what is checked is what is applied)."""
        check_batch(events, TRANSFER_SIZE, "transfers")
        data = _as_bytes(events)
        index, ledger = self._scope.first_outside(data, TRANSFER_LEDGER_OFFSET, TRANSFER_SIZE)
        if index >= 0 and ledger == 0:
            raise PermissionDenied(
                f"transfers[{index}].ledger: 0 (take the pending transfer's ledger) is refused for a key bound "
                f"to ledgers; name the ledger, one of {self._scope.listed()}"
            )
        if index >= 0:
            raise PermissionDenied(f"transfers[{index}].ledger: ledger {ledger} is not one of {self._scope.listed()}")
        return data

    async def _create_accounts(self, data: bytes) -> bytes:
        results = _as_bytes(await self._ledger.create_accounts(data))
        reviewed = _indexes_with(results, ACCOUNT_RESULT_SIZE, _ACCOUNT_EXISTS_BYTES)
        if not reviewed:
            return results
        ids = [data[i * ACCOUNT_SIZE : i * ACCOUNT_SIZE + ID_SIZE] for i in reviewed]
        foreign = await self._foreign(self._ledger.lookup_accounts, ids, ACCOUNT_SIZE, ACCOUNT_LEDGER_OFFSET)
        if not foreign:
            return results
        masked = bytearray(results)
        for index, account_id in zip(reviewed, ids, strict=True):
            if account_id in foreign:
                ACCOUNT_RESULT_STRUCT.pack_into(
                    masked, index * ACCOUNT_RESULT_SIZE, AR.EXISTS_WITH_DIFFERENT_LEDGER, 0, 0
                )
        return bytes(masked)

    async def _create_transfers(self, data: bytes) -> bytes:
        return await self._review_transfers(data, await self._ledger.create_transfers(data))

    async def _submitted(self, data: bytes, applied: asyncio.Future[tuple[bytes, int]]) -> tuple[bytes, int]:
        results, ticket = await applied
        return await self._review_transfers(data, results), ticket

    async def _review_transfers(self, data: bytes, applied: bytes) -> bytes:
        results = _as_bytes(applied)
        reviewed = _indexes_with(results, TRANSFER_RESULT_SIZE, _TRANSFER_REVIEWED_BYTES)
        if not reviewed:
            return results

        def field(index: int, offset: int) -> bytes:
            start = index * TRANSFER_SIZE + offset
            return data[start : start + ID_SIZE]

        codes = {i: results[i * TRANSFER_RESULT_SIZE] for i in reviewed}
        # Which record each answer may be about: the transfer's own id, its accounts, or its pending transfer.
        transfer_ids = [
            field(i, TRANSFER_ID_OFFSET if codes[i] in _TRANSFER_EXISTS else TRANSFER_PENDING_ID_OFFSET)
            for i in reviewed
            if codes[i] in _TRANSFER_EXISTS or codes[i] in _PENDING_ELSEWHERE
        ]
        account_ids = [field(i, TRANSFER_DEBIT_ACCOUNT_ID_OFFSET) for i in reviewed if codes[i] == _CREDIT_NOT_FOUND]
        account_ids += [
            field(i, offset)
            for i in reviewed
            if codes[i] in _ACCOUNTS_ELSEWHERE
            for offset in (TRANSFER_DEBIT_ACCOUNT_ID_OFFSET, TRANSFER_CREDIT_ACCOUNT_ID_OFFSET)
        ]
        foreign = await self._foreign(
            self._ledger.lookup_transfers, transfer_ids, TRANSFER_SIZE, TRANSFER_LEDGER_OFFSET
        )
        foreign |= await self._foreign(self._ledger.lookup_accounts, account_ids, ACCOUNT_SIZE, ACCOUNT_LEDGER_OFFSET)
        if not foreign:
            return results
        masked = bytearray(results)
        for index in reviewed:
            code = codes[index]
            if code in _TRANSFER_EXISTS:
                # The request's ledger is one of the key's, so a stored transfer outside them has another ledger.
                hidden = TR.EXISTS_WITH_DIFFERENT_LEDGER if field(index, TRANSFER_ID_OFFSET) in foreign else 0
            elif code in _ACCOUNTS_ELSEWHERE or code == _CREDIT_NOT_FOUND:
                if field(index, TRANSFER_DEBIT_ACCOUNT_ID_OFFSET) in foreign:
                    hidden = TR.DEBIT_ACCOUNT_NOT_FOUND
                elif code != _CREDIT_NOT_FOUND and field(index, TRANSFER_CREDIT_ACCOUNT_ID_OFFSET) in foreign:
                    hidden = TR.CREDIT_ACCOUNT_NOT_FOUND
                else:
                    hidden = 0
            else:
                hidden = TR.PENDING_TRANSFER_NOT_FOUND if field(index, TRANSFER_PENDING_ID_OFFSET) in foreign else 0
            if hidden:
                TRANSFER_RESULT_STRUCT.pack_into(masked, index * TRANSFER_RESULT_SIZE, hidden, 0, 0, 0)
        return bytes(masked)

    async def _foreign(
        self, lookup: Callable[[Buffer], Awaitable[bytes]], ids: Iterable[bytes], record_size: int, ledger_offset: int
    ) -> set[bytes]:
        """Those of `ids` (packed 16-byte ids) that are not records of the key's ledgers.

        Records never change ledger and are never deleted, so a lookup after the batch tells whose they were.
        """
        wanted = list(dict.fromkeys(ids))
        foreign: set[bytes] = set()
        for start in range(0, len(wanted), BATCH_EVENTS_MAX):
            chunk = wanted[start : start + BATCH_EVENTS_MAX]
            found = _as_bytes(await lookup(b"".join(chunk)))
            if (
                len(found) == len(chunk) * record_size
                and self._scope.first_outside(found, ledger_offset, record_size)[0] < 0
            ):
                continue  # every one found, every one in the key's ledgers
            ledger_of = {
                found[i * record_size : i * record_size + ID_SIZE]: ledger
                for i, ledger in enumerate(_u32s(found, ledger_offset, record_size))
            }
            foreign.update(i for i in chunk if ledger_of.get(i) not in self._ledgers)
        return foreign

    # -- reads: other ledgers are not there --------------------------------------------------------

    async def lookup_accounts(self, ids: Buffer) -> bytes:
        found = _as_bytes(await self._ledger.lookup_accounts(ids))
        return self._scope.visible(found, ACCOUNT_SIZE, ACCOUNT_LEDGER_OFFSET)

    async def lookup_transfers(self, ids: Buffer) -> bytes:
        found = _as_bytes(await self._ledger.lookup_transfers(ids))
        return self._scope.visible(found, TRANSFER_SIZE, TRANSFER_LEDGER_OFFSET)

    async def get_account_transfers(self, f: AccountFilter, *, caller: Hashable = None) -> TransfersPage:
        f.check()
        if not await self._may_see_account(f.account_id):
            return TransfersPage(transfers=b"", next=None)
        return await self._ledger.get_account_transfers(f, caller=caller)

    async def get_account_balances(self, f: AccountFilter, *, caller: Hashable = None) -> BalancesPage:
        f.check()
        if not await self._may_see_account(f.account_id):
            return BalancesPage(balances=[], next=None)
        return await self._ledger.get_account_balances(f, caller=caller)

    async def _may_see_account(self, account_id: int) -> bool:
        # Every transfer of an account is in the account's ledger, so seeing the account is seeing its history.
        found = _as_bytes(await self._ledger.lookup_accounts(pack_ids([account_id])))
        return bool(found) and self._scope.first_outside(found, ACCOUNT_LEDGER_OFFSET, ACCOUNT_SIZE)[0] < 0


def visible_transfers(records: Buffer, principal: Principal | None) -> bytes:
    """The packed transfer records `principal` may see: all of them without a key or for an admin key.

    For a feed of committed transfers (SubscribeTransfers), which filters what it sends to each subscriber.
    """
    data = _as_bytes(records)
    if principal is None or principal.ledgers is None:
        return data
    return _Ledgers(principal.ledgers).visible(data, TRANSFER_SIZE, TRANSFER_LEDGER_OFFSET)


class _Ledgers:
    """A key's ledgers, checked against the ledger field of whole buffers of packed records."""

    def __init__(self, ledgers: frozenset[int]) -> None:
        self._ledgers = ledgers
        # A key of one ledger (the usual case) checks every record's ledger with four byte-plane comparisons.
        self._only = next(iter(ledgers)).to_bytes(4, "little") if len(ledgers) == 1 else None

    def first_outside(self, records: bytes, ledger_offset: int, record_size: int) -> tuple[int, int]:
        """The index and ledger of the first record not in the key's ledgers; (-1, 0) if there is none."""
        if self._only is not None:
            # Byte by byte of the u32, every record at once: four strided slices and compares, in C.
            count = len(records) // record_size
            if all(records[ledger_offset + k :: record_size] == self._only[k : k + 1] * count for k in range(4)):
                return -1, 0
        values = _u32s(records, ledger_offset, record_size)
        if self._only is None and self._ledgers.issuperset(values):
            return -1, 0
        return next((i, ledger) for i, ledger in enumerate(values) if ledger not in self._ledgers)

    def visible(self, records: bytes, record_size: int, ledger_offset: int) -> bytes:
        """The records of the key's ledgers, in their order."""
        if self.first_outside(records, ledger_offset, record_size)[0] < 0:
            return records
        return b"".join(
            records[i * record_size : (i + 1) * record_size]
            for i, ledger in enumerate(_u32s(records, ledger_offset, record_size))
            if ledger in self._ledgers
        )

    def listed(self) -> str:
        ordered = sorted(self._ledgers)
        shown = ", ".join(str(ledger) for ledger in ordered[:_LEDGERS_LISTED_MAX])
        more = f" and {len(ordered) - _LEDGERS_LISTED_MAX} more" if len(ordered) > _LEDGERS_LISTED_MAX else ""
        return f"this key's ledgers ({shown}{more})"


def _as_bytes(buffer: Buffer) -> bytes:
    """Strided slices of bytes run in C at memory speed; of a memoryview they do not, so copy one first."""
    return buffer if isinstance(buffer, bytes) else bytes(buffer)


def _u32s(records: bytes, offset: int, record_size: int) -> array[int]:
    """The little-endian u32 at `offset` of every record."""
    column = bytearray(4 * (len(records) // record_size))
    for k in range(4):
        column[k::4] = records[offset + k :: record_size]
    values = array("I", column)
    if sys.byteorder != "little":
        values.byteswap()
    return values


def _indexes_with(results: bytes, result_size: int, codes: bytes) -> list[int]:
    """Indexes of the results whose code is one of `codes` (every code fits its first byte)."""
    firsts = results[::result_size]
    if len(firsts.translate(None, codes)) == len(firsts):
        return []
    wanted = frozenset(codes)
    return [i for i, code in enumerate(firsts) if code in wanted]
