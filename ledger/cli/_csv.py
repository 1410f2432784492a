"""`ledger import` and `ledger export`: accounts and transfers as CSV, through ledger.client's bulk calls.

Import reads the whole file first, checking every cell, and sends nothing if
one is bad (the error names its row and column). Then it sends the rows in
requests of 8190 (never cutting a linked chain), one after the other so
they apply in file order (or `--in-flight N` at once, for rows that do not
depend on each other). A row's id is its idempotency key, so running an
import again is safe: rows already in the ledger answer EXISTS and nothing
is booked twice.

Export writes accounts looked up by id (from a file, or a range), or the
transfers of accounts read from their history a page at a time and merged
in time order (a transfer between two of the accounts appears once), or
transfers looked up by id.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
import mmap
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import IO, Any, Final

from tqdm import tqdm

from ledger.client import (
    Account,
    AccountFilter,
    AccountFlags,
    Client,
    Transfer,
    TransferFlags,
)
from ledger.client._batching import request_bounds
from ledger.client._config import IN_FLIGHT_MAX
from ledger.client._records import transfer_outcomes
from ledger.records.limits import ACCOUNT_SIZE, BATCH_EVENTS_MAX, TRANSFER_SIZE

from ._export import add_export_options, export_journal, open_table, table_format
from ._ops import (
    EXIT_FAILED_ITEMS,
    EXIT_USAGE,
    SUCCEEDED,
    Commands,
    add_connection_options,
    add_time_range_options,
    run_with_client,
)
from ._parse import InputError, parse_amount, parse_flags, parse_id, parse_id_range, parse_unsigned

ACCOUNT_COLUMNS: Final = ("id", "ledger", "code", "flags", "user_data_128", "user_data_64", "user_data_32")
"""What an import creates an account from, in the order export writes them."""
ACCOUNT_STATE_COLUMNS: Final = ("debits_pending", "debits_posted", "credits_pending", "credits_posted", "timestamp")
"""What the ledger sets: written by export, ignored by import (so an export imports as it is)."""
TRANSFER_COLUMNS: Final = (
    "id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "pending_id",
    "user_data_128",
    "user_data_64",
    "user_data_32",
    "timeout",
    "ledger",
    "code",
    "flags",
)
TRANSFER_STATE_COLUMNS: Final = ("timestamp",)
REPORT_COLUMNS: Final = ("row", "result")
"""A failures file's own columns, ignored by import so the file can be fixed and imported again."""
ID_COLUMNS: Final = frozenset({"id", "debit_account_id", "credit_account_id", "pending_id", "user_data_128"})

ROWS_PER_ROUND: Final = 8 * BATCH_EVENTS_MAX
"""Rows handed to the client at once: it sends them as requests of 8190, `bulk_in_flight_max` in flight."""
FAILURES_SHOWN_MAX: Final = 20
HISTORY_ROWS_IN_MEMORY: Final = 500_000
"""Transfers an export of many accounts' histories holds at once (a page per account)."""


@dataclass(frozen=True)
class RecordKind:
    name: str
    columns: tuple[str, ...]
    state_columns: tuple[str, ...]
    widths: dict[str, int]
    flags: type[AccountFlags] | type[TransferFlags]
    size: int
    flags_offset: int


ACCOUNTS: Final = RecordKind(
    "accounts",
    ACCOUNT_COLUMNS,
    ACCOUNT_STATE_COLUMNS,
    {"id": 128, "ledger": 32, "code": 16, "flags": 16, "user_data_128": 128, "user_data_64": 64, "user_data_32": 32},
    AccountFlags,
    ACCOUNT_SIZE,
    54,
)
TRANSFERS: Final = RecordKind(
    "transfers",
    TRANSFER_COLUMNS,
    TRANSFER_STATE_COLUMNS,
    {
        "id": 128,
        "debit_account_id": 128,
        "credit_account_id": 128,
        "amount": 64,
        "pending_id": 128,
        "user_data_128": 128,
        "user_data_64": 64,
        "user_data_32": 32,
        "timeout": 32,
        "ledger": 32,
        "code": 16,
        "flags": 16,
    },
    TransferFlags,
    TRANSFER_SIZE,
    110,
)
KINDS: Final = {"accounts": ACCOUNTS, "transfers": TRANSFERS}


