"""The key table, in the same database as the journal (`LedgerConfig.store_url`).

`ledger_api_keys` holds one row per key ever created; revoking a key sets
its `revoked_at` and keeps the row, so "a key was ever created" stays true
and revoking the last key never opens the server. The table is created if
it is missing, by whoever opens the store first (server or CLI), and a table
made by an earlier version is brought up to date in place: the column
`expires_at` added, the CHECK on `role` widened to the roles of today (on
SQLite, which cannot alter a constraint, by copying the table). The CLI
may run while the server does: SQLite is in WAL mode with a busy timeout,
and the journal's own lock is on a separate lock file (SQLite) or an
advisory lock (PostgreSQL) that this table does not touch.
"""

from __future__ import annotations

import abc
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.request import pathname2url

import psycopg
from psycopg import sql

from ledger.journal import PostgresStore, SqliteStore, open_store

from ._keys import (
    ApiKey,
    Role,
    check_expiry,
    check_key_id,
    check_ledgers,
    check_name,
    check_role,
    check_tenant,
    format_ledgers,
    format_token,
    hash_secret,
    new_secret,
    parse_ledgers,
)

TABLE: Final = "ledger_api_keys"
COLUMNS: Final = "key_id, name, tenant, role, ledgers, secret_sha256, created_at, revoked_at, expires_at"
BUSY_TIMEOUT_SECONDS: Final = 10.0
CONNECT_TIMEOUT_SECONDS: Final = 5
ADVISORY_LOCK_CLASS: Final = 0x4C4B_4559  # "LKEY"; the second key is the schema's hash, as for the journal
ROLE_CHECK: Final = f"{TABLE}_role_check"
ROLE_CHECK_SQL: Final = "CHECK (role IN ({}))".format(", ".join(f"'{role.value}'" for role in Role))
"""The constraint on the role column: the roles this version knows (their values are lowercase letters)."""


def admits_every_role(definition: str) -> bool:
    """Whether a table's or a constraint's SQL lets the role column hold every role of today."""
    return all(f"'{role.value}'" in definition for role in Role)


class KeyStoreError(Exception):
    """The key table cannot do what was asked."""


class KeyStoreUnavailable(KeyStoreError):
    """The database holding the key table cannot be reached or did not answer."""


class KeyNotFound(KeyStoreError):
    pass


class KeyStore(abc.ABC):
    """The key table of one ledger store; safe to use from several threads (calls are serialised)."""

    description: str

    def __init__(self) -> None:
        self._lock = threading.Lock()

    # -- what a store provides ------------------------------------------------------------------

    @abc.abstractmethod
    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read; statements use %s placeholders."""

    @abc.abstractmethod
    def _update(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run one write in its own transaction; the number of rows it changed."""

    @abc.abstractmethod
    def _time_to_db(self, moment: datetime) -> Any:
        """A UTC time as the store keeps it."""

    @abc.abstractmethod
    def close(self) -> None: ...

    # -- the table ------------------------------------------------------------------------------

    def create_key(
        self,
        *,
        tenant: str,
        role: str,
        ledgers: Iterable[int] = (),
        name: str = "",
        expires_at: datetime | None = None,
        now: datetime | None = None,
    ) -> tuple[ApiKey, str]:
        """Store a new key (working until `expires_at`, if given); returns it with its token, which exists only
        in this return value."""
        checked_role = check_role(role)
        bound = check_ledgers(checked_role, ledgers)
        created_at = (now or datetime.now(UTC)).astimezone(UTC)
        expiry = check_expiry(expires_at, created_at)
        key_id, secret = new_secret()
        key = ApiKey(
            key_id=key_id,
            name=check_name(name),
            tenant=check_tenant(tenant),
            role=checked_role,
            ledgers=bound,
            secret_sha256=hash_secret(key_id, secret),
            created_at=created_at,
            expires_at=expiry,
        )
        self._update(
            f"INSERT INTO {TABLE} ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, %s)",
            (key.key_id, key.name, key.tenant, key.role.value, format_ledgers(key.ledgers), key.secret_sha256,
             self._time_to_db(key.created_at), None if expiry is None else self._time_to_db(expiry)),
        )  # fmt: skip
        return key, format_token(key_id, secret)

    def all_keys(self) -> list[ApiKey]:
        """Every key ever created, revoked ones included, oldest first."""
        return [_key(row) for row in self._query(f"SELECT {COLUMNS} FROM {TABLE} ORDER BY created_at, key_id")]

    def find(self, key_id: str) -> ApiKey | None:
        rows = self._query(f"SELECT {COLUMNS} FROM {TABLE} WHERE key_id = %s", (key_id,))
        return _key(rows[0]) if rows else None

    def revoke(self, key_id: str, now: datetime | None = None) -> tuple[ApiKey, bool]:
        """Revoke a key for good; returns it and whether this call revoked it (False: it already was)."""
        check_key_id(key_id)
        moment = self._time_to_db((now or datetime.now(UTC)).astimezone(UTC))
        changed = self._update(
            f"UPDATE {TABLE} SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL", (moment, key_id)
        )
        key = self.find(key_id)
        if key is None:
            raise KeyNotFound(f"no key with id {key_id} in {self.description}")
        return key, changed > 0


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, name, tenant, role, ledgers, secret_sha256, created_at, revoked_at, expires_at = row
    return ApiKey(
        key_id=key_id,
        name=name,
        tenant=tenant,
        role=check_role(role),
        ledgers=parse_ledgers(ledgers),
        secret_sha256=bytes(secret_sha256),
        created_at=_time_from_db(created_at),
        revoked_at=None if revoked_at is None else _time_from_db(revoked_at),
        expires_at=None if expires_at is None else _time_from_db(expires_at),
    )


