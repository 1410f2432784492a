"""The journal's tables, defined once for both stores and rendered in each one's SQL.

Both stores hold the same tables with the same columns in the same order, and
a schema version means the same columns in either. `TABLES` is what a store
holds now; each table and column says the version that added it, and the
migrations are derived from that: a version creates the tables it added with
the columns they had then, adds the columns it added to older tables, and
runs what only one store needs (`EXTRA`). A column is one of three kinds (a
signed 64-bit integer, a 32-bit one, bytes) that each dialect spells its own
way, and what only one store has is said once per dialect: PostgreSQL stores
blobs EXTERNAL (a substring reads only the chunks it needs), SQLite makes a
table keyed by several columns WITHOUT ROWID.

The versions:

1. the tables;
2. `transfer_blocks`: a commit's transfers in LZ4 blocks (_blocks.py);
3. `domain` in commits and checkpoints;
4. a checkpoint's creation time as `created_at_ns` in both stores (PostgreSQL's
   first version stored a timestamptz `created_at`, SQLite's these nanoseconds).
   It is also what keeps a ledger from before SQLite stored blocks off an
   upgraded SQLite journal: it refuses version 4 rather than read blocks as
   raw records.
5. `ledger_checkpoint_parts`: a large checkpoint's blobs in parts, each
   written in a transaction of its own (SQLite has one writer at a time, and
   a checkpoint of tens of MiB in one transaction held the journal's commits
   back for seconds). PostgreSQL, whose writers do not wait on each other,
   writes its checkpoints whole and has the table empty.
6. `ledger_transfer_ids`: every transfer's id in creation order, in segments
   saved as checkpoints are, so that recovery indexes the transfers up to a
   checkpoint from their ids (16 bytes each) instead of reading every record.

`ledger_schema` holds a row per version applied, and a migration runs if its
version is not there: SQLite journals went from 1 to 3 while only PostgreSQL
stored blocks, and get version 2 when next opened. A store whose highest
version is past SCHEMA_VERSION was written by a newer ledger and is refused.

Rows written before a store reached version 2 are not rewritten: their
`transfer_blocks` is NULL and `transfers` holds the raw records, which both
stores read as such. PostgreSQL has done this since its version 2; SQLite
does the same, so an upgrade in place is instant at any journal size and the
rows already written keep the bytes an audit verified.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Final

from ._store import BALANCES_TABLE, HISTORY_COLUMNS, TRANSFERS_TABLE, StoreUnavailable


class Kind(enum.Enum):
    INT64 = enum.auto()
    INT32 = enum.auto()
    BYTES = enum.auto()


@dataclass(frozen=True, slots=True, kw_only=True)
class Dialect:
    name: str
    types: Mapping[Kind, str]
    empty_bytes: str
    """A literal of no bytes, for the default of a column added to a table that holds rows."""
    external_storage: bool
    """PostgreSQL: blob columns marked `external` are stored uncompressed."""
    without_rowid: bool
    """SQLite: a table keyed by several columns is stored in its key's order, with no rowid beside it."""


