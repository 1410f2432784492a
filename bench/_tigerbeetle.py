"""TigerBeetle in the comparison: its Python client against a server the user started, and its own load generator.

The `tigerbeetle` package (its Python client, `pip install tigerbeetle`) is imported only when a
TigerBeetle address is given, so the comparison runs without it.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

TIGERBEETLE_BATCH_MAX = 8189
"""TigerBeetle's largest batch of transfers: what fits in its 1 MiB message after the header."""

OPEN_TIMEOUT_SECONDS = 30.0
LOAD_ACCEPTED = re.compile(r"load accepted\s*=\s*(\d+)\s*tx/s")
BATCH_LATENCY = re.compile(r"batch latency p(\d+)\s*=\s*(\d+)\s*ms")
RELEASE = re.compile(r"\brelease=(\S+)")
GIT_COMMIT = re.compile(r"\bgit_commit=([0-9a-f]{7,40})")


def async_client(cluster_id: int, address: str) -> Any:
    import tigerbeetle

    return tigerbeetle.ClientAsync(cluster_id=cluster_id, replica_addresses=address)


def client_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tigerbeetle")
    except PackageNotFoundError:
        return None


class TigerBeetleBooks:
    """One ledger's accounts and transfers in a TigerBeetle cluster, through its async Python client.

    The cluster is the user's and may hold earlier runs, so every id here carries random high 64 bits.
    """

    def __init__(self, address: str, *, cluster_id: int = 0, client_factory: Callable[[int, str], Any] = async_client):
        import tigerbeetle

        self.tb = tigerbeetle
        self.address = address
        self.client = client_factory(cluster_id, address)
        self.id_base = (secrets.randbits(63) + 1) << 64

    async def close(self) -> None:
        await self.client.close()

    async def create_accounts(self, accounts: Sequence[tuple[int, int, bool]], ledger: int) -> None:
        """Accounts as (id, code, guarded): a guarded account's debits may not exceed its credits."""
        tb = self.tb
        for first in range(0, len(accounts), TIGERBEETLE_BATCH_MAX):
            batch = [
                tb.Account(id=self.id_base + account, ledger=ledger, code=code,
                           flags=tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS if guarded else tb.AccountFlags.NONE)
                for account, code, guarded in accounts[first : first + TIGERBEETLE_BATCH_MAX]
            ]  # fmt: skip
            results = await self._first_call(self.client.create_accounts(batch))
            failed = {r.status for r in results if r.status != tb.CreateAccountStatus.CREATED}
            if failed:
                raise RuntimeError(f"TigerBeetle refused accounts: {sorted(s.name for s in failed)}")

    async def _first_call(self, call: Any) -> Any:
        """A call that fails clearly when no cluster answers (the client would retry for ever)."""
        try:
            return await asyncio.wait_for(call, OPEN_TIMEOUT_SECONDS)
        except TimeoutError:
            raise RuntimeError(
                f"no TigerBeetle answered at {self.address} within {OPEN_TIMEOUT_SECONDS:.0f} s "
                "(start one: tigerbeetle format ... && tigerbeetle start --addresses=...)"
            ) from None

    async def create_transfers(
        self, ids: Sequence[int], debits: Sequence[int], credits: Sequence[int], amounts: Sequence[int],
        *, ledger: int, code: int,
    ) -> None:  # fmt: skip
        """Create transfers (at most TIGERBEETLE_BATCH_MAX in one call); any refusal raises."""
        tb, base = self.tb, self.id_base
        batch = [
            tb.Transfer(id=base + i, debit_account_id=base + d, credit_account_id=base + c, amount=a, ledger=ledger,
                        code=code)
            for i, d, c, a in zip(ids, debits, credits, amounts, strict=True)
        ]  # fmt: skip
        results = await self.client.create_transfers(batch)
        created = tb.CreateTransferStatus.CREATED
        if len(results) != len(batch) or any(r.status != created for r in results):
            failed = sorted({r.status.name for r in results if r.status != created})
            raise RuntimeError(f"TigerBeetle refused transfers: {failed or 'results missing'}")


def run_benchmark(binary: str, *, account_count: int, transfer_count: int, timeout_seconds: float) -> dict[str, Any]:
    """Run `tigerbeetle benchmark` (it starts a cluster of its own on a temporary file) and read its figures."""
    command = [binary, "benchmark", f"--account-count={account_count}", f"--transfer-count={transfer_count}"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout_seconds, check=False)
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {completed.returncode}:\n{output[-2000:]}")
    figures = parse_benchmark(output)
    return {"command": " ".join(command), **figures}


def parse_benchmark(output: str) -> dict[str, Any]:
    """The transfers/s and the batch latency percentiles that `tigerbeetle benchmark` prints."""
    accepted = LOAD_ACCEPTED.search(output)
    if accepted is None:
        raise ValueError(f"no 'load accepted = N tx/s' line in the benchmark's output:\n{output[-2000:]}")
    figures: dict[str, Any] = {"transfers_per_s": int(accepted.group(1))}
    for percentile, milliseconds in BATCH_LATENCY.findall(output):
        if percentile in ("50", "99", "100"):
            figures[f"batch_p{percentile}_ms"] = int(milliseconds)
    for name, pattern in (("release", RELEASE), ("git_commit", GIT_COMMIT)):
        found = pattern.search(output)
        if found:
            figures[name] = found.group(1)[:12] if name == "git_commit" else found.group(1)
    return figures
