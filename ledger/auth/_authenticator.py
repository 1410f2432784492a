"""The server's view of the key table: a cache refreshed in the background, and the check of each call.

The cache is re-read every `auth_refresh_seconds` (so a revoked key is refused
within that time, without a restart) and a key id the cache does not know is
looked up at once (so a key created while the server runs works on its first
call). Every read of the table runs off the event loop. A key may carry an
expiry, after which it is refused as a revoked one is.

Streams outlive the check at their start, so each streaming call holds a
`Grant` registered here under its key: after every refresh (and whether or
not the table could be read, for expiry) the grants of keys that were revoked
or have expired are ended, and the interceptor ends their calls with
UNAUTHENTICATED. A revoked key thus stops working everywhere within the
refresh interval, open streams included.

Policies (`LEDGER_AUTH`):

- `auto` (default): a key is required once any key was ever created in the
  store, revoked ones included, so revoking the last key never opens the
  server. Before that, calls without a key are served for every ledger.
- `required`: every call needs a key (with no key created, every call is refused).
- `off`: no key is asked for or checked.

Whatever the policy, a key that is sent is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import grpc

from ledger.config import LedgerConfig

from ._keys import ApiKey, MalformedToken, Role, format_token, hash_secret, new_secret, parse_token
from ._permissions import Permission
from ._principal import AuthFailure, Grant, Principal
from ._store import KeyStore, KeyStoreError, open_key_store

logger = logging.getLogger(__name__)

AUTHORIZATION: Final = "authorization"
LOOKUPS_IN_FLIGHT_MAX: Final = 4
"""Reads of unknown key ids at once: a caller sending made-up ids cannot occupy more threads than this."""


class Authenticator:
    """Checks the key of each call against the key table (`start` before use, `close` after)."""

    def __init__(
        self,
        store: KeyStore,
        *,
        policy: str,
        refresh_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if policy not in ("auto", "required"):
            raise ValueError(f"policy must be auto or required (off needs no authenticator), got {policy!r}")
        self.policy = policy
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._cache: dict[str, tuple[ApiKey, Principal]] = {}
        self._own: dict[str, tuple[ApiKey, Principal]] = {}
        """Keys of the server's own parts (`own_key`): in memory only, valid until the process ends."""
        self._grants: dict[str, set[Grant]] = {}
        """Open streaming calls, by the id of the key they were allowed with."""
        self._keys_exist = False
        self._lookups = asyncio.Semaphore(LOOKUPS_IN_FLIGHT_MAX)
        self._refresher: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, config: LedgerConfig) -> Authenticator | None:
        """The authenticator `config` asks for, loaded and refreshing; None with auth off."""
        if config.auth == "off":
            return None
        store = await asyncio.to_thread(open_key_store, config.store_url)
        authenticator = cls(store, policy=config.auth, refresh_seconds=config.auth_refresh_seconds)
        try:
            await authenticator.start()
        except BaseException:
            await asyncio.to_thread(store.close)
            raise
        return authenticator

    async def start(self) -> None:
        await self.refresh()
        if self.required and all(key.revoked for key, _ in self._cache.values()):
            logger.warning(
                "LEDGER_AUTH=%s and no active API key: every call but health checks and reflection is refused "
                "until one is created (ledger keys create)",
                self.policy,
            )
        self._refresher = asyncio.create_task(self._refresh_loop(), name="ledger-auth-refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        await asyncio.to_thread(self._store.close)

    @property
    def required(self) -> bool:
        """Whether a call without a key is refused now."""
        return self.policy == "required" or self._keys_exist

    @property
    def description(self) -> str:
        """For the server's start line: whether auth is on, and why."""
        active = sum(1 for key, _ in self._cache.values() if not key.revoked)
        if self.required:
            return f"auth on (LEDGER_AUTH={self.policy}, {active} active keys of {len(self._cache)})"
        return "auth off until the first key is created (LEDGER_AUTH=auto, no key in the store)"

    async def refresh(self) -> None:
        """Re-read the whole key table (KeyStoreError if it cannot be read)."""
        keys = await asyncio.to_thread(self._store.all_keys)
        self._cache = {key.key_id: (key, Principal.of(key)) for key in keys}
        self._keys_exist = self._keys_exist or bool(keys)

    async def _refresh_loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except KeyStoreError as exc:
                if not failing:
                    logger.warning("cannot re-read the API keys, going on with those read before: %s", exc)
                failing = True
            else:
                if failing:
                    logger.info("API keys read again")
                    failing = False
            self.end_refused_grants()

    # -- streaming calls ---------------------------------------------------------

    def open_grant(self, principal: Principal) -> Grant:
        """Register a streaming call allowed with `principal`'s key; `close_grant` when the call ends."""
        grant = Grant(principal)
        self._grants.setdefault(principal.key_id, set()).add(grant)
        return grant

    def close_grant(self, grant: Grant) -> None:
        grants = self._grants.get(grant.principal.key_id)
        if grants is not None:
            grants.discard(grant)
            if not grants:
                del self._grants[grant.principal.key_id]

    def end_refused_grants(self) -> None:
        """End the grants of every open stream whose key has been revoked or has expired by now."""
        now = self._clock()
        for key_id, grants in self._grants.items():
            entry = self._cache.get(key_id) or self._own.get(key_id)
            reason = "its API key is no longer in the key table" if entry is None else entry[0].refusal(now)
            if reason is None:
                continue
            refusal = AuthFailure(grpc.StatusCode.UNAUTHENTICATED, f"{reason}; the stream ends")
            for grant in grants:
                grant.end(refusal)

    async def authenticate(
        self, metadata: Sequence[tuple[str, Any]] | None, method: str, needed: Permission
    ) -> Principal | None:
        """The principal of a call to `method`, which needs `needed`, with this metadata; None if no key is
        needed and none was sent.

        Raises AuthFailure when the call must be refused.
        """
        values = [value for key, value in metadata or () if key == AUTHORIZATION]
        if not values:
            if not self.required:
                return None
            raise AuthFailure(
                grpc.StatusCode.UNAUTHENTICATED, "missing API key: send the metadata 'authorization: Bearer <API key>'"
            )
        if len(values) > 1:
            raise AuthFailure(
                grpc.StatusCode.UNAUTHENTICATED, f"malformed API key: {len(values)} authorization entries, send one"
            )
        key_id, secret = _credentials(values[0])
        entry = self._cache.get(key_id) or self._own.get(key_id)
        if entry is None:
            entry = await self._lookup(key_id)
        key, principal = entry
        if not key.matches(secret):
            raise AuthFailure(grpc.StatusCode.UNAUTHENTICATED, f"unknown API key: key {key_id} has another secret")
        if (refusal := key.refusal(self._clock())) is not None:
            raise AuthFailure(grpc.StatusCode.UNAUTHENTICATED, refusal)
        if not principal.may(needed):
            raise AuthFailure(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{principal.describe()} may not call {method.rsplit('/', 1)[-1]}: "
                f"that needs permission {needed.value}",
            )
        return principal

    def own_key(self, name: str) -> str:
        """A token for a part of this server that calls it (the embedded gateway's webhook feeds): an admin key
        kept in memory only, never in the key table, so it ends with the process and no one can read it back."""
        key_id, secret = new_secret()
        key = ApiKey(key_id=key_id, name=name, tenant="", role=Role.ADMIN, ledgers=frozenset(),
                     secret_sha256=hash_secret(key_id, secret), created_at=self._clock())  # fmt: skip
        self._own[key_id] = (key, Principal.of(key))
        return format_token(key_id, secret)

    async def _lookup(self, key_id: str) -> tuple[ApiKey, Principal]:
        """A key id not in the cache: perhaps created since the last refresh."""
        async with self._lookups:
            try:
                key = await asyncio.to_thread(self._store.find, key_id)
            except KeyStoreError as exc:
                raise AuthFailure(grpc.StatusCode.UNAVAILABLE, f"cannot check API key {key_id} now: {exc}") from exc
        if key is None:
            raise AuthFailure(grpc.StatusCode.UNAUTHENTICATED, f"unknown API key: no key {key_id}")
        entry = (key, Principal.of(key))
        self._cache[key_id] = entry
        self._keys_exist = True
        return entry


def _credentials(value: Any) -> tuple[str, str]:
    """The key id and secret of an authorization value 'Bearer <token>'."""
    if not isinstance(value, str):
        raise AuthFailure(grpc.StatusCode.UNAUTHENTICATED, "malformed API key: authorization must be text")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthFailure(
            grpc.StatusCode.UNAUTHENTICATED, "malformed API key: authorization must read 'Bearer <API key>'"
        )
    try:
        return parse_token(token.strip())
    except MalformedToken as exc:
        raise AuthFailure(grpc.StatusCode.UNAUTHENTICATED, f"malformed API key: {exc}") from None
