"""What a call can end in besides its results: typed errors carrying the server's message.

A request-level refusal is a gRPC status (ledger.proto says which); business
outcomes are never errors here but per-item results.
"""

from __future__ import annotations

from typing import Final

import grpc

RETRIED_CODES: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
"""Transient: retried with the same ids until the call's deadline (safe: a transfer applied before answers EXISTS)."""


class LedgerError(Exception):
    """Every error of this client."""


class LedgerCallError(LedgerError):
    """The server refused the call with a gRPC status; `message` is the server's, naming the field or reason."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class LedgerInvalidArgument(LedgerCallError):
    """The request is malformed as a whole (INVALID_ARGUMENT); nothing of it was applied."""


class LedgerUnauthenticated(LedgerCallError):
    """No valid API key (UNAUTHENTICATED); nothing was applied."""


class LedgerPermissionDenied(LedgerCallError):
    """The API key lacks the right for this call (PERMISSION_DENIED); nothing was applied."""


class LedgerTimeout(LedgerError):
    """No answer before the call's deadline: the outcome is unknown.

    The call may or may not have been applied. Retrying it with the same ids is
    safe: a transfer or account applied before answers EXISTS, never twice.
    """

    def __init__(
        self,
        timeout_seconds: float,
        attempts: int | None = None,
        last_code: grpc.StatusCode | None = None,
        last_message: str = "",
    ) -> None:
        details = []
        if attempts is not None:
            details.append(f"{attempts} attempt{'s' if attempts != 1 else ''}")
        if last_code is not None:
            details.append(f"last answer {last_code.name}: {last_message}")
        said = f" ({'; '.join(details)})" if details else ""
        super().__init__(
            f"no answer within {timeout_seconds:.3g} s{said}: the outcome is unknown; "
            "retrying with the same ids is safe"
        )
        self.timeout_seconds = timeout_seconds
        self.attempts = attempts
        self.last_code = last_code
        self.last_message = last_message


class LedgerUnreachable(LedgerError):
    """No connection to the server could be made (nothing listens there, the name does not resolve, or TLS
    does not match): nothing was sent, so nothing was applied."""

    def __init__(self, server: str, seconds: float, *, failed: bool) -> None:
        why = "the connection failed" if failed else f"no connection within {seconds:.3g} s"
        super().__init__(f"cannot reach {server}: {why}; nothing was sent")
        self.server = server
        self.seconds = seconds
        self.failed = failed


class LedgerClosed(LedgerError):
    """The client was closed before the call was sent; nothing of it was sent."""


_BY_CODE: Final[dict[grpc.StatusCode, type[LedgerCallError]]] = {
    grpc.StatusCode.INVALID_ARGUMENT: LedgerInvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: LedgerUnauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: LedgerPermissionDenied,
}


def call_error(code: grpc.StatusCode, message: str) -> LedgerCallError:
    """The typed error for a status that is not retried."""
    return _BY_CODE.get(code, LedgerCallError)(code, message)
