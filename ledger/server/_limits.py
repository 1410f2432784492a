"""Every bound of the gRPC front door in one place, with the relations between them.

A request is refused before it is parsed when its bytes exceed what the
largest request of its kind can take: every field of every item present,
each written in its longest plain form (a varint in 10 bytes, a length in
the bytes its largest value needs), with BATCH_EVENTS_MAX items in a
repeated field. Anything longer carries more items than the limit allows or
bytes that are not the request's fields, and reading it would cost the
server more than any valid request: it is INVALID_ARGUMENT, naming the RPC
and the bound, before a byte of it is decoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor

from ledger.records.limits import BATCH_EVENTS_MAX, TRANSFER_SIZE
from ledger.v1 import ledger_pb2

MESSAGE_BYTES_MAX: Final = 4 << 20
"""gRPC's own cap on one message, both ways (the client library uses the same)."""

VARINT_BYTES_MAX: Final = 10
FIXED64_BYTES: Final = 8
FIXED32_BYTES: Final = 4

STREAM_IN_FLIGHT_MAX: Final = 256
"""Transfers of one TransferStream applied and waiting for durability at once; past it the stream is not read."""
BATCHES_IN_FLIGHT_MAX: Final = 8
"""Batches of one TransferBatches stream applied and waiting for durability at once (up to 8 x 8190 transfers)."""


def _varint_size(value: int) -> int:
    size = 1
    while value > 0x7F:
        value >>= 7
        size += 1
    return size


def _length_delimited(body_max: int) -> int:
    return _varint_size(body_max) + body_max


def message_bytes_max(descriptor: Any, bytes_max: Mapping[str, int], items_max: int = BATCH_EVENTS_MAX) -> int:
    """The longest plain encoding of a message: every field present at its longest, `items_max` per repeated
    field; a `bytes` field holds at most `bytes_max[its full name]` bytes."""
    total = 0
    for field in descriptor.fields:
        tag = _varint_size(field.number << 3)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            value = _length_delimited(message_bytes_max(field.message_type, bytes_max, items_max))
        elif field.type in (FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_STRING):
            value = _length_delimited(bytes_max[field.full_name])
        elif field.type in (FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_DOUBLE):
            value = FIXED64_BYTES
        elif field.type in (FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_FLOAT):
            value = FIXED32_BYTES
        else:  # every varint type: uint32, uint64, enum, bool, int32 and int64 (negative ones take 10 bytes)
            value = VARINT_BYTES_MAX
        total += (items_max if field.is_repeated else 1) * (tag + value)
    return total


_BYTES_FIELDS_MAX: Final = {"ledger.v1.PackedTransfers.records": BATCH_EVENTS_MAX * TRANSFER_SIZE}
"""The most bytes of each `bytes` field in a request."""

_SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"]

REQUEST_BYTES_MAX: Final[Mapping[str, int]] = {
    method.name: message_bytes_max(method.input_type, _BYTES_FIELDS_MAX) for method in _SERVICE.methods
}
"""Per Ledger method, the most bytes one request message may have (each message of a stream)."""

SUBSCRIBE_MESSAGE_BYTES_MAX: Final = BATCH_EVENTS_MAX * TRANSFER_SIZE
"""Packed transfers per SubscribeTransfers message: a commit larger than a batch spans several messages."""

assert max(REQUEST_BYTES_MAX.values()) < MESSAGE_BYTES_MAX, "a full request of every kind must fit a message"
assert message_bytes_max(ledger_pb2.SubscribeTransfersResponse.DESCRIPTOR, {}) < MESSAGE_BYTES_MAX, (
    "a full feed message must fit a message"
)
assert message_bytes_max(ledger_pb2.LookupAccountsResponse.DESCRIPTOR, {}) < MESSAGE_BYTES_MAX, (
    "a full lookup reply must fit a message"
)
