"""How a call ends when it is refused: one mapping from the ledger's refusals to gRPC statuses, for every
servicer, and the log lines refusals leave.

A refusal caused by what the caller sent (INVALID_ARGUMENT) is logged at most
once per REFUSAL_LOG_INTERVAL_SECONDS with a count of the others, never with
a traceback: a client sending garbage must not be able to fill the log. An
exception that is none of the refusals is a bug in the server: the call ends
INTERNAL, and the server logs it with its traceback (never UNKNOWN, which
would tell the caller nothing and could be mistaken for its own fault).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, NoReturn, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from ledger.auth import AuthFailure, PermissionDenied
from ledger.core import LedgerOverloaded, LedgerReserved, LedgerUnavailable
from ledger.engine import EngineError

from ._convert import ConversionError
from ._limits import REQUEST_BYTES_MAX

logger = logging.getLogger(__name__)

REFUSAL_LOG_INTERVAL_SECONDS: Final = 10.0

Result = TypeVar("Result")
Parsed = TypeVar("Parsed", bound=Message)


class MalformedRequest(ConversionError):
    """Request bytes that are not the RPC's request message, or more bytes than its largest one takes."""


REFUSALS: Final[tuple[tuple[type[Exception] | tuple[type[Exception], ...], grpc.StatusCode], ...]] = (
    ((ConversionError, EngineError, ValueError), grpc.StatusCode.INVALID_ARGUMENT),
    ((PermissionDenied, LedgerReserved), grpc.StatusCode.PERMISSION_DENIED),
    (LedgerOverloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (LedgerUnavailable, grpc.StatusCode.UNAVAILABLE),
)


def status_of(exc: BaseException) -> grpc.StatusCode | None:
    """The status for one of the ledger's refusals; None for anything else (a bug: INTERNAL)."""
    if isinstance(exc, AuthFailure):
        return exc.code
    for kinds, code in REFUSALS:
        if isinstance(exc, kinds):
            return code
    return None


class RefusalLog:
    """Logs refused requests at most once per interval: the first in full, the rest as a count."""

    def __init__(self, interval_seconds: float = REFUSAL_LOG_INTERVAL_SECONDS) -> None:
        self._interval_seconds = interval_seconds
        self._logged_at = -interval_seconds
        self._suppressed = 0

    def refused(self, method: str, peer: str, message: str) -> None:
        now = time.monotonic()
        if now - self._logged_at < self._interval_seconds:
            self._suppressed += 1
            return
        suppressed, self._suppressed, self._logged_at = self._suppressed, 0, now
        more = f" ({suppressed} more refused since the last line)" if suppressed else ""
        logger.warning("refused %s from %s: %s%s", method, peer, message, more)


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


async def refuse_if_late(context: grpc.aio.ServicerContext) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        await abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call began")


async def refuse(
    context: grpc.aio.ServicerContext, exc: BaseException, method: str, log: RefusalLog | None = None
) -> NoReturn:
    """End the call to `method` with the status `exc` stands for; anything unforeseen is INTERNAL and logged."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc  # the call was already ended with its status
    code = status_of(exc)
    if code is None:
        logger.error("internal error serving %s to %s", method, context.peer(), exc_info=exc)
        await abort(context, grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); the server logged it")
    message = str(exc)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        if not message.startswith(f"{method}: "):
            message = f"{method}: {message}"  # what the caller sent is named from the RPC down
        if log is not None:
            log.refused(method, context.peer(), message)
    await abort(context, code, message)


async def call(
    context: grpc.aio.ServicerContext,
    method: str,
    work: Callable[[], Awaitable[Result]],
    log: RefusalLog | None = None,
) -> Result:
    """Run `work` for a call to `method`, turning refusals into gRPC statuses; nothing starts past the deadline."""
    await refuse_if_late(context)
    try:
        return await work()
    except Exception as exc:
        await refuse(context, exc, method, log)


def request_bytes(data: bytes, method: str, bytes_max: int | None = None) -> bytes:
    """The request's bytes, refused before anything reads them if there are more than its RPC allows
    (`bytes_max`, by default the Ledger method's bound)."""
    if bytes_max is None:
        bytes_max = REQUEST_BYTES_MAX[method]
    if len(data) > bytes_max:
        raise MalformedRequest(
            f"{method}: the request has {len(data)} bytes, more than the {bytes_max} its largest valid form takes"
        )
    return data


def parse(kind: type[Parsed], data: bytes, method: str, bytes_max: int | None = None) -> Parsed:
    """The request message of `method` from its bytes (bounded first); MalformedRequest names the RPC."""
    try:
        return kind.FromString(request_bytes(data, method, bytes_max))
    except DecodeError:
        raise MalformedRequest(
            f"{method}: the request is not a valid {kind.DESCRIPTOR.full_name} (its bytes are not protobuf)"
        ) from None
