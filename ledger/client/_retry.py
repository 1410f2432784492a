"""When to try a call again: exponential backoff with full jitter, always within the call's deadline."""

from __future__ import annotations

import random

import grpc

from ._config import ClientConfig
from ._errors import RETRIED_CODES, LedgerError, LedgerTimeout, call_error


def backoff_seconds(config: ClientConfig, attempt: int, rng: random.Random) -> float:
    """The pause after failed attempt number `attempt` (1-based): uniform in [0, min(max, initial * 2**(attempt-1))].

    Full jitter spreads the retries of many clients that failed together (a restarting server) instead of
    having them return in waves.
    """
    ceiling = min(config.retry_backoff_max_seconds, config.retry_backoff_initial_seconds * 2 ** min(attempt - 1, 32))
    return rng.uniform(0, ceiling)


class Attempts:
    """The bookkeeping of one call's attempts: what each failure means, and the error when time is up."""

    __slots__ = ("count", "last_code", "last_message", "timeout_seconds")

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self.count = 0
        self.last_code: grpc.StatusCode | None = None
        self.last_message = ""

    def failed(self, code: grpc.StatusCode, message: str) -> None:
        """Record a failed attempt; raise what ends the call, or return to retry it."""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise self.timeout()
        if code not in RETRIED_CODES:
            raise call_error(code, message)
        self.last_code = code
        self.last_message = message

    def timeout(self) -> LedgerError:
        return LedgerTimeout(self.timeout_seconds, self.count, self.last_code, self.last_message)
