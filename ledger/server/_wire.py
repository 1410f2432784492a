"""The wire codec, chosen as the engine is: LEDGER_ENGINE=cython needs the native module
(ledger.server._wire_c), =python takes the pure-Python twin, unset takes the native one if it was built.

Both read a request's protobuf wire bytes straight into packed records (accounts,
transfers, ids) and write a reply's wire bytes straight from packed records
(accounts, transfers, results), exactly as the protobuf library and
ledger.server._convert would; every error is a ConversionError naming the field
and index, or the byte where the bytes stop being a protobuf message. A request
of more than BATCH_EVENTS_MAX elements is refused once they are counted, before
any is read or room for them is made (through protobuf: once it has parsed
them). The functions this module exports are what the service runs: the native
codec's, or where it is not loaded protobuf's and _convert's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import ModuleType

from ledger.engine import EngineUnavailable
from ledger.records.layout import Buffer
from ledger.records.native import choose
from ledger.wallet import PaymentReply

from . import _convert, _wire_py


def select(requested: str | None) -> ModuleType:
    return choose(requested, "ledger.server._wire_c", _wire_py, "the native wire codec", EngineUnavailable)


wire: ModuleType = select(os.environ.get("LEDGER_ENGINE"))
IMPLEMENTATION: str = wire.implementation

# What the service uses: the native codec, or else protobuf and _convert, which are faster than the
# pure-Python twin (the twin is the readable statement of the format the native codec is tested with).
serving: ModuleType = wire if wire is not _wire_py else _convert

decode_create_transfers: Callable[[Buffer], bytes] = serving.decode_create_transfers
"""A ledger.v1.CreateTransfersRequest's wire bytes -> its packed 128-byte transfer records."""
decode_transfer_stream_request: Callable[[Buffer], bytes] = serving.decode_transfer_stream_request
"""A ledger.v1.TransferStreamRequest's wire bytes -> one packed transfer record (zeros if it carries none)."""
encode_create_transfers_response: Callable[[Buffer], bytes] = serving.encode_create_transfers_response
"""Packed 24-byte transfer results -> the wire bytes of a ledger.v1.CreateTransfersResponse."""
encode_transfer_stream_response: Callable[[Buffer], bytes] = serving.encode_transfer_stream_response
"""One packed 24-byte transfer result -> the wire bytes of a ledger.v1.TransferStreamResponse."""
decode_create_accounts: Callable[[Buffer], bytes] = serving.decode_create_accounts
"""A ledger.v1.CreateAccountsRequest's wire bytes -> its packed 128-byte account records."""
decode_lookup_request: Callable[[Buffer], bytes] = serving.decode_lookup_request
"""A ledger.v1.LookupRequest's wire bytes -> its packed 16-byte ids (lo then hi, as ledger.engine.pack_ids packs)."""
encode_transfers: Callable[[Buffer], bytes] = serving.encode_transfers
"""Packed 128-byte transfer records -> the wire bytes of a ledger.v1.LookupTransfersResponse.

Those are `repeated Transfer transfers = 1`, and so also a SubscribeTransfersResponse; and a
GetAccountTransfersResponse once its `next` (field 2, written after field 1) is appended:
`encode_transfers(records) + GetAccountTransfersResponse(next=...).SerializeToString()`.
"""
encode_accounts: Callable[[Buffer], bytes] = serving.encode_accounts
"""Packed 128-byte account records -> the wire bytes of a ledger.v1.LookupAccountsResponse."""
encode_pay_batch_reply: Callable[[Sequence[PaymentReply]], bytes] = serving.encode_pay_batch_reply
"""Wallet payment replies -> the wire bytes of a wallet.v1.PayBatchReply."""
encode_create_accounts_response: Callable[[Buffer], bytes] = serving.encode_create_accounts_response
"""Packed 16-byte account results -> the wire bytes of a ledger.v1.CreateAccountsResponse."""