def register(commands: Commands) -> None:
    importer = commands.add_parser("import", help="create accounts or transfers from a CSV file (safe to re-run)")
    add_connection_options(importer)
    importer.add_argument("kind", choices=list(KINDS))
    importer.add_argument(
        "file", type=Path, metavar="FILE.csv", help="a header row naming the fields, then one row each"
    )
    importer.add_argument(
        "--failures",
        type=Path,
        metavar="OUT.csv",
        help="write the rows that failed, with their row number and result, to this CSV",
    )
    importer.add_argument(
        "--in-flight",
        type=int,
        default=1,
        metavar="N",
        help="requests of 8190 rows in flight at once (default 1: rows are applied in file order, so a row may "
        "depend on any row before it; more is faster when no row depends on a row in another request)",
    )
    add_progress_option(importer)
    importer.set_defaults(run=_import)

    exporter = commands.add_parser("export", help="write accounts or transfers to a CSV or Parquet file")
    add_connection_options(exporter)
    exporter.add_argument("kind", choices=list(KINDS))
    exporter.add_argument("file", metavar="FILE", help="where to write ('-': standard output)")
    which = exporter.add_mutually_exclusive_group(required=True)
    which.add_argument("--ids", type=Path, metavar="FILE", help="ids to look up, one a line")
    which.add_argument(
        "--id-range", type=parse_id_range, metavar="FIRST:LAST", help="look up every id from FIRST to LAST, inclusive"
    )
    which.add_argument(
        "--account",
        type=parse_id,
        nargs="+",
        action="extend",
        metavar="ID",
        help="transfers: the history of these accounts (--account 1 2 3, or --account 1 --account 2)",
    )
    which.add_argument(
        "--accounts-file", type=Path, metavar="FILE", help="transfers: the histories of these accounts, one id a line"
    )
    add_time_range_options(exporter, "transfers of accounts:")
    add_export_options(exporter, which)
    add_progress_option(exporter)
    exporter.set_defaults(run=_export)


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar with rows/s on stderr (default: when stderr is a terminal)",
    )


def progress(args: argparse.Namespace, total: int | None, description: str) -> tqdm[Any]:
    shown = sys.stderr.isatty() if args.progress is None else args.progress
    return tqdm(
        total=total,
        unit="rows",
        unit_scale=True,
        desc=description,
        file=sys.stderr,
        disable=not shown,
        dynamic_ncols=True,
        mininterval=0.25,
    )


# Import.


@dataclass
class Report:
    kind: RecordKind
    file: Path
    rows: int = 0
    results: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[int, int, str]] = field(default_factory=list)
    """(row, id, result) of every row that did not end OK or EXISTS."""
    seconds: float = 0.0


def _import(args: argparse.Namespace) -> int:
    kind = KINDS[args.kind]
    if not 1 <= args.in_flight <= IN_FLIGHT_MAX:
        print(f"ledger import: error: --in-flight must be between 1 and {IN_FLIGHT_MAX}", file=sys.stderr)
        return EXIT_USAGE
    with tempfile.TemporaryFile() as spool:
        try:
            if args.failures is not None:
                check_writable(args.failures, "--failures")
            header, rows = read_rows(kind, args.file, spool)
            spool.flush()
            with ExitStack() as stack:
                view = memoryview(b"")
                if rows:
                    mapped = stack.enter_context(mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ))
                    view = memoryview(mapped)
                    stack.callback(view.release)
                check_chains(kind, view, rows)
                return run_with_client(args, lambda client: send_rows(args, client, kind, header, view, rows, spool))
        except InputError as exc:
            print(f"ledger import: error: {exc}; nothing was sent", file=sys.stderr)
            return EXIT_USAGE


