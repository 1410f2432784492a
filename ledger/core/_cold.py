"""The engine's cold reader: old transfers' records, read back from the journal by ordinal.

The engine keeps full records only for its newest transfers and its open
holds; when an older one is needed (a retry's comparison, a late post or void
of a closed hold, a lookup) it asks for it by ordinal, synchronously. Every
ordinal it asks for was applied before the call that asks: the newest may
still be with the domain operation in progress (applied, handed to the writer
when it finishes), then come the writer's batches not yet durable, and the
store holds every other one.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.journal import GroupCommitWriter, Store
from ledger.records.layout import Buffer
from ledger.records.limits import TRANSFER_SIZE


class ColdRecords:
    """Transfer records by ordinal, from the operation in progress, the writer's undurable batches, or the
    store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.writer: GroupCommitWriter | None = None
        """Set once the ledger's writer exists; recovery, before it, reads only what the store holds."""
        self.unappended: Callable[[], tuple[int, Buffer]] | None = None
        """The ordinal of the first transfer not yet handed to the writer, and the records from it on that the
        operation in progress applied."""

    def __call__(self, ordinals: list[int]) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        if self.unappended is not None:
            first, records = self.unappended()
            for ordinal in ordinals:
                at = (ordinal - first) * TRANSFER_SIZE
                if 0 <= at < len(records):
                    found[ordinal] = bytes(records[at : at + TRANSFER_SIZE])
        wanted = [ordinal for ordinal in ordinals if ordinal not in found]
        if wanted and self.writer is not None:
            found.update(self.writer.undurable_transfers(wanted))
            wanted = [ordinal for ordinal in wanted if ordinal not in found]
        if wanted:
            found.update(self._store.read_transfers(wanted))
        return found