POSTGRESQL: Final = Dialect(
    name="postgresql",
    types={Kind.INT64: "bigint", Kind.INT32: "integer", Kind.BYTES: "bytea"},
    empty_bytes="''::bytea",
    external_storage=True,
    without_rowid=False,
)
SQLITE: Final = Dialect(
    name="sqlite",
    types={Kind.INT64: "INTEGER", Kind.INT32: "INTEGER", Kind.BYTES: "BLOB"},
    empty_bytes="x''",
    external_storage=False,
    without_rowid=True,
)
DIALECTS: Final = (POSTGRESQL, SQLITE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    name: str
    kind: Kind
    since: int = 1
    nullable: bool = False
    default_empty: bool = False
    external: bool = False
    primary_key: bool = False
    check: str = ""
    first: Mapping[str, str] = field(default_factory=dict)
    """A dialect's definition of this column as its table was created, where it differed (EXTRA made it alike)."""

    def render(self, dialect: Dialect) -> str:
        parts = [self.name, dialect.types[self.kind]]
        if self.primary_key:
            parts.append("PRIMARY KEY")  # SQLite: an INTEGER PRIMARY KEY is the rowid (blobopen's row)
        elif not self.nullable:
            parts.append("NOT NULL")
        if self.default_empty:
            parts.append(f"DEFAULT {dialect.empty_bytes}")
        if self.check:
            parts.append(f"CHECK ({self.check})")
        return " ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    """A key of several columns (one column's key is on the column)."""
    since: int = 1

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def create(self, dialect: Dialect, *, if_not_exists: bool = False) -> tuple[str, ...]:
        """The statements that create the table as it was in its first version."""
        first = [c for c in self.columns if c.since == self.since]
        lines = [c.first.get(dialect.name) or c.render(dialect) for c in first]
        if self.primary_key:
            lines.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        exists = "IF NOT EXISTS " if if_not_exists else ""
        rowid = " WITHOUT ROWID" if self.primary_key and dialect.without_rowid else ""
        statements = [f"CREATE TABLE {exists}{self.name} (\n    " + ",\n    ".join(lines) + f"\n){rowid}"]
        external = [c.name for c in first if c.external]
        if dialect.external_storage and external:
            clauses = ", ".join(f"ALTER COLUMN {name} SET STORAGE EXTERNAL" for name in external)
            statements.append(f"ALTER TABLE {self.name} {clauses}")
        return tuple(statements)

    def add(self, column: Column, dialect: Dialect) -> tuple[str, ...]:
        statements = [f"ALTER TABLE {self.name} ADD COLUMN {column.render(dialect)}"]
        if dialect.external_storage and column.external:
            statements.append(f"ALTER TABLE {self.name} ALTER COLUMN {column.name} SET STORAGE EXTERNAL")
        return tuple(statements)


@dataclass(frozen=True, slots=True, kw_only=True)
class Index:
    name: str
    table: str
    columns: tuple[str, ...]
    since: int = 1

    def create(self) -> str:
        return f"CREATE INDEX {self.name} ON {self.table} ({', '.join(self.columns)})"


SCHEMA = Table(name="ledger_schema", columns=(Column(name="version", kind=Kind.INT32, since=0),), since=0)
"""The versions applied, a row each; created before the others are read (version 0: not a migration)."""

JOURNAL = Table(
    name="ledger_journal",
    columns=(
        Column(name="seq", kind=Kind.INT64, primary_key=True),
        Column(name="timestamp_last", kind=Kind.INT64),
        Column(name="accounts_first", kind=Kind.INT64),
        Column(name="transfers_first", kind=Kind.INT64),
        Column(name="transfers_count", kind=Kind.INT64),
        Column(name="checksum", kind=Kind.INT64),
        # Not compressed by PostgreSQL: a history lookup reads one block of a commit without the rest.
        Column(name="accounts", kind=Kind.BYTES, external=True),
        Column(name="transfers", kind=Kind.BYTES, external=True),
        Column(name="expired", kind=Kind.BYTES, external=True),
        Column(name="balances", kind=Kind.BYTES, external=True),
        # Where each LZ4 block of `transfers` ends (_blocks.py); NULL in rows written before: raw records.
        Column(name="transfer_blocks", kind=Kind.BYTES, since=2, nullable=True),
        # Domain records (opaque to the journal). A constant default adds the column without rewriting the
        # table; rows written before hold none.
        Column(name="domain", kind=Kind.BYTES, since=3, default_empty=True, external=True),
    ),
)
CHECKPOINTS = Table(
    name="ledger_checkpoints",
    columns=(
        Column(name="seq", kind=Kind.INT64, primary_key=True),
        Column(name="timestamp_last", kind=Kind.INT64),
        Column(name="checksum", kind=Kind.INT64),
        Column(name="accounts", kind=Kind.BYTES, external=True),
        Column(name="transfer_status", kind=Kind.BYTES, external=True),
        Column(
            name="created_at_ns",
            kind=Kind.INT64,
            first={POSTGRESQL.name: "created_at timestamptz NOT NULL DEFAULT now()"},
        ),
        Column(name="domain", kind=Kind.BYTES, since=3, default_empty=True, external=True),
    ),
)
CHECKPOINT_PARTS = Table(
    name="ledger_checkpoint_parts",
    columns=(
        Column(name="seq", kind=Kind.INT64, since=5),
        Column(name="part", kind=Kind.INT32, since=5),
        # CHECKPOINT_PART_BYTES at most; a table keyed by rowid, which SQLite keeps large blobs in best.
        Column(name="data", kind=Kind.BYTES, since=5, external=True),
    ),
    since=5,
)
"""Parts of checkpoints saved in parts (_store.checkpoint_parts): the checkpoint's own row holds its blobs
empty, and the parts of its seq, in part order, hold them."""
TRANSFER_IDS = Table(
    name="ledger_transfer_ids",
    columns=(
        Column(name="transfers_first", kind=Kind.INT64, since=6, primary_key=True),
        Column(name="transfers_count", kind=Kind.INT64, since=6),
        Column(name="checksum", kind=Kind.INT64, since=6),
        Column(name="ids", kind=Kind.BYTES, since=6, external=True),
    ),
    since=6,
)
"""The ids of transfers [transfers_first, transfers_first + transfers_count), 16 bytes each in creation order
(_store.transfer_ids_checksum): segments from ordinal 0 on, none overlapping, kept for good."""
HISTORY = tuple(
    Table(
        name=name,
        columns=(
            Column(name="account_lo", kind=Kind.INT64),
            Column(name="account_hi", kind=Kind.INT64),
            Column(name="timestamp_first", kind=Kind.INT64),
            Column(name="timestamp_last", kind=Kind.INT64),
            Column(name="entries_count", kind=Kind.INT32),
            Column(name="entries", kind=Kind.BYTES),
        ),
        primary_key=("account_lo", "account_hi", "timestamp_first"),
    )
    for name in (TRANSFERS_TABLE, BALANCES_TABLE)
)
HISTORY_POSITION = Table(
    name="ledger_history_position",
    columns=(
        Column(name="id", kind=Kind.INT32, primary_key=True, check="id = 1"),
        Column(name="seq", kind=Kind.INT64),
    ),
)
TABLES: Final = (SCHEMA, JOURNAL, CHECKPOINTS, CHECKPOINT_PARTS, TRANSFER_IDS, *HISTORY, HISTORY_POSITION)
INDEXES: Final = (
    Index(name="ledger_journal_transfers_first", table=JOURNAL.name, columns=("transfers_first", "transfers_count")),
    Index(name="ledger_checkpoint_parts_seq", table=CHECKPOINT_PARTS.name, columns=("seq", "part"), since=5),
)
EXTRA: Final[Mapping[tuple[int, str], tuple[str, ...]]] = {
    # Nanoseconds since the epoch, as SQLite stored them from the start; the table holds two rows.
    (4, POSTGRESQL.name): (
        "ALTER TABLE ledger_checkpoints ALTER COLUMN created_at DROP DEFAULT, "
        "ALTER COLUMN created_at TYPE bigint USING (extract(epoch FROM created_at) * 1000000000)::bigint",
        "ALTER TABLE ledger_checkpoints RENAME COLUMN created_at TO created_at_ns",
    ),
}
SCHEMA_VERSION: Final = 6
assert all(c.since <= SCHEMA_VERSION for t in TABLES for c in t.columns) and max(EXTRA)[0] <= SCHEMA_VERSION

COMMIT_COLUMNS: Final = (
    "seq, timestamp_last, accounts_first, transfers_first, transfers_count, checksum, "
    "accounts, transfers, transfer_blocks, expired, balances, domain"
)
"""A commit row's columns in the order both stores write and read them."""
assert sorted(COMMIT_COLUMNS.split(", ")) == sorted(JOURNAL.column_names)
assert HISTORY_COLUMNS.split(", ") == list(HISTORY[0].column_names)


def migrations(dialect: Dialect) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """Each version's statements in this dialect, oldest first."""
    out = []
    for version in range(1, SCHEMA_VERSION + 1):
        statements: list[str] = []
        for table in TABLES:
            if table.since == version:
                statements += table.create(dialect)
            elif table.since < version:
                for column in table.columns:
                    if column.since == version:
                        statements += table.add(column, dialect)
        statements += [index.create() for index in INDEXES if index.since == version]
        statements += EXTRA.get((version, dialect.name), ())
        out.append((version, tuple(statements)))
    return tuple(out)


def pending(dialect: Dialect, applied: Collection[int], description: str) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """The migrations not applied yet, given the versions `ledger_schema` holds; StoreUnavailable for a newer
    store."""
    newest = max(applied, default=0)
    if newest > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"{description}: schema version {newest} is newer than this ledger knows ({SCHEMA_VERSION})"
        )
    return tuple((version, statements) for version, statements in migrations(dialect) if version not in applied)
