"""Ids derived from what the caller names, so that no operation needs a directory lookup.

- A wallet's account id is the UUIDv5 of (tenant, customer, currency): opening a wallet twice opens one.
- A tenant's system account ids are derived from (tenant, currency, kind) the same way.
- An operation's transfer ids are derived from (tenant, idempotency key): a retry names the same
  transfers, so the core's idempotency answers it, after a restart too. Step `index` of a chain is the
  low four bits of the id, so one key names up to 16 transfers.
- A request's fingerprint is a 64-bit hash of its canonical fields: a retry with the same key and a
  different request is told apart from a replay.

No derived id is 0 or 2**128 - 1 (the core refuses those); the chance that a hash lands there is
2**-127 and it is moved off them all the same.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Final

from ledger.records.limits import ID_INT_MAX

WALLET_NAMESPACE: Final = uuid.UUID("6f1c2a5e-8d7b-5b8e-9a43-2c1f0e4b7d91")
"""The UUIDv5 namespace of wallet and system account ids."""
CHAIN_STEPS_MAX: Final = 16


def _usable(value: int) -> int:
    return value if 0 < value < ID_INT_MAX else 1


_NAMESPACE_BYTES: Final = WALLET_NAMESPACE.bytes
_VERSION_MASK: Final = ~(0xF000 << 64 | 0xC000 << 48) & (2**128 - 1)
_VERSION_5: Final = 0x5000 << 64 | 0x8000 << 48


def _uuid5(name: str) -> int:
    """uuid.uuid5(WALLET_NAMESPACE, name).int, without building a UUID (a payment derives one per call)."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:16], "big") & _VERSION_MASK | _VERSION_5


def wallet_id(tenant: str, customer: str, currency: str) -> int:
    """The wallet's account id: UUIDv5 of the triple, as a 128-bit integer."""
    return _usable(_uuid5(f"wallet\x00{tenant}\x00{customer}\x00{currency}"))


def system_account_id(tenant: str, currency: str, kind: int) -> int:
    return _usable(_uuid5(f"system\x00{tenant}\x00{currency}\x00{kind}"))


def operation_id(tenant: str, key: str) -> int:
    """The base id of the transfers of the operation with this idempotency key (step 0)."""
    digest = hashlib.blake2b(f"op\x00{tenant}\x00{key}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "little") & ~(CHAIN_STEPS_MAX - 1) or CHAIN_STEPS_MAX


def step_id(base: int, index: int) -> int:
    """The id of step `index` of the chain whose base id is `base`."""
    assert 0 <= index < CHAIN_STEPS_MAX
    return _usable(base | index)


def derived_id(*parts: object) -> int:
    """An id for a transfer the wallet makes on its own (an expiry, a sweep's void), from its parts."""
    digest = hashlib.blake2b("\x00".join(str(part) for part in parts).encode(), digest_size=16).digest()
    return _usable(int.from_bytes(digest, "little"))


def fingerprint(*fields: object) -> int:
    """A request's 64-bit fingerprint from its canonical fields (kind first)."""
    digest = hashlib.blake2b("\x1f".join(repr(field) for field in fields).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def payment_fingerprint(customer: str, amount: int, order_reference: str, partial: bool, currency: str) -> int:
    """fingerprint("pay", customer, amount, order_reference, partial, currency), with its text written out
    (a payment takes one in the batch's hot loop; a test checks the two agree)."""
    text = f"'pay'\x1f{customer!r}\x1f{amount!r}\x1f{order_reference!r}\x1f{partial!r}\x1f{currency!r}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def code_payment_fingerprint(code: str, amount: int, order_reference: str, partial: bool, currency: str) -> int:
    """fingerprint("pay-code", code, amount, order_reference, partial, currency), with its text written out (a
    batch of payments by code takes one per payment; a test checks the two agree)."""
    text = f"'pay-code'\x1f{code!r}\x1f{amount!r}\x1f{order_reference!r}\x1f{partial!r}\x1f{currency!r}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
