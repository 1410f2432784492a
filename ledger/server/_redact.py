"""No secret in any log line, whatever a caller sends.

gRPC's Cython layer logs a metadata value it cannot decode as UTF-8 in full,
with a traceback: an `authorization` header with one bad byte would put the
caller's API key in the server's log, once per call. Its record is replaced
by a line that names no value, at most once per interval. Every other line
that reaches the server's handlers passes a filter that blanks anything
shaped like an API key token or a bearer credential.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Final

GRPC_CYTHON_LOGGER: Final = "grpc._cython.cygrpc"
INVALID_ENCODING_PREFIX: Final = "Invalid encoding on"
INVALID_METADATA_LOG_INTERVAL_SECONDS: Final = 10.0
REDACTED: Final = "[redacted]"

_CREDENTIAL: Final = re.compile(r"(?i)\b(bearer|basic)\s+\S+|\blk_[0-9A-Za-z_]*")
"""A token (`lk_…`, whole or in part) or whatever follows an authorization scheme."""


def redact(text: str) -> str:
    """`text` with every credential-shaped part blanked."""
    return _CREDENTIAL.sub(REDACTED, text)


class SecretFilter(logging.Filter):
    """Blanks credentials in a record's message and arguments; replaces gRPC's undecodable-metadata line."""

    def __init__(self, interval_seconds: float = INVALID_METADATA_LOG_INTERVAL_SECONDS) -> None:
        super().__init__()
        self._interval_seconds = interval_seconds
        self._invalid_logged_at = -interval_seconds
        self._invalid_suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == GRPC_CYTHON_LOGGER and str(record.msg).startswith(INVALID_ENCODING_PREFIX):
            return self._invalid_metadata(record)
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info is not None or record.exc_text:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
            if redact(text) != text:
                record.exc_info, record.exc_text = None, None
                record.msg = f"{record.msg} (its traceback named a credential and is not logged)"
        return True

    def _invalid_metadata(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._invalid_logged_at < self._interval_seconds:
            self._invalid_suppressed += 1
            return False
        suppressed, self._invalid_suppressed, self._invalid_logged_at = self._invalid_suppressed, 0, now
        more = f" ({suppressed} more since the last line)" if suppressed else ""
        record.msg = f"a call's metadata value is not valid UTF-8; its value is not logged{more}"
        record.args, record.exc_info, record.exc_text = None, None, None
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


def install_secret_filter() -> None:
    """Put the filter on gRPC's Cython logger and on every handler of the root logger (once each)."""
    targets: list[logging.Filterer] = [logging.getLogger(GRPC_CYTHON_LOGGER), *logging.getLogger().handlers]
    for target in targets:
        if not any(isinstance(f, SecretFilter) for f in target.filters):
            target.addFilter(SecretFilter())
