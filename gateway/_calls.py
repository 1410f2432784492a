"""A request's RPC: its key's client, its deadline, and what the ledger answers turned into a result or a
problem. Routes call the ledger only through `call` and `outcome`."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ledger.client import (
    LedgerCallError,
    LedgerClosed,
    LedgerError,
    LedgerInvalidArgument,
    LedgerPermissionDenied,
    LedgerTimeout,
    LedgerUnauthenticated,
    LedgerUnreachable,
)
from ledger.v1 import wallet_pb2

from ._context import mark_replayed, request_logger
from ._problems import (
    INTERNAL,
    INVALID_BODY,
    PERMISSION_DENIED,
    RATE_LIMITED,
    UNAUTHENTICATED,
    UNAVAILABLE,
    WALLET_PROBLEMS,
    Problem,
    field_named,
    wallet_problem,
)

logger = request_logger(__name__)

RETRY_AFTER_SECONDS: Final = 1
KEY_LENGTH_MAX: Final = 255

T = TypeVar("T")


W = TypeVar("W")


async def call(rpc: Awaitable[T]) -> T:
    """Await one RPC; a refusal of the ledger, or no answer in time, as the problem it is for the caller."""
    try:
        return await rpc
    except LedgerUnauthenticated as exc:
        raise Problem(UNAUTHENTICATED, exc.message, "Authorization") from None
    except LedgerPermissionDenied as exc:
        raise Problem(PERMISSION_DENIED, exc.message) from None
    except LedgerInvalidArgument as exc:
        raise Problem(INVALID_BODY, exc.message, field_named(exc.message)) from None
    except LedgerTimeout as exc:
        logger.warning("the ledger did not answer in time: %s", exc)
        busy = exc.last_code == grpc.StatusCode.RESOURCE_EXHAUSTED
        detail = "the ledger is busy" if busy else f"the ledger did not answer within {exc.timeout_seconds:.3g} s"
        raise Problem(RATE_LIMITED if busy else UNAVAILABLE, f"{detail}; a retry with the same Idempotency-Key is safe",
                      retry_after_seconds=RETRY_AFTER_SECONDS) from None  # fmt: skip
    except (LedgerUnreachable, LedgerClosed) as exc:
        logger.warning("the ledger cannot be reached: %s", exc)
        raise Problem(
            UNAVAILABLE, "the ledger cannot be reached; nothing was sent", retry_after_seconds=RETRY_AFTER_SECONDS
        ) from None
    except LedgerCallError as exc:
        if exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise Problem(RATE_LIMITED, exc.message, retry_after_seconds=RETRY_AFTER_SECONDS) from None
        if exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise Problem(UNAVAILABLE, exc.message, retry_after_seconds=RETRY_AFTER_SECONDS) from None
        logger.error("the ledger answered %s: %s", exc.code.name, exc.message)
        raise Problem(INTERNAL, f"the ledger answered {exc.code.name}") from None
    except LedgerError as exc:
        logger.error("a ledger call failed: %s", exc)
        raise Problem(INTERNAL, "the ledger call failed") from None


async def outcome(rpc: Awaitable[W]) -> W:
    """Await one wallet RPC; its reply if OK, else its result as a problem."""
    reply = await call(rpc)
    answered: Any = reply  # every wallet reply has its result and message
    if getattr(answered, "replayed", False):
        mark_replayed()  # the original answer again: the response says so (Idempotent-Replayed)
    if answered.result != wallet_pb2.WALLET_RESULT_OK:
        raise wallet_problem(answered.result, answered.message)
    return reply


def idempotency_key(header: str | None) -> str:
    """The wallet's idempotency key from the Idempotency-Key header, which every write that moves money takes.
    Checked here as the wallet checks it: a key past the ledger's string bound would otherwise refuse the whole
    PayBatch that other callers' payments share."""
    if not header or len(header) > KEY_LENGTH_MAX or not header.isprintable():
        raise Problem(WALLET_PROBLEMS[wallet_pb2.WALLET_RESULT_IDEMPOTENCY_KEY_INVALID],
                      "Idempotency-Key: every write takes this header, 1 to 255 printable characters",
                      "Idempotency-Key")  # fmt: skip
    return header


def when(timestamp: Timestamp) -> datetime | None:
    """A protobuf timestamp as an aware UTC datetime; None when it is unset."""
    seconds, nanos = timestamp.seconds, timestamp.nanos
    if not seconds and not nanos:
        return None
    return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1_000)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def at(timestamp: Timestamp) -> datetime:
    found = when(timestamp)
    return found if found is not None else datetime.fromtimestamp(0, UTC)


def timestamp_of(moment: datetime, field: str) -> Timestamp:
    if moment.tzinfo is None:
        raise Problem(INVALID_BODY, f"{field}: give a time zone (e.g. 2027-01-31T23:00:00Z)", field)
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def settings_message(settings: Any) -> wallet_pb2.TenantSettings:
    return wallet_pb2.TenantSettings(
        name=settings.name, self_topup=settings.self_topup, topup_amounts=settings.topup_amounts,
        topup_min=settings.topup_min, topup_max=settings.topup_max, partial_payment=settings.partial_payment,
        fee_fixed=settings.fee_fixed, fee_per_mille=settings.fee_per_mille, max_balance=settings.max_balance,
        credit_expiry_seconds=settings.credit_expiry_seconds, low_balance_threshold=settings.low_balance_threshold,
        refund_to_credit=settings.refund_to_credit, pin_above=settings.pin_above, pin_attempts=settings.pin_attempts,
        pin_lock_seconds=settings.pin_lock_seconds, code_payment_max=settings.code_payment_max,
        wallet_hour_amount=settings.wallet_hour_amount, wallet_hour_count=settings.wallet_hour_count,
        wallet_day_amount=settings.wallet_day_amount, wallet_day_count=settings.wallet_day_count,
        terminal_hour_amount=settings.terminal_hour_amount, terminal_day_amount=settings.terminal_day_amount,
        terminal_declines_flag=settings.terminal_declines_flag,
    )  # fmt: skip


class Currencies:
    """Each tenant's currency, asked once: it is fixed for the tenant's life, so it is never stale."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    async def of(self, client: Any, tenant: str) -> str:
        known = self._known.get(tenant)
        if known is None:
            reply = await outcome(client.get_tenant(wallet_pb2.GetTenantRequest(tenant=tenant)))
            known = self._known[tenant] = reply.currency
        return known
