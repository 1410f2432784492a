"""The services a server assembles: each brings how it registers, its name for reflection and health
checking, and the permission each of its methods needs; authentication, metrics, health and reflection
loop over the list, so a service added beside the Ledger service (the wallet) changes none of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import grpc

from ledger.auth import Permission


@dataclass(frozen=True)
class Service:
    name: str
    """The full gRPC service name (package.Service): for reflection, health checking and permissions."""
    register: Callable[[grpc.aio.Server], None]
    """Adds the service's method handlers to a server."""
    permissions: Mapping[str, Permission]
    """What each method (by name) needs; a method not listed needs ADMIN."""
