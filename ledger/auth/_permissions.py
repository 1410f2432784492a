"""Permissions: what a key may do, and what each method of each service needs.

A key's role is a named set of permissions (ROLE_PERMISSIONS). Each service the server assembles names
the permission each of its methods needs (`MethodPermissions`); a method nobody named needs ADMIN, so a
method added to a service is closed until its permission is stated. Health checking and reflection need
no key (probes and grpcurl discovery).

The ledger permissions act on the ledgers a key names; the wallet permissions act for the key's tenant,
which the Wallet service checks on every call (`Principal.may_act_for_tenant`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final

from ._keys import Role


class Permission(enum.StrEnum):
    """One thing a key may do. The ledger permissions act on the key's ledgers; the wallet permissions act for
    the key's tenant (`Principal.may_act_for_tenant`)."""

    LEDGER_READ = "ledger.read"
    """Look up accounts and transfers, read history and the committed-transfers feed, on the key's ledgers."""
    LEDGER_WRITE = "ledger.write"
    """Create accounts and transfers on the key's ledgers."""
    WALLET_READ = "wallet.read"
    """Read the tenant's balances, statements, payments and events."""
    WALLET_PAY = "wallet.pay"
    """Pay, hold, capture and void, spend a voucher, pay by a customer's payment code: what a POS terminal does."""
    WALLET_TOPUP = "wallet.topup"
    """Top up a wallet, redeem a voucher into one, open wallets, enrol and revoke the phones that show their
    payment codes, set their payment PINs."""
    WALLET_REFUND = "wallet.refund"
    """Refund a payment."""
    WALLET_BOOK = "wallet.book"
    """Operator bookings and their reversals; freeze, unfreeze and close wallets; pay out to breakage; lift a
    lock wrong PINs put on a wallet."""
    WALLET_GRANT = "wallet.grant"
    """Bulk grants (e.g. employees' monthly credit)."""
    WALLET_VOUCHER = "wallet.voucher"
    """Issue and deactivate vouchers."""
    WALLET_TENANT = "wallet.tenant"
    """Create and configure the key's own tenant and its settings; statements and settlement reports."""
    WALLET_WEBHOOKS = "wallet.webhooks"
    """Register the tenant's webhook endpoints, rotate their secrets, read and redeliver their deliveries (the
    HTTP gateway keeps them and checks this permission through GetServerInfo)."""
    ADMIN = "admin"
    """Every method on every ledger and for every tenant (an operator's key), and any method no service gave a
    permission."""


_WALLET_TERMINAL: Final = frozenset({Permission.WALLET_READ, Permission.WALLET_PAY})
_WALLET_SHOP: Final = _WALLET_TERMINAL | {
    Permission.WALLET_TOPUP, Permission.WALLET_REFUND, Permission.WALLET_VOUCHER, Permission.WALLET_WEBHOOKS,
}  # fmt: skip

ROLE_PERMISSIONS: Final[Mapping[Role, frozenset[Permission]]] = {
    Role.READ: frozenset({Permission.LEDGER_READ}),
    Role.WRITE: frozenset({Permission.LEDGER_READ, Permission.LEDGER_WRITE}),
    Role.ADMIN: frozenset(Permission),
    Role.POS: _WALLET_TERMINAL,
    Role.SHOP: _WALLET_SHOP,
    Role.OPERATOR: _WALLET_SHOP | {Permission.WALLET_BOOK, Permission.WALLET_GRANT, Permission.WALLET_TENANT},
    Role.READONLY: frozenset({Permission.WALLET_READ, Permission.LEDGER_READ}),
}
"""The permissions each role grants: a role is a name for a set of them."""
assert set(ROLE_PERMISSIONS) == set(Role), "every role names its permissions"


def role_permissions(role: Role) -> list[Permission]:
    """The permissions `role` grants, in the order Permission lists them (for people to read)."""
    return [permission for permission in Permission if permission in ROLE_PERMISSIONS[role]]


OPEN_SERVICES: Final = frozenset(
    {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"}
)
"""Services any caller may use without a key."""


def is_open(method: str) -> bool:
    """Whether a full method name belongs to a service that needs no key."""
    service = method.lstrip("/").split("/", 1)[0]
    return service in OPEN_SERVICES


class MethodPermissions:
    """The permission each full method name (/package.Service/Method) needs, from the services served."""

    def __init__(self, services: Iterable[tuple[str, Mapping[str, Permission]]] = ()) -> None:
        self._needed: dict[str, Permission] = {}
        for service, methods in services:
            self.add(service, methods)

    def add(self, service: str, methods: Mapping[str, Permission]) -> None:
        """The permissions of `service`'s methods, by method name."""
        for name, permission in methods.items():
            self._needed[f"/{service}/{name}"] = Permission(permission)

    def needed(self, method: str) -> Permission:
        """What a call of `method` needs: its service's word for it, else ADMIN."""
        return self._needed.get(method, Permission.ADMIN)
