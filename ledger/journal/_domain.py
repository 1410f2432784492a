"""What the journal asks of a domain layer (the wallet domain) whose records it carries.

The journal never reads domain records: a commit's `domain` is the bytes the
domain layer handed over with the engine entries of the same calls, and a
checkpoint's `domain` the bytes of its snapshot. Recovery hands them back in
the order they were written, and the checkpoints ask for a snapshot; this is
the whole of the contract.
"""

from __future__ import annotations

from typing import Protocol


class DomainState(Protocol):
    """The domain layer's state, as recovery rebuilds it and checkpoints save it.

    Called on one thread at a time, never concurrently with itself.
    """

    def restore(self, snapshot: bytes) -> None:
        """Start from the latest checkpoint's domain snapshot (b"" when there is no checkpoint or it holds
        none). Called first, once."""
        ...

    def replay(self, records: bytes, seq: int) -> None:
        """Apply one commit's domain records: commit by commit in seq order, only for the commits after the
        checkpoint whose domain is not empty.

        Domain records are replayed as they are read, beside the engine entries, not after them: the engine
        may not yet hold the entries of this commit (or may already hold those of later ones), so a replay
        must rebuild the domain state from its records alone, without reading the engine.
        """
        ...

    def snapshot(self) -> bytes:
        """The whole domain state now, as `restore` takes it. Called on the event loop's thread right where
        the engine's snapshot is taken, so that both describe the same moment."""
        ...