def _time_from_db(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC)


_SQLITE_COLUMNS: Final = f"""
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL {ROLE_CHECK_SQL},
    ledgers TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    expires_at TEXT
"""


class SqliteKeyStore(KeyStore):
    """The key table in the SQLite file of the embedded journal; times as ISO 8601 text in UTC."""

    def __init__(self, path: Path, *, create: bool) -> None:
        super().__init__()
        self.path = path
        self.description = f"sqlite:{path}"
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
                target = str(path)
            else:
                # Looking at keys must not leave an empty database behind a mistyped path.
                target = f"file:{pathname2url(str(path.absolute()))}?mode=rw"
            self._connection = sqlite3.connect(
                target, uri=not create, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise KeyStoreUnavailable(f"cannot open the ledger store {path}: {exc}") from exc
        try:
            self._connection.execute("PRAGMA journal_mode = WAL")
            self._connection.execute("PRAGMA synchronous = FULL")
            self._connection.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({_SQLITE_COLUMNS})")
            columns = {row[1] for row in self._connection.execute(f"PRAGMA table_info({TABLE})")}
            if "expires_at" not in columns:  # a table made before keys could expire
                self._connection.execute(f"ALTER TABLE {TABLE} ADD COLUMN expires_at TEXT")
            if not admits_every_role(self._table_sql()):
                self._widen_role_check()
        except sqlite3.Error as exc:
            self._connection.close()
            raise KeyStoreUnavailable(f"{self.description}: cannot prepare the key table: {exc}") from exc

    def _table_sql(self) -> str:
        row = self._connection.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,))
        return str(row.fetchone()[0])

    def _widen_role_check(self) -> None:
        """A table made when there were fewer roles: copied into one whose CHECK takes today's, in one
        transaction (SQLite cannot alter a constraint; the table has no index, trigger or view to carry)."""
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            if not admits_every_role(self._table_sql()):  # or another process did it first
                self._connection.execute(f"CREATE TABLE {TABLE}_new ({_SQLITE_COLUMNS})")
                self._connection.execute(f"INSERT INTO {TABLE}_new ({COLUMNS}) SELECT {COLUMNS} FROM {TABLE}")
                self._connection.execute(f"DROP TABLE {TABLE}")
                self._connection.execute(f"ALTER TABLE {TABLE}_new RENAME TO {TABLE}")
            self._connection.execute("COMMIT")
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection.execute(statement.replace("%s", "?"), params).fetchall()
            except sqlite3.Error as exc:
                raise KeyStoreUnavailable(f"{self.description}: reading the key table failed: {exc}") from exc

    def _update(self, statement: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            try:
                return self._connection.execute(statement.replace("%s", "?"), params).rowcount
            except sqlite3.Error as exc:
                raise KeyStoreUnavailable(f"{self.description}: writing the key table failed: {exc}") from exc

    def _time_to_db(self, moment: datetime) -> str:
        # Always with microseconds, so that the text sorts as the times do.
        return moment.isoformat(timespec="microseconds")

    def close(self) -> None:
        with self._lock:
            self._connection.close()


_POSTGRES_COLUMNS: Final = f"""
    key_id text PRIMARY KEY,
    name text NOT NULL,
    tenant text NOT NULL,
    role text NOT NULL CONSTRAINT {ROLE_CHECK} {ROLE_CHECK_SQL},
    ledgers text NOT NULL,
    secret_sha256 bytea NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz,
    expires_at timestamptz
"""


def _widen_role_check(connection: psycopg.Connection[Any]) -> None:
    """A table made when there were fewer roles takes today's: its CHECK on role is replaced (in the caller's
    transaction, which holds the key table's advisory lock)."""
    checks = connection.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = to_regclass(%s) AND contype = 'c'",
        (TABLE,),
    ).fetchall()
    on_role = [(name, definition) for name, definition in checks if "role" in definition]
    if on_role and all(admits_every_role(definition) for _, definition in on_role):
        return  # (never narrowed: a table of a later version may take more roles)
    for name, _ in on_role:
        connection.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(TABLE), sql.Identifier(name))
        )
    connection.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {ROLE_CHECK} {ROLE_CHECK_SQL}")


