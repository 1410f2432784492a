"""Permissions: what a key may do, and what each method of each service needs.

A key's role is a named set of permissions (ROLE_PERMISSIONS). Each service the server assembles names
the permission each of its methods needs (`MethodPermissions`); a method nobody named needs ADMIN, so a
method added to a service is closed until its permission is stated. Health checking and reflection need
no key (probes and grpcurl discovery).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final

from ._keys import Role


class Permission(enum.StrEnum):
    """One thing a key may do."""

    LEDGER_READ = "ledger.read"
    """Look up accounts and transfers, read history and the committed-transfers feed, on the key's ledgers."""
    LEDGER_WRITE = "ledger.write"
    """Create accounts and transfers on the key's ledgers."""
    ADMIN = "admin"
    """Every method on every ledger (an operator's key), and any method no service gave a permission."""


ROLE_PERMISSIONS: Final[Mapping[Role, frozenset[Permission]]] = {
    Role.READ: frozenset({Permission.LEDGER_READ}),
    Role.WRITE: frozenset({Permission.LEDGER_READ, Permission.LEDGER_WRITE}),
    Role.ADMIN: frozenset(Permission),
}
"""The permissions each role grants: a role is a name for a set of them."""

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
