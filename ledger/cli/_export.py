"""`ledger export` as files of rows: CSV or Parquet, from a running server or straight from the journal.

`--store URL` exports from the journal in the store, read-only and without a
server (safe beside a running one): every transfer in journal (time) order,
or every account with its balances at the end of the journal. The rows come
from the auditor (ledger.audit): the journal is checked as it is read, and an
export of a journal that fails its audit is refused rather than written.

Parquet goes through pyarrow, an optional extra (`pip install
'wallet-ledger[export]'`): integers up to 64 bits as unsigned columns of
their width, 128-bit ids and user data as their decimal text (Parquet has
no unsigned 128-bit integer), so a Parquet export and a CSV export agree
cell for cell.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TextIO

from ledger.audit import Books, JournalUnreadable, Progress, StoredCommit, audit, open_journal, transfer_records

from ._ops import EXIT_CALL_FAILED, EXIT_FAILED_ITEMS, EXIT_USAGE
from ._parse import InputError

if TYPE_CHECKING:
    from tqdm import tqdm

    from ._csv import RecordKind

FORMATS: Final = ("csv", "parquet")
PARQUET_ROWS_PER_GROUP: Final = 65_536
"""Rows buffered per Parquet row group: memory stays bounded whatever the export's size."""
PARQUET_MISSING: Final = "Parquet needs pyarrow: pip install 'wallet-ledger[export]'"

ProgressFactory = Callable[[argparse.Namespace, "int | None", str], "tqdm[Any]"]


class RowWriter(Protocol):
    """What csv.writer is: one row of integers at a time."""

    def writerow(self, row: Iterable[Any], /) -> Any: ...


def add_export_options(parser: argparse.ArgumentParser, source: argparse._MutuallyExclusiveGroup) -> None:
    source.add_argument(
        "--store",
        metavar="URL",
        help="read the journal in this store instead of a server (postgresql://… or sqlite:///path; read-only, safe "
        "beside a running server): every transfer, or every account with its balances",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="csv or parquet (default: parquet for a .parquet file, else csv)",
    )


def table_format(requested: str | None, file: str) -> str:
    """The format to write; InputError if it cannot be written here (no pyarrow, Parquet to standard output)."""
    chosen = requested or ("parquet" if file.lower().endswith(".parquet") else "csv")
    if chosen == "parquet":
        if file == "-":
            raise InputError("Parquet cannot go to standard output ('-'): name a file")
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise InputError(PARQUET_MISSING) from None
    return chosen


@contextmanager
def open_table(file: str, partial: Path, kind: RecordKind, columns: Sequence[str], format: str) -> Iterator[RowWriter]:
    """Rows written to `partial` (or standard output for '-'), as CSV or Parquet, with a header of `columns`."""
    with ExitStack() as stack:
        if format == "parquet":
            yield stack.enter_context(_ParquetRows(partial, kind, columns))
            return
        out: TextIO = (
            sys.stdout if file == "-" else stack.enter_context(partial.open("w", newline="", encoding="utf-8"))
        )
        writer = csv.writer(out)
        writer.writerow(columns)
        yield writer


class _ParquetRows:
    def __init__(self, path: Path, kind: RecordKind, columns: Sequence[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        def column_type(name: str) -> Any:
            width = kind.widths.get(name, 64)  # the ledger's own columns (balances, timestamp) are u64
            return pa.string() if width == 128 else {64: pa.uint64(), 32: pa.uint32(), 16: pa.uint16()}[width]

        self._schema = pa.schema([(name, column_type(name)) for name in columns])
        self._text = [kind.widths.get(name) == 128 for name in columns]
        self._columns: list[list[Any]] = [[] for _ in columns]
        self._writer = pq.ParquetWriter(path, self._schema)
        self._pa = pa

    def writerow(self, row: Iterable[Any], /) -> None:
        for values, value, text in zip(self._columns, row, self._text, strict=True):
            values.append(str(value) if text else value)
        if len(self._columns[0]) >= PARQUET_ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._columns[0]:
            self._writer.write_batch(self._pa.record_batch(self._columns, schema=self._schema))
            self._columns = [[] for _ in self._columns]

    def __enter__(self) -> _ParquetRows:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self._flush()
        finally:
            self._writer.close()


def shown_on(bar: tqdm[Any]) -> Progress:
    """The auditor's progress (transfers read of the snapshot's) on a progress bar."""
    bar.unit = "transfers"

    def advance(done: int, total: int) -> None:
        bar.update(done - bar.n)

    return advance


class _AuditFailed(Exception):
    pass


def export_journal(args: argparse.Namespace, kind: RecordKind, progress: ProgressFactory) -> int:
    """`ledger export KIND FILE --store URL`: the rows of the journal, checked by the auditor as they are read."""
    try:
        journal = open_journal(args.store)
    except JournalUnreadable as exc:
        print(f"ledger export: error: {exc}", file=sys.stderr)
        return EXIT_CALL_FAILED
    columns = [*kind.columns, *kind.state_columns]
    timestamp_max = args.timestamp_max or 2**64
    partial = Path(f"{args.file}.partial")
    rows = 0
    try:
        with ExitStack() as stack:
            stack.callback(journal.close)
            table = stack.enter_context(open_table(args.file, partial, kind, columns, args.format))
            bar = stack.enter_context(progress(args, journal.extent().transfers_count, f"export {kind.name}"))
            books: list[Books] = []

            def on_commit(commit: StoredCommit, state: Books) -> None:
                nonlocal rows
                books[:] = [state]
                if kind.name != "transfers":
                    return
                for transfer in transfer_records(commit.transfers):
                    if args.timestamp_min <= transfer.timestamp <= timestamp_max:
                        table.writerow([getattr(transfer, column) for column in columns])
                        rows += 1

            verdict = audit(journal, progress=shown_on(bar), on_commit=on_commit)
            if verdict.problem is not None:
                raise _AuditFailed(str(verdict.problem))
            for account in books[0].account_order if books and kind.name == "accounts" else ():
                table.writerow([getattr(account, column) for column in columns])
                rows += 1
    except _AuditFailed as exc:
        partial.unlink(missing_ok=True)
        print(
            f"ledger export: error: the journal fails its audit at {exc}; nothing was exported "
            f"(`ledger audit --store URL` says more)",
            file=sys.stderr,
        )
        return EXIT_FAILED_ITEMS
    except OSError as exc:
        partial.unlink(missing_ok=True)
        print(f"ledger export: error: cannot write {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if args.file != "-":
        partial.replace(args.file)
    summary = {"kind": kind.name, "file": args.file, "rows": rows, "store": journal.description}
    to = sys.stderr if args.file == "-" or not args.json else sys.stdout
    line = f"exported {rows} {kind.name} from {journal.description} to {args.file}"
    print(json.dumps(summary) if args.json else line, file=to)
    return 0
