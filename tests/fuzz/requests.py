"""Seeded request bytes for every RPC of the Ledger service: well-formed, nearly so, and not at all.

Every request is drawn from one `random.Random`, so a seed names a sequence
that can be sent again. A request starts as a message of the RPC's type with
random fields (edge values favoured: 0, 1, the limit, 2^64 - 1, ids of the
accounts and transfers that exist), repeated fields from 0 items to one past
the batch limit, packed records with random or plausible fields; then it may
be damaged: bits flipped, bytes inserted, deleted or cut off, unknown fields
and wrong wire types added, parts spliced from another request, or replaced
by random bytes. Keys are drawn too: none, a malformed one, a valid one of
each role, one of another tenant, a revoked one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ledger.records.layout import TRANSFER_STRUCT
from ledger.records.limits import BATCH_EVENTS_MAX, TRANSFER_SIZE
from ledger.server._limits import REQUEST_BYTES_MAX
from ledger.server._wire_py import _varint
from ledger.v1 import ledger_pb2

SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"]
METHODS = {method.name: method for method in SERVICE.methods}
EDGES_64 = (0, 1, 2, 127, 128, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1)
DRAWN_ITEMS_MAX = 16
EDGES_32 = (0, 1, 2, 127, 128, 65535, 65536, 2**31 - 1, 2**32 - 1)


@dataclass(frozen=True)
class Request:
    method: str
    body: bytes
    """The request; empty for a stream of requests, whose messages are `messages`."""
    messages: tuple[bytes, ...]
    key: str
    """Which key the call carries: none, garbled, or one of the fuzz keys (see test_fuzz.KEYS)."""
    how: str
    """How it was made, for the report: valid, damaged, random, oversized."""


class RequestMaker:
    """Draws requests from a seed, knowing the ids that exist so that some requests touch real records."""

    def __init__(self, seed: int, keys: tuple[str, ...], ledgers: tuple[int, ...]) -> None:
        self.random = random.Random(seed)
        self.keys = keys
        self.ledgers = ledgers
        self.account_ids: list[int] = [1]
        self.transfer_ids: list[int] = [1]
        self._recent: list[bytes] = [b""]

    # -- values ------------------------------------------------------------------------------

    def u64(self) -> int:
        r = self.random
        return r.choice(EDGES_64) if r.random() < 0.3 else r.getrandbits(r.choice((4, 8, 16, 32, 64)))

    def u32(self) -> int:
        r = self.random
        return r.choice(EDGES_32) if r.random() < 0.3 else r.getrandbits(r.choice((2, 4, 8, 16, 32)))

    def id128(self) -> int:
        r = self.random
        roll = r.random()
        if roll < 0.35:
            return r.choice(self.account_ids)
        if roll < 0.6:
            return r.choice(self.transfer_ids)
        if roll < 0.7:
            return r.choice((0, 1, 2**64, 2**128 - 1, 2**128 - 2))
        return r.getrandbits(r.choice((8, 64, 128)))

    def ledger(self) -> int:
        return self.random.choice(self.ledgers) if self.random.random() < 0.8 else self.u32()

    # -- messages ------------------------------------------------------------------------------

    def message(self, descriptor: Any, depth: int = 0) -> Message:
        """A message of this type with random fields (ledger.v1 knows its classes by descriptor)."""
        kind: type[Message] = _classes()[descriptor.full_name]
        message = kind()
        for field in descriptor.fields:
            if self.random.random() < 0.25:
                continue  # left unset
            if field.is_repeated:
                count = self.count()
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    # A long list repeats a few drawn items: as hostile to the server, far cheaper to draw.
                    drawn = [self.message(field.message_type, depth + 1) for _ in range(min(count, DRAWN_ITEMS_MAX))]
                    getattr(message, field.name).extend(drawn[i % len(drawn)] for i in range(count))
                else:
                    getattr(message, field.name).extend(self.scalar(field) for _ in range(count))
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                if field.message_type.full_name == "ledger.v1.Uint128":
                    value = self.id128()
                    getattr(message, field.name).MergeFrom(
                        _classes()["ledger.v1.Uint128"](lo=value & (2**64 - 1), hi=value >> 64)
                    )
                elif depth < 3:
                    getattr(message, field.name).CopyFrom(self.message(field.message_type, depth + 1))
            elif field.type == FieldDescriptor.TYPE_BYTES:
                setattr(message, field.name, self.packed_transfers())
            else:
                setattr(message, field.name, self.scalar(field))
        return message

    def count(self) -> int:
        r = self.random
        roll = r.random()
        if roll < 0.85:
            return r.randint(0, 4)
        if roll < 0.99:
            return r.randint(5, 64)
        return r.choice((BATCH_EVENTS_MAX, BATCH_EVENTS_MAX + 1))

    def scalar(self, field: Any) -> Any:
        if field.type == FieldDescriptor.TYPE_BOOL:
            return self.random.random() < 0.5
        if field.type == FieldDescriptor.TYPE_ENUM:
            return self.random.choice([v.number for v in field.enum_type.values])
        if field.name == "ledger":
            return self.ledger()
        if field.name == "timeout":
            return self.random.choice((0, 0, 1, 5, 2**32 - 1))
        if field.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
            if field.name in ("code", "flags") and self.random.random() < 0.7:
                return self.random.randint(0, 300)
            return self.u32()
        if field.name == "amount" and self.random.random() < 0.7:
            return self.random.randint(0, 1000)
        if field.name.startswith("timestamp") and self.random.random() < 0.5:
            return 0
        return self.u64()

    def packed_transfers(self) -> bytes:
        """Packed 128-byte records: random bytes, or plausible transfers between existing accounts."""
        r = self.random
        count = self.count()
        if r.random() < 0.2:
            return r.randbytes(count * TRANSFER_SIZE + r.choice((0, 0, 0, 1, 64, 127)))
        out = bytearray()
        for _ in range(count):
            transfer_id = r.getrandbits(64) + 1 if r.random() < 0.8 else self.id128()
            debit, credit = r.choice(self.account_ids), r.choice(self.account_ids)
            flags = r.choice((0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, r.getrandbits(16)))
            pending = r.choice(self.transfer_ids) if flags & (4 | 8) else 0
            out += TRANSFER_STRUCT.pack(
                transfer_id & (2**64 - 1), transfer_id >> 64, debit & (2**64 - 1), debit >> 64,
                credit & (2**64 - 1), credit >> 64, r.randint(0, 1000), pending & (2**64 - 1), pending >> 64,
                0, 0, 0, 0, r.choice((0, 0, 1, 3600)), self.ledger(), r.randint(1, 3), flags & 0xFFFF,
                0 if r.random() < 0.95 else self.u64(), 0 if r.random() < 0.95 else self.u64(),
            )  # fmt: skip
        return bytes(out)

    # -- damage --------------------------------------------------------------------------------

    def damaged(self, data: bytes) -> bytes:
        r = self.random
        data = bytearray(data)
        for _ in range(r.randint(1, 4)):
            action = r.randrange(7)
            position = r.randint(0, len(data))
            if action == 0 and data:  # flip bits
                index = min(position, len(data) - 1)
                data[index] ^= 1 << r.randrange(8)
            elif action == 1:  # insert bytes
                data[position:position] = r.randbytes(r.randint(1, 8))
            elif action == 2 and data:  # delete bytes
                del data[position : position + r.randint(1, 8)]
            elif action == 3:  # cut off
                del data[position:]
            elif action == 4:  # an unknown field, or a known one with another wire type
                number = r.choice((1, 2, 3, 15, 16, 100, 2**29 - 1))
                wire_type = r.randrange(8)
                data[position:position] = _varint(number << 3 | wire_type) + r.randbytes(r.randint(0, 12))
            elif action == 5:  # splice in part of an earlier request
                donor = r.choice(self._recent)
                start = r.randint(0, len(donor))
                data[position:position] = donor[start : start + r.randint(1, 64)]
            else:  # a length or varint made huge
                data[position:position] = b"\x0a" + b"\xff" * r.randint(1, 11)
        return bytes(data)

    # -- requests ------------------------------------------------------------------------------

    def request(self) -> Request:
        r = self.random
        method = r.choice(list(METHODS))
        descriptor = METHODS[method].input_type
        key = r.choices(("none", "garbled", *self.keys), weights=(1, 1, *([6] * len(self.keys))))[0]
        if METHODS[method].client_streaming:  # TransferStream, TransferBatches: a few messages on one stream
            messages = tuple(self.one(descriptor, method)[0] for _ in range(r.randint(1, 4)))
            return Request(method, b"", messages, key, "stream")
        body, how = self.one(descriptor, method)
        return Request(method, body, (), key, how)

    def one(self, descriptor: Any, method: str) -> tuple[bytes, str]:
        r = self.random
        roll = r.random()
        if roll < 0.05:
            return r.randbytes(r.randint(0, 64)), "random"
        if roll < 0.07:
            return r.randbytes(REQUEST_BYTES_MAX[method] + r.randint(1, 64)), "oversized"
        body = self.message(descriptor).SerializeToString()
        self._recent = [*self._recent[-15:], body[:4096]]
        if roll < 0.45:
            return self.damaged(body), "damaged"
        return body, "valid"

    def learn(self, account_ids: list[int], transfer_ids: list[int]) -> None:
        """Ids that now exist, for later requests to name."""
        self.account_ids = (self.account_ids + account_ids)[-512:]
        self.transfer_ids = (self.transfer_ids + transfer_ids)[-512:]


_CLASSES: dict[str, type[Message]] = {}


def _classes() -> dict[str, type[Message]]:
    if not _CLASSES:
        from ledger.v1 import types_pb2

        for module in (ledger_pb2, types_pb2):
            for name in module.DESCRIPTOR.message_types_by_name:
                kind = getattr(module, name)
                _CLASSES[kind.DESCRIPTOR.full_name] = kind
    return _CLASSES
