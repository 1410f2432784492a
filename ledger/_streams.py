"""What a server does with a client's stream it is about to end.

grpc.aio's client reports a write that loses the race with the server's end
of the call as INTERNAL ("Internal error from Core"), and may keep that as the
call's status instead of the one the server sent. So before a call with a
request stream is refused, what the client is still sending is read and
dropped for a moment (bounded in time and in messages): its writes complete,
and it learns the real status when it next reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

DRAIN_SECONDS_MAX: Final = 0.25
DRAIN_MESSAGES_MAX: Final = 256


async def drain_requests(requests: AsyncIterator[Any]) -> None:
    """Read and drop the stream's messages until it ends, DRAIN_SECONDS_MAX pass or DRAIN_MESSAGES_MAX come."""

    async def read() -> None:
        count = 0
        async for _ in requests:
            count += 1
            if count >= DRAIN_MESSAGES_MAX:
                return

    with contextlib.suppress(TimeoutError, Exception):
        await asyncio.wait_for(read(), DRAIN_SECONDS_MAX)
