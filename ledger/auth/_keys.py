"""API keys: the token format, how a secret is stored, and the bounds of a key's fields.

A token is `lk_<key id>_<secret>`: the key id is 16 hex digits (8 random
bytes), the secret 64 hex digits (32 bytes from `secrets`, 256 bits of
entropy). The store keeps only SHA-256 over the key id and the secret; a
secret this long cannot be guessed, so a slow password hash would add
nothing but latency to every call. Secrets are compared with
`hmac.compare_digest`.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

TOKEN_PREFIX: Final = "lk"
KEY_ID_BYTES: Final = 8
SECRET_BYTES: Final = 32
TOKEN_LENGTH: Final = len(TOKEN_PREFIX) + 1 + 2 * KEY_ID_BYTES + 1 + 2 * SECRET_BYTES
TENANT_LENGTH_MAX: Final = 64
NAME_LENGTH_MAX: Final = 128
LEDGER_MAX: Final = 2**32 - 1
"""Ledger numbers are u32 and never 0."""
KEY_LEDGERS_MAX: Final = 1024
"""Most ledgers one key may be bound to."""

_KEY_ID: Final = re.compile(rf"[0-9a-f]{{{2 * KEY_ID_BYTES}}}")
_TOKEN: Final = re.compile(rf"{TOKEN_PREFIX}_([0-9a-f]{{{2 * KEY_ID_BYTES}}})_([0-9a-f]{{{2 * SECRET_BYTES}}})")
_TENANT: Final = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{TENANT_LENGTH_MAX - 1}}}")


class Role(enum.StrEnum):
    """What a key may do: a name for a set of permissions (ledger.auth._permissions.ROLE_PERMISSIONS).

    The ledger roles act on the ledgers their key names; the wallet roles act for their key's tenant (the
    wallet tenant id), which the Wallet service checks on every call; `admin` acts for everyone.
    """

    READ = "read"
    """Reads the key's ledgers."""
    WRITE = "write"
    """Reads and moves money on the key's ledgers."""
    ADMIN = "admin"
    """Everything, on every ledger and for every tenant: an operator of the server."""
    POS = "pos"
    """A POS terminal: reads its tenant's wallets (a balance before charging it) and pays."""
    SHOP = "shop"
    """A shop's server: a terminal's permissions, and top-ups, refunds and vouchers."""
    OPERATOR = "operator"
    """The tenant's operator: every wallet permission, for its own tenant."""
    READONLY = "readonly"
    """A dashboard: reads the tenant's wallets, and the ledgers its key names."""


LEDGERS_REQUIRED: Final = frozenset({Role.READ, Role.WRITE})
"""Roles whose keys must name the ledgers they touch: everything they may do is on ledgers."""
LEDGERS_ALLOWED: Final = LEDGERS_REQUIRED | {Role.READONLY}
"""Roles whose keys may name ledgers. A readonly key's ledgers are those its ledger.read covers; with none,
it reads its tenant's wallets only. An admin key names none and touches all; the wallet roles (pos, shop,
operator) name none: they act for their tenant, whose ledgers the Wallet service knows."""


class MalformedToken(ValueError):
    """The text is not a token of this ledger (the message never repeats it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """One key as stored: everything but its secret, of which only a hash is kept."""

    key_id: str
    name: str
    tenant: str
    role: Role
    ledgers: frozenset[int]
    """The ledgers the key may touch through the Ledger service; empty for an admin key, which is bound to none
    and may touch all, and for a key that acts for its tenant only (see LEDGERS_ALLOWED)."""
    secret_sha256: bytes
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    """None: the key works until it is revoked."""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def refusal(self, now: datetime) -> str | None:
        """Why the key no longer works at `now` (revoked or expired), or None while it does."""
        if self.revoked_at is not None:
            return f"API key {self.key_id} was revoked at {self.revoked_at.isoformat(timespec='seconds')}"
        if self.expires_at is not None and self.expires_at <= now:
            return f"API key {self.key_id} expired at {self.expires_at.isoformat(timespec='seconds')}"
        return None

    def matches(self, secret: str) -> bool:
        """Whether `secret` is this key's secret, in time independent of where they differ."""
        return hmac.compare_digest(hash_secret(self.key_id, secret), self.secret_sha256)