def read_rows(kind: RecordKind, path: Path, spool: IO[bytes]) -> tuple[list[str], int]:
    """Check every row of the file and write it to `spool` as a packed record; the columns read and the rows."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise InputError(f"{path}: empty, expected a header row naming the fields") from None
        except csv.Error as exc:
            raise InputError(f"{path} header: {exc}") from None
        known = set(kind.columns) | set(kind.state_columns) | set(REPORT_COLUMNS)
        unknown = [name for name in header if name not in known]
        if unknown:
            raise InputError(
                f"{path}: unknown column {', '.join(map(repr, unknown))} ({kind.name} have {', '.join(kind.columns)})"
            )
        duplicated = [name for name, count in Counter(header).items() if count > 1]
        if duplicated:
            raise InputError(f"{path}: column {', '.join(map(repr, duplicated))} appears more than once")
        if "id" not in header:
            raise InputError(f"{path}: no 'id' column: every row needs its id (the idempotency key)")
        used = [(index, name) for index, name in enumerate(header) if name in kind.columns]
        count = 0
        try:
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                count += 1
                if len(row) != len(header):
                    raise InputError(f"{path} row {count}: {len(row)} cells, the header names {len(header)}")
                values = {
                    name: cell_value(kind, name, row[index], f"{path} row {count}, column {name}")
                    for index, name in used
                }
                record = Account(**values) if kind is ACCOUNTS else Transfer(**values)
                spool.write(record.pack())
        except csv.Error as exc:
            raise InputError(f"{path} row {count + 1}: {exc}") from None
    used_columns = [name for _, name in used]
    return [name for name in kind.columns if name in used_columns], count


def cell_value(kind: RecordKind, column: str, text: str, where: str) -> int:
    text = text.strip()
    if not text:
        return 0
    try:
        if column == "flags":
            return parse_flags(kind.flags, text)
        if column in ID_COLUMNS:
            return parse_id(text)
        if column == "amount":
            return parse_amount(text)
        return parse_unsigned(text, kind.widths[column])
    except argparse.ArgumentTypeError as exc:
        raise InputError(f"{where}: {exc}") from None


def send_rows(
    args: argparse.Namespace,
    client: Client,
    kind: RecordKind,
    header: list[str],
    view: memoryview,
    rows: int,
    spool: IO[bytes],
) -> int:
    report = Report(kind, args.file, rows)
    send_all(args, client, kind, view, rows, report)
    print_report(args, report)
    if args.failures is not None:
        write_failures(args.failures, kind, header, report, spool)
    return EXIT_FAILED_ITEMS if report.failures else 0


def _linked(kind: RecordKind, view: memoryview) -> Callable[[int], bool]:
    return lambda index: bool(view[index * kind.size + kind.flags_offset] & 1)


def check_chains(kind: RecordKind, view: memoryview, rows: int) -> None:
    try:
        request_bounds(rows, _linked(kind, view))
    except ValueError as exc:
        raise InputError(f"{kind.name}: {str(exc).replace('events', 'rows (from 0)')}") from None


def send_all(
    args: argparse.Namespace, client: Client, kind: RecordKind, view: memoryview, rows: int, report: Report
) -> None:
    started = time.monotonic()
    with progress(args, rows, f"import {kind.name}") as bar:
        for start, end in request_bounds(rows, _linked(kind, view), ROWS_PER_ROUND):
            records = view[start * kind.size : end * kind.size]
            if kind is TRANSFERS:
                results = client.create_transfers_packed(records, in_flight=args.in_flight)
                names = [o.result.name for o in transfer_outcomes(results)]
                ids = [Transfer.unpack(records, i * kind.size).id for i in range(end - start)]
            else:
                accounts = [Account.unpack(records, i * kind.size) for i in range(end - start)]
                names = [o.result.name for o in client.create_accounts(accounts, in_flight=args.in_flight)]
                ids = [a.id for a in accounts]
            report.results.update(names)
            report.failures.extend(
                (start + i + 1, ids[i], name) for i, name in enumerate(names) if name not in SUCCEEDED
            )
            bar.update(end - start)
    report.seconds = time.monotonic() - started


def print_report(args: argparse.Namespace, report: Report) -> None:
    if args.json:
        document = {
            "kind": report.kind.name,
            "file": str(report.file),
            "rows": report.rows,
            "seconds": round(report.seconds, 3),
            "results": dict(report.results.most_common()),
            "failures": [{"row": row, "id": id_, "result": name} for row, id_, name in report.failures],
        }
        print(json.dumps(document))
        return
    rate = f" ({report.rows / report.seconds:,.0f} rows/s)" if report.seconds > 0 else ""
    print(f"imported {report.file}: {report.rows} rows of {report.kind.name} in {report.seconds:.2f} s{rate}")
    for name, count in report.results.most_common():
        print(f"  {name:<40} {count}")
    if report.failures:
        print(f"failed rows ({len(report.failures)}; rows count from 1 after the header):")
        for row, id_, name in report.failures[:FAILURES_SHOWN_MAX]:
            print(f"  row {row}  id {id_}  {name}")
        if len(report.failures) > FAILURES_SHOWN_MAX:
            print(f"  … and {len(report.failures) - FAILURES_SHOWN_MAX} more (--failures OUT.csv writes them all)")


def write_failures(path: Path, kind: RecordKind, header: list[str], report: Report, spool: IO[bytes]) -> None:
    """The failed rows as the file had them (its columns, as integers), with their row number and result."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([*REPORT_COLUMNS, *header])
        for row, _, name in report.failures:
            spool.seek((row - 1) * kind.size)
            record = spool.read(kind.size)
            values = Account.unpack(record) if kind is ACCOUNTS else Transfer.unpack(record)
            writer.writerow([row, name, *(getattr(values, column) for column in header)])


