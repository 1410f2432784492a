"""The request being answered: its id, in a context variable, and the gateway's loggers that name it."""

from __future__ import annotations

import contextvars
import logging
from typing import Final

REQUEST_ID: Final[contextvars.ContextVar[str]] = contextvars.ContextVar("gateway_request_id", default="")
ANSWER: Final[contextvars.ContextVar[dict[str, bool]]] = contextvars.ContextVar("gateway_answer")
"""What the request's handling learnt that its answer's headers tell: {"replayed": True} when the ledger gave
an idempotent write's original answer again. A dict set per request, so a handler may mark it from any
context that copied the request's."""


def mark_replayed() -> None:
    marks = ANSWER.get(None)
    if marks is not None:
        marks["replayed"] = True


class _NameTheRequest(logging.Filter):
    """Ends every line logged while a request is answered with its id, which its answer carries too."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        record.request_id = request_id
        if request_id and not getattr(record, "request_named", False):
            record.msg = f"{record.msg} [request {request_id}]"
            record.request_named = True
        return True


_FILTER: Final = _NameTheRequest()


def request_logger(name: str) -> logging.Logger:
    """A module's logger whose lines name the request they were logged for."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