def new_secret() -> tuple[str, str]:
    """A fresh key id and secret."""
    return secrets.token_hex(KEY_ID_BYTES), secrets.token_hex(SECRET_BYTES)


def format_token(key_id: str, secret: str) -> str:
    return f"{TOKEN_PREFIX}_{key_id}_{secret}"


def parse_token(token: str) -> tuple[str, str]:
    """The key id and secret of a token; MalformedToken says what is wrong without repeating it."""
    if len(token) != TOKEN_LENGTH:
        raise MalformedToken(f"an API key has {TOKEN_LENGTH} characters, this one {len(token)}")
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise MalformedToken(
            f"an API key reads {TOKEN_PREFIX}_<{2 * KEY_ID_BYTES} hex digits>_<{2 * SECRET_BYTES} hex digits>"
        )
    return match.group(1), match.group(2)


def hash_secret(key_id: str, secret: str) -> bytes:
    """SHA-256 over the key id and the secret: a stored hash is valid for its own key id only."""
    return hashlib.sha256(f"{TOKEN_PREFIX}:{key_id}:{secret}".encode("ascii")).digest()


def check_expiry(expires_at: datetime | None, now: datetime) -> datetime | None:
    """An expiry time in UTC, which must have a time zone and lie after `now`."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise ValueError("expires_at: give a time zone (e.g. 2027-01-31T00:00:00Z)")
    if expires_at <= now:
        raise ValueError(f"expires_at: {expires_at.isoformat(timespec='seconds')} is not in the future")
    return expires_at.astimezone(UTC)


def check_key_id(key_id: str) -> str:
    if _KEY_ID.fullmatch(key_id) is None:
        raise ValueError(f"key id must be {2 * KEY_ID_BYTES} lowercase hex digits, got {key_id[:40]!r}")
    return key_id


def check_tenant(tenant: str) -> str:
    if _TENANT.fullmatch(tenant) is None:
        raise ValueError(
            f"tenant must be 1 to {TENANT_LENGTH_MAX} letters, digits, '.', '_', ':' or '-' starting with a letter "
            f"or digit, got {tenant[:80]!r}"
        )
    return tenant


def check_name(name: str) -> str:
    if len(name) > NAME_LENGTH_MAX:
        raise ValueError(f"name must be at most {NAME_LENGTH_MAX} characters, got {len(name)}")
    if not name.isprintable():
        raise ValueError(f"name must be printable text, got {name[:80]!r}")
    return name


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValueError(f"role must be one of {', '.join(r.value for r in Role)}, got {role[:40]!r}") from None


def check_ledgers(role: Role, ledgers: Iterable[int]) -> frozenset[int]:
    """The ledgers of a new key: at least one for read and write keys, any for readonly keys, none for admin
    keys and keys of the wallet roles (LEDGERS_REQUIRED, LEDGERS_ALLOWED)."""
    values = list(ledgers)
    for value in values:
        if not 1 <= value <= LEDGER_MAX:
            raise ValueError(f"ledger must be between 1 and {LEDGER_MAX}, got {value}")
    bound = frozenset(values)
    if role is Role.ADMIN and bound:
        raise ValueError("ledgers: an admin key is not bound to ledgers (it may touch all of them); name none")
    if role not in LEDGERS_ALLOWED and bound:
        article = "an" if role.value[0] in "aeiou" else "a"
        raise ValueError(
            f"ledgers: {article} {role.value} key is bound to its tenant, not to ledgers (the Wallet service knows "
            "the tenant's); name none"
        )
    if role in LEDGERS_REQUIRED and not bound:
        raise ValueError(f"ledgers: a {role.value} key must name at least one ledger it may touch")
    if len(bound) > KEY_LEDGERS_MAX:
        raise ValueError(f"ledgers: at most {KEY_LEDGERS_MAX} per key, got {len(bound)}")
    return bound


def format_ledgers(ledgers: frozenset[int]) -> str:
    """The stored form: ledger numbers in ascending order, comma-separated ('' for none)."""
    return ",".join(str(ledger) for ledger in sorted(ledgers))


def parse_ledgers(text: str) -> frozenset[int]:
    return frozenset(int(part) for part in text.split(",")) if text else frozenset()