class PostgresKeyStore(KeyStore):
    """The key table in the journal's PostgreSQL schema; one connection, made anew after a failure."""

    def __init__(self, dsn: str, description: str) -> None:
        super().__init__()
        self._dsn = dsn
        self.description = description
        self._connection: psycopg.Connection[Any] | None = None
        with self._lock:
            connection = self._connect()
            try:
                with connection.transaction():
                    connection.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", (ADVISORY_LOCK_CLASS,)
                    )
                    connection.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({_POSTGRES_COLUMNS})")
                    # A table made before keys could expire.
                    connection.execute(f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS expires_at timestamptz")
                    _widen_role_check(connection)
            except psycopg.Error as exc:
                self._drop()
                raise KeyStoreUnavailable(f"{description}: cannot prepare the key table: {exc}") from exc

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            try:
                self._connection = psycopg.connect(
                    self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name="ledger-keys"
                )
            except psycopg.Error as exc:
                raise KeyStoreUnavailable(f"cannot connect to PostgreSQL at {self.description}: {exc}") from exc
        return self._connection

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connect().execute(statement, params).fetchall()
            except psycopg.Error as exc:
                self._drop()
                raise KeyStoreUnavailable(f"{self.description}: reading the key table failed: {exc}") from exc

    def _update(self, statement: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            try:
                return self._connect().execute(statement, params).rowcount
            except psycopg.Error as exc:
                self._drop()
                raise KeyStoreUnavailable(f"{self.description}: writing the key table failed: {exc}") from exc

    def _time_to_db(self, moment: datetime) -> datetime:
        return moment

    def close(self) -> None:
        with self._lock:
            self._drop()


def open_key_store(url: str, *, create: bool = True) -> KeyStore:
    """The key table of the ledger store at `url` (read as `ledger serve` reads it), created if missing.

    With create=False a SQLite file that does not exist is an error instead of a new, empty store.
    """
    journal = open_store(url)  # only parses the URL: nothing is opened until connect()
    if isinstance(journal, PostgresStore):
        return PostgresKeyStore(journal.dsn, journal.description)
    if isinstance(journal, SqliteStore):
        if not create and not journal.path.exists():
            raise KeyStoreError(f"no ledger store at {journal.path} (check --store or LEDGER_DATA_DIR)")
        return SqliteKeyStore(journal.path, create=create)
    raise KeyStoreError(f"store URL {url!r}: keys live in PostgreSQL or SQLite stores only")
