"""One ledger client per API key, all on one gRPC channel: each caller's own key goes with its calls, so the
ledger checks its permissions and tenant itself (one key table), and calls of one key are coalesced."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from ledger.client import AsyncClient


class Clients:
    """The clients of the keys seen lately, the least recently used closed past `clients_max`."""

    def __init__(self, base: AsyncClient, clients_max: int) -> None:
        self.base = base
        self._clients: OrderedDict[str, AsyncClient] = OrderedDict()
        """By API key (each client's configuration holds its key anyway); in memory only, never logged."""
        self._clients_max = clients_max
        self._closing: set[asyncio.Task[None]] = set()

    def for_key(self, api_key: str) -> AsyncClient:
        """The client that calls with `api_key` ("" for none: a ledger without auth)."""
        if not api_key:
            return self.base
        name = api_key
        client = self._clients.get(name)
        if client is not None:
            self._clients.move_to_end(name)
            return client
        client = self._clients[name] = self.base.with_api_key(api_key)
        if len(self._clients) > self._clients_max:
            _, oldest = self._clients.popitem(last=False)
            closing = asyncio.get_running_loop().create_task(oldest.close())  # its calls in flight end first
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return client

    async def close(self) -> None:
        await asyncio.gather(*self._closing, return_exceptions=True)
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        await self.base.close()
