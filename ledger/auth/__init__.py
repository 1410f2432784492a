"""API keys, tenants and roles for the gRPC server.

A key belongs to a tenant and has a role, a named set of permissions. A key
of a ledger role (`read`, `write`) is bound to the ledgers (currencies) the
tenant may touch; a key of a wallet role (`pos`, `shop`, `operator`) acts for
its tenant only, which the Wallet service checks on every call; a `readonly`
key reads its tenant's wallets and the ledgers it names; an `admin` key does
everything. A key of one tenant never reads or moves another tenant's money:

- `_keys`: the token format `lk_<key id>_<secret>` and how a secret is kept
  (SHA-256 only, compared in constant time), the roles and which of them
  name ledgers;
- `_permissions`: the permissions, what each role grants, and what each
  method of each service needs;
- `_store`: the key table `ledger_api_keys` in the journal's database;
- `_principal`: the principal of the call being served (`current_principal`,
  `may_see_ledger`: what a feed such as SubscribeTransfers filters with, or
  `visible_transfers` on packed records; `Principal.may_act_for_tenant`);
- `_authenticator`, `_interceptor`: the server's cached view of the key table
  and the interceptor that checks every call's `authorization: Bearer` key;
- `_scope`: the ledger as a key bound to some ledgers may see and move it.
"""

from ._authenticator import Authenticator
from ._interceptor import AuthInterceptor
from ._keys import (
    KEY_LEDGERS_MAX,
    LEDGER_MAX,
    LEDGERS_ALLOWED,
    LEDGERS_REQUIRED,
    NAME_LENGTH_MAX,
    TENANT_LENGTH_MAX,
    TOKEN_LENGTH,
    ApiKey,
    MalformedToken,
    Role,
    format_token,
    hash_secret,
    new_secret,
    parse_token,
)
from ._permissions import (
    OPEN_SERVICES,
    ROLE_PERMISSIONS,
    MethodPermissions,
    Permission,
    is_open,
    role_permissions,
)
from ._principal import (
    AuthFailure,
    Grant,
    Principal,
    acting_as,
    check_still_allowed,
    current_grant,
    current_principal,
    may_see_ledger,
)
from ._scope import LedgerView, PermissionDenied, ScopedLedger, scoped, visible_transfers
from ._store import (
    TABLE,
    KeyNotFound,
    KeyStore,
    KeyStoreError,
    KeyStoreUnavailable,
    open_key_store,
)

__all__ = [
    "KEY_LEDGERS_MAX",
    "LEDGERS_ALLOWED",
    "LEDGERS_REQUIRED",
    "LEDGER_MAX",
    "NAME_LENGTH_MAX",
    "OPEN_SERVICES",
    "ROLE_PERMISSIONS",
    "TABLE",
    "TENANT_LENGTH_MAX",
    "TOKEN_LENGTH",
    "ApiKey",
    "AuthFailure",
    "AuthInterceptor",
    "Authenticator",
    "Grant",
    "KeyNotFound",
    "KeyStore",
    "KeyStoreError",
    "KeyStoreUnavailable",
    "LedgerView",
    "MalformedToken",
    "MethodPermissions",
    "Permission",
    "PermissionDenied",
    "Principal",
    "Role",
    "ScopedLedger",
    "acting_as",
    "check_still_allowed",
    "current_grant",
    "current_principal",
    "format_token",
    "hash_secret",
    "is_open",
    "may_see_ledger",
    "new_secret",
    "open_key_store",
    "parse_token",
    "role_permissions",
    "scoped",
    "visible_transfers",
]
