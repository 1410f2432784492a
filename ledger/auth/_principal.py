"""Who is calling: the principal a key stands for, what it may do, which ledgers it may see, which tenant it
may act for.

What a key may do is the set of permissions its role grants (ledger.auth._permissions); what each method
needs is said by the service it belongs to.

The server sets the principal of each call in a context variable; `current_principal()` reads it.
None means no key was asked for (auth off, or `auto` before the first key): every ledger is visible.
A streaming call also holds a `Grant`, which the server ends when the call's key is revoked or expires;
`check_still_allowed()` refuses the call's next step from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import grpc

from ._keys import ApiKey, Role
from ._permissions import ROLE_PERMISSIONS, Permission


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind a valid key."""

    key_id: str
    tenant: str
    role: Role
    ledgers: frozenset[int] | None
    """The ledgers the caller may see and touch; None: every ledger (admin)."""

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        return cls(key.key_id, key.tenant, key.role, None if key.role is Role.ADMIN else key.ledgers)

    @property
    def permissions(self) -> frozenset[Permission]:
        """What the key's role grants."""
        return ROLE_PERMISSIONS[self.role]

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def may_act_for_tenant(self, tenant: str) -> bool:
        """Whether the caller may act for `tenant` (the Wallet service asks on every call): an admin key for any
        tenant, every other key for its own only."""
        return tenant == self.tenant or Permission.ADMIN in ROLE_PERMISSIONS[self.role]

    def may_see_ledger(self, ledger: int) -> bool:
        return self.ledgers is None or ledger in self.ledgers

    def describe(self) -> str:
        """For messages: the key id, tenant and role (never the secret)."""
        return f"API key {self.key_id} (tenant {self.tenant}, role {self.role.value})"


class AuthFailure(Exception):
    """A call is refused: UNAUTHENTICATED, PERMISSION_DENIED or UNAVAILABLE, with a message that never
    repeats a secret."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Grant:
    """A streaming call's standing leave to go on: ended once its key is revoked or expires."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.refusal: AuthFailure | None = None
        self._ended: asyncio.Future[None] | None = None

    def end(self, refusal: AuthFailure) -> None:
        """From now on the call is refused with `refusal`; whoever waits in `ended()` wakes."""
        if self.refusal is None:
            self.refusal = refusal
            if self._ended is not None and not self._ended.done():
                self._ended.set_result(None)

    def ended(self) -> asyncio.Future[None]:
        """Done once the grant has ended."""
        if self._ended is None:
            self._ended = asyncio.get_running_loop().create_future()
            if self.refusal is not None:
                self._ended.set_result(None)
        return self._ended


_current: ContextVar[Principal | None] = ContextVar("ledger_principal", default=None)
_grant: ContextVar[Grant | None] = ContextVar("ledger_grant", default=None)


def current_principal() -> Principal | None:
    """The principal of the call being served; None when no key was asked for."""
    return _current.get()


def may_see_ledger(ledger: int) -> bool:
    """Whether the call being served may see records of `ledger` (a feed filters what it sends with this)."""
    principal = _current.get()
    return principal is None or principal.may_see_ledger(ledger)


def current_grant() -> Grant | None:
    """The grant of the streaming call being served; None for a unary call or when no key was asked for."""
    return _grant.get()


def check_still_allowed() -> None:
    """Raise the call's refusal (AuthFailure) if its key was revoked or expired since the call began."""
    grant = _grant.get()
    if grant is not None and grant.refusal is not None:
        raise grant.refusal


@contextlib.contextmanager
def acting_as(principal: Principal | None, grant: Grant | None = None) -> Iterator[None]:
    """Serve what runs inside on behalf of `principal` (a streaming call: for as long as `grant` lasts)."""
    token = _current.set(principal)
    grant_token = _grant.set(grant)
    try:
        yield
    finally:
        _grant.reset(grant_token)
        _current.reset(token)
