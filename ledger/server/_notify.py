"""Messages the Wallet service sends to customers (a pay link's one-time code), through a pluggable notifier.

The default, `OutboxNotifier`, writes each message to the `wallet_outbox` table of the ledger's store (the
SQLite file of the embedded journal, or the journal's PostgreSQL database), where a sending worker of the
operator's (an SMS or e-mail gateway) reads the rows with no `sent_at` and marks them, and logs one line naming
the masked recipient: never the text, which carries a one-time code. `LEDGER_NOTIFIER=module:factory` plugs in
another: `factory(store_url)` returns an object with `send(notification)`, called in a worker thread; an
exception from it is logged and the customer asks for the code again.
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol

import psycopg

from ledger.journal import sqlite_file
from ledger.wallet._links import masked_contact

logger = logging.getLogger(__name__)

TABLE: Final = "wallet_outbox"
_SQLITE_TABLE: Final = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, tenant TEXT NOT NULL, kind TEXT NOT NULL,
    channel TEXT NOT NULL, recipient TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL, sent_at TEXT)"""
_POSTGRES_TABLE: Final = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    id BIGSERIAL PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), tenant TEXT NOT NULL,
    kind TEXT NOT NULL, channel TEXT NOT NULL, recipient TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL,
    sent_at TIMESTAMPTZ)"""
_COLUMNS: Final = "tenant, kind, channel, recipient, subject, body"
BUSY_TIMEOUT_SECONDS: Final = 10.0


@dataclass(frozen=True, slots=True)
class Notification:
    tenant: str
    kind: str
    """What it is: pay_link_code."""
    channel: str
    """sms or email."""
    recipient: str
    """A phone number in E.164 form, or an e-mail address."""
    subject: str
    body: str


class Notifier(Protocol):
    def send(self, notification: Notification) -> None: ...

    def close(self) -> None: ...


class OutboxNotifier:
    """Writes notifications to the store's outbox table (or, with no store, keeps them in memory)."""

    def __init__(self, store_url: str | None) -> None:
        self._lock = threading.Lock()
        self._path = sqlite_file(store_url) if store_url else None
        self._dsn = store_url if store_url and self._path is None else None
        self._sqlite: sqlite3.Connection | None = None
        self._postgres: psycopg.Connection[Any] | None = None
        self.kept: list[Notification] = []
        """Without a store: what was sent, newest last (at most 1,000)."""

    def send(self, notification: Notification) -> None:
        with self._lock:
            if self._path is not None:
                self._sqlite_insert(notification)
            elif self._dsn is not None:
                self._postgres_insert(notification)
            else:
                self.kept = [*self.kept[-999:], notification]
        logger.info("%s for tenant %s to %s is in the outbox", notification.kind, notification.tenant,
                    masked_contact(notification.recipient))  # fmt: skip

    def _sqlite_insert(self, notification: Notification) -> None:
        if self._sqlite is None:
            assert self._path is not None
            self._sqlite = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                           check_same_thread=False)  # fmt: skip
            self._sqlite.execute(_SQLITE_TABLE)
        fields = asdict(notification)
        self._sqlite.execute(
            f"INSERT INTO {TABLE} (created_at, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), *(fields[name] for name in _COLUMNS.split(", "))),
        )

    def _postgres_insert(self, notification: Notification) -> None:
        fields = asdict(notification)
        for attempt in (1, 2):  # a connection the server dropped is made anew once
            try:
                if self._postgres is None or self._postgres.closed:
                    assert self._dsn is not None
                    self._postgres = psycopg.connect(self._dsn, autocommit=True, application_name="ledger-outbox")
                    self._postgres.execute(_POSTGRES_TABLE)
                self._postgres.execute(f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
                                       [fields[name] for name in _COLUMNS.split(", ")])  # fmt: skip
                return
            except psycopg.OperationalError:
                self._postgres = None
                if attempt == 2:
                    raise

    def close(self) -> None:
        with self._lock:
            if self._sqlite is not None:
                self._sqlite.close()
            if self._postgres is not None:
                self._postgres.close()
            self._sqlite = self._postgres = None


def read_outbox(store_url: str, recipient: str | None = None) -> list[dict[str, Any]]:
    """The outbox's rows, oldest first (those to `recipient` only, if given): what a sending worker reads."""
    where, params = (" WHERE recipient = ?", [recipient]) if recipient else ("", [])
    path = sqlite_file(store_url)
    if path is not None:
        with sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS) as connection:
            connection.execute(_SQLITE_TABLE)
            cursor = connection.execute(f"SELECT id, created_at, {_COLUMNS}, sent_at FROM {TABLE}{where} ORDER BY id",
                                        params)  # fmt: skip
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    with psycopg.connect(store_url, autocommit=True) as postgres:
        postgres.execute(_POSTGRES_TABLE)
        rows = postgres.execute(
            f"SELECT id, created_at, {_COLUMNS}, sent_at FROM {TABLE}{where.replace('?', '%s')} ORDER BY id", params
        )
        columns = [column.name for column in rows.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in rows.fetchall()]


def load_notifier(spec: str, store_url: str | None) -> Notifier:
    """The notifier `spec` names ("" or "outbox": the default; "module:factory": factory(store_url))."""
    if spec in ("", "outbox"):
        return OutboxNotifier(store_url)
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"LEDGER_NOTIFIER={spec!r}: 'outbox' or 'module:factory' is required")
    factory = getattr(importlib.import_module(module), name)
    notifier: Notifier = factory(store_url)
    return notifier