# Export.


def _export(args: argparse.Namespace) -> int:
    kind = KINDS[args.kind]
    if (args.account or args.accounts_file) and kind is ACCOUNTS:
        raise InputError("--account and --accounts-file select transfers; accounts take --ids or --id-range")
    args.format = table_format(args.format, args.file)
    if args.file != "-":
        check_writable(Path(args.file), "FILE")
    ids = read_ids(args.ids) if args.ids else None
    accounts = args.account or (read_ids(args.accounts_file) if args.accounts_file else None)
    if args.store is not None:
        return export_journal(args, kind, progress)

    def work(client: Client) -> int:
        # A file is written beside its place and moved there when complete: a failed export leaves none.
        partial = Path(f"{args.file}.partial")
        try:
            rows = write_records(args, client, kind, partial, accounts, ids)
            if args.file != "-":
                partial.replace(args.file)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise InputError(f"cannot write {args.file}: {exc.strerror or exc}; no file was left") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        summary = {"kind": kind.name, "file": args.file, "rows": rows}
        to = sys.stderr if args.file == "-" or not args.json else sys.stdout
        print(json.dumps(summary) if args.json else f"exported {rows} {kind.name} to {args.file}", file=to)
        return 0

    return run_with_client(args, work)


def write_records(args: argparse.Namespace, client: Client, kind: RecordKind, partial: Path,
                  accounts: list[int] | None, ids: list[int] | None) -> int:  # fmt: skip
    columns = [*kind.columns, *kind.state_columns]
    with ExitStack() as stack:
        writer = stack.enter_context(open_table(args.file, partial, kind, columns, args.format))
        bar = stack.enter_context(progress(args, None, f"export {kind.name}"))
        if accounts is not None:
            records: Iterable[Any] = history(client, accounts, args.timestamp_min, args.timestamp_max)
        else:
            records = looked_up(client, kind, ids if ids is not None else id_range(*args.id_range))
        rows = 0
        for record in records:
            writer.writerow([getattr(record, column) for column in columns])
            rows += 1
            bar.update(1)
    return rows


def check_writable(path: Path, argument: str) -> None:
    """Refuse, before anything is sent, a file whose directory is missing (or is a directory itself)."""
    directory = path.parent
    if not directory.is_dir():
        raise InputError(f"argument {argument}: {str(path)!r}: no directory {str(directory)!r} to write it in")
    if path.is_dir():
        raise InputError(f"argument {argument}: {str(path)!r} is a directory")


def read_ids(path: Path) -> list[int]:
    """One id a line (integer, 0x… or UUID); blank lines and lines starting with '#' are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    ids = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            ids.append(parse_id(text))
        except argparse.ArgumentTypeError as exc:
            raise InputError(f"{path} line {number}: {exc}") from None
    return ids


def id_range(first: int, last: int) -> Iterator[int]:
    yield from range(first, last + 1)


def looked_up(client: Client, kind: RecordKind, ids: Iterable[int]) -> Iterator[Account | Transfer]:
    """The records found among `ids`, in their order, looked up a round of requests at a time."""
    chunk: list[int] = []
    for value in ids:
        chunk.append(value)
        if len(chunk) == ROWS_PER_ROUND:
            yield from _lookup(client, kind, chunk)
            chunk = []
    if chunk:
        yield from _lookup(client, kind, chunk)


def _lookup(client: Client, kind: RecordKind, ids: list[int]) -> list[Any]:
    return list(client.lookup_accounts(ids) if kind is ACCOUNTS else client.lookup_transfers(ids))


def history(client: Client, accounts: list[int], timestamp_min: int, timestamp_max: int) -> Iterator[Transfer]:
    """The transfers of every account in time order, each once (a transfer between two of them is in both)."""
    page = max(100, min(BATCH_EVENTS_MAX, HISTORY_ROWS_IN_MEMORY // max(len(accounts), 1)))
    streams = [
        client.iter_account_transfers(
            AccountFilter(account_id=account, timestamp_min=timestamp_min, timestamp_max=timestamp_max, limit=page)
        )
        for account in dict.fromkeys(accounts)
    ]
    merged = heapq.merge(*streams, key=lambda t: t.timestamp)
    for _, same in groupby(merged, key=lambda t: t.timestamp):
        yield next(same)  # timestamps are unique: the same transfer seen from both of its accounts
