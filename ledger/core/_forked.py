"""A snapshot serialized by a forked copy of the process, so the event loop stops only for the fork.

The domain's state is Python objects, and serializing a large one is seconds of interpreter time: taken on the
event loop, every call waits that long; on a thread, the event loop shares the interpreter with it for as long.
A forked child sees the state exactly as it was at the fork (the pages are shared until either side writes
them) and serializes it on a core of its own, while the parent goes on; the bytes come back through a pipe,
read by the thread that saves the checkpoint. What the fork costs is copying the page tables: some 15 ms at
1.5 GB. The child's memory grows by the pages it touches (the domain's objects, whose reference counts it
changes), for as long as it runs.

The child runs nothing but the serialization, and ends with os._exit: it never touches the locks, sockets and
connections the parent's other threads hold, nor runs their finalizers.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import traceback
import warnings
from collections.abc import Callable

CHUNK_BYTES = 1 << 20


class SnapshotFailed(Exception):
    """The forked child did not deliver its snapshot."""


def fork_available() -> bool:
    return hasattr(os, "fork") and hasattr(os, "waitstatus_to_exitcode")


def snapshot_in_child(make: Callable[[], bytes]) -> Callable[[], bytes]:
    """Fork; the child writes `make()` to a pipe and exits. Returns what reads it (on any thread, once):
    the bytes, or SnapshotFailed if the child failed or was killed."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12 warns of forking a process with threads: this child uses none of their state.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its result is what the parent's tests check
        _child(make, read_end, write_end)
    os.close(write_end)

    def result() -> bytes:
        chunks: list[bytes] = []
        try:
            while chunk := os.read(read_end, CHUNK_BYTES):
                chunks.append(chunk)
        finally:
            os.close(read_end)
            _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
            raise SnapshotFailed(f"the snapshot's process {pid} {how}")
        return b"".join(chunks)

    return result


def _child(make: Callable[[], bytes], read_end: int, write_end: int) -> None:  # pragma: no cover - the child
    code = 1
    try:
        gc.disable()  # a collection could finalize the parent's objects (connections) from here
        os.close(read_end)
        try:  # a signal meant for the child ends it, and never reaches the parent's loop through its wakeup fd
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_DFL)
        except ValueError:  # not the main thread (a ledger on a loop of its own, as in tests): nothing was set
            pass
        view = memoryview(make())
        while view:
            written = os.write(write_end, view[:CHUNK_BYTES])
            view = view[written:]
        code = 0
    except BaseException:  # reported on the inherited stderr, unbuffered; the parent sees the exit code
        with contextlib.suppress(BaseException):  # nothing more to be done before exiting
            os.write(2, f"the snapshot's process failed:\n{traceback.format_exc()}".encode())
    finally:
        os._exit(code)
