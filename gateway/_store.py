"""The gateway's own store: webhook endpoints, their deliveries and each attempt, and bulk grant jobs.

What the gateway keeps is not money: it is where to tell tenants what happened, and how far each endpoint has
been told. It lives in SQLite (a file beside the ledger's, the default) or PostgreSQL (the ledger's database,
tables prefixed `gateway_`), reached with the standard library's sqlite3 or psycopg. Several gateway workers
share it; one of them at a time is the leader (`Leadership`), which reads the event feeds and delivers.

Every method is blocking and thread-safe (one connection behind a lock); the async side calls them through
`asyncio.to_thread`. Times are nanoseconds since the Unix epoch.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS gateway_webhook_endpoints (
        endpoint_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        url TEXT NOT NULL,
        types TEXT NOT NULL,
        description TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        secret TEXT NOT NULL,
        previous_secret TEXT NOT NULL,
        previous_until BIGINT NOT NULL,
        feed_cursor TEXT NOT NULL,
        idempotency_key TEXT,
        request_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        deleted INTEGER NOT NULL,
        UNIQUE (tenant, idempotency_key)
    )""",
    """CREATE TABLE IF NOT EXISTS gateway_webhook_deliveries (
        delivery_id TEXT PRIMARY KEY,
        endpoint_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        last_status_code INTEGER NOT NULL,
        last_error TEXT NOT NULL,
        last_latency_ms INTEGER NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        UNIQUE (endpoint_id, event_id)
    )""",
    "CREATE INDEX IF NOT EXISTS gateway_webhook_deliveries_due ON gateway_webhook_deliveries (status, next_attempt_at)",
    """CREATE TABLE IF NOT EXISTS gateway_webhook_attempts (
        delivery_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        started_at BIGINT NOT NULL,
        status_code INTEGER NOT NULL,
        latency_ms INTEGER NOT NULL,
        error TEXT NOT NULL,
        PRIMARY KEY (delivery_id, attempt)
    )""",
    """CREATE TABLE IF NOT EXISTS gateway_grant_jobs (
        job_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        run_id TEXT NOT NULL,
        status TEXT NOT NULL,
        total INTEGER NOT NULL,
        done INTEGER NOT NULL,
        granted INTEGER NOT NULL,
        granted_amount BIGINT NOT NULL,
        refused TEXT NOT NULL,
        refused_count INTEGER NOT NULL,
        message TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS gateway_wallet_access (
        token_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        tenant TEXT NOT NULL,
        customer TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT NOT NULL
    )""",
)
_ADVISORY_LOCK: Final = 0x6761_7465_7761_7931  # "gatewayl": the leader's PostgreSQL advisory lock
PENDING: Final = "pending"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"


def new_id(prefix: str) -> str:
    """An id that sorts by creation time: the prefix, the time in nanoseconds as 16 hex digits, 8 random ones."""
    return f"{prefix}_{time.time_ns():016x}{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    endpoint_id: str
    tenant: str
    url: str
    types: tuple[str, ...]
    description: str
    enabled: bool
    secret: str
    previous_secret: str
    previous_until: int
    feed_cursor: str
    request_hash: str
    created_at: int
    updated_at: int

    def secrets_at(self, now: int) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the one before it for a day after a
        rotation (receivers move to the new one in that time)."""
        if self.previous_secret and now < self.previous_until:
            return [self.secret, self.previous_secret]
        return [self.secret]


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: str
    endpoint_id: str
    tenant: str
    event_id: str
    event_type: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: int
    last_status_code: int
    last_error: str
    last_latency_ms: int
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    started_at: int
    status_code: int
    latency_ms: int
    error: str


@dataclass(frozen=True, slots=True)
class GrantJob:
    job_id: str
    tenant: str
    run_id: str
    status: str
    total: int
    done: int
    granted: int
    granted_amount: int
    refused: list[dict[str, Any]]
    refused_count: int
    message: str
    created_at: int
    updated_at: int


_ENDPOINT_COLUMNS: Final = (
    "endpoint_id, tenant, url, types, description, enabled, secret, previous_secret, previous_until, feed_cursor, "
    "request_hash, created_at, updated_at"
)
_DELIVERY_COLUMNS: Final = (
    "delivery_id, endpoint_id, tenant, event_id, event_type, payload, status, attempts, next_attempt_at, "
    "last_status_code, last_error, last_latency_ms, created_at, updated_at"
)
_JOB_COLUMNS: Final = (
    "job_id, tenant, run_id, status, total, done, granted, granted_amount, refused, refused_count, message, "
    "created_at, updated_at"
)


def _endpoint(row: Sequence[Any]) -> Endpoint:
    values = list(row)
    values[3] = tuple(json.loads(values[3]))
    values[5] = bool(values[5])
    return Endpoint(*values)


def _job(row: Sequence[Any]) -> GrantJob:
    values = list(row)
    values[8] = json.loads(values[8])
    return GrantJob(*values)


class GatewayStore:
    """The tables above in SQLite or PostgreSQL (`open_store`)."""

    def __init__(self, connection: Any, *, postgres: bool, description: str, lock_path: Path | None) -> None:
        self._connection = connection
        self._postgres = postgres
        self._lock = threading.Lock()
        self.description = description
        self.lock_path = lock_path
        """SQLite: the file whose exclusive lock makes a worker the leader."""
        self.url = ""
        with self._transaction() as cursor:
            for statement in _SCHEMA:
                cursor.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            cursor = self._connection.cursor()
            try:
                if not self._postgres:
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                self._connection.commit()
            except BaseException:
                self._connection.rollback()
                raise
            finally:
                cursor.close()

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self._postgres else statement

    def _all(self, statement: str, *parameters: Any) -> list[Any]:
        with self._transaction() as cursor:
            cursor.execute(self._sql(statement), parameters)
            return list(cursor.fetchall())

    # -- endpoints ---------------------------------------------------------------------------------------------

    def create_endpoint(
        self,
        tenant: str,
        url: str,
        types: Sequence[str],
        description: str,
        feed_cursor: str,
        idempotency_key: str | None,
        request_hash: str,
    ) -> tuple[Endpoint, bool]:
        """A new endpoint, or (with the same Idempotency-Key) the one made before; and whether it was made
        before (then the caller compares `request_hash`)."""  # fmt: skip
        now = time.time_ns()
        with self._transaction() as cursor:
            if idempotency_key is not None:
                query = f"SELECT {_ENDPOINT_COLUMNS} FROM gateway_webhook_endpoints "
                query += "WHERE tenant = ? AND idempotency_key = ?"
                cursor.execute(self._sql(query), (tenant, idempotency_key))
                row = cursor.fetchone()
                if row is not None:
                    return _endpoint(row), True
            endpoint = Endpoint(
                endpoint_id=new_id("we"), tenant=tenant, url=url, types=tuple(types), description=description,
                enabled=True, secret=new_secret(), previous_secret="", previous_until=0, feed_cursor=feed_cursor,
                request_hash=request_hash, created_at=now, updated_at=now,
            )  # fmt: skip
            cursor.execute(
                self._sql(f"INSERT INTO gateway_webhook_endpoints ({_ENDPOINT_COLUMNS}, idempotency_key, deleted) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"),
                (endpoint.endpoint_id, tenant, url, json.dumps(list(types)), description, 1, endpoint.secret, "", 0,
                 feed_cursor, request_hash, now, now, idempotency_key),
            )  # fmt: skip
            return endpoint, False

    def endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        rows = self._all(f"SELECT {_ENDPOINT_COLUMNS} FROM gateway_webhook_endpoints "
                         "WHERE tenant = ? AND endpoint_id = ? AND deleted = 0", tenant, endpoint_id)  # fmt: skip
        return _endpoint(rows[0]) if rows else None

    def endpoints(self, tenant: str, limit: int, starting_after: str) -> list[Endpoint]:
        """The tenant's endpoints, oldest first, a page at a time."""
        rows = self._all(f"SELECT {_ENDPOINT_COLUMNS} FROM gateway_webhook_endpoints WHERE tenant = ? "
                         "AND deleted = 0 AND endpoint_id > ? ORDER BY endpoint_id LIMIT ?",
                         tenant, starting_after, limit)  # fmt: skip
        return [_endpoint(row) for row in rows]

    def enabled_endpoints(self) -> list[Endpoint]:
        """Every tenant's enabled endpoints: what the leader reads feeds for."""
        rows = self._all(f"SELECT {_ENDPOINT_COLUMNS} FROM gateway_webhook_endpoints "
                         "WHERE deleted = 0 AND enabled = 1 ORDER BY endpoint_id")  # fmt: skip
        return [_endpoint(row) for row in rows]

    def update_endpoint(
        self, tenant: str, endpoint_id: str, *, url: str | None, types: Sequence[str] | None,
        description: str | None, enabled: bool | None,
    ) -> Endpoint | None:  # fmt: skip
        changes: dict[str, Any] = {}
        if url is not None:
            changes["url"] = url
        if types is not None:
            changes["types"] = json.dumps(list(types))
        if description is not None:
            changes["description"] = description
        if enabled is not None:
            changes["enabled"] = int(enabled)
        changes["updated_at"] = time.time_ns()
        assignments = ", ".join(f"{column} = ?" for column in changes)
        with self._transaction() as cursor:
            cursor.execute(self._sql(f"UPDATE gateway_webhook_endpoints SET {assignments} "
                                     "WHERE tenant = ? AND endpoint_id = ? AND deleted = 0"),
                           (*changes.values(), tenant, endpoint_id))  # fmt: skip
        return self.endpoint(tenant, endpoint_id)

    def rotate_secret(self, tenant: str, endpoint_id: str, overlap_ns: int) -> Endpoint | None:
        """A new secret; the old one keeps signing beside it for `overlap_ns`."""
        now = time.time_ns()
        with self._transaction() as cursor:
            cursor.execute(self._sql("UPDATE gateway_webhook_endpoints SET previous_secret = secret, secret = ?, "
                                     "previous_until = ?, updated_at = ? "
                                     "WHERE tenant = ? AND endpoint_id = ? AND deleted = 0"),
                           (new_secret(), now + overlap_ns, now, tenant, endpoint_id))  # fmt: skip
        return self.endpoint(tenant, endpoint_id)

    def delete_endpoint(self, tenant: str, endpoint_id: str) -> bool:
        """Stop delivering to it (its pending deliveries end as failed); its delivery log stays readable."""
        now = time.time_ns()
        with self._transaction() as cursor:
            cursor.execute(self._sql("UPDATE gateway_webhook_endpoints SET deleted = 1, enabled = 0, updated_at = ? "
                                     "WHERE tenant = ? AND endpoint_id = ? AND deleted = 0"),
                           (now, tenant, endpoint_id))  # fmt: skip
            deleted = bool(cursor.rowcount)
            cursor.execute(self._sql("UPDATE gateway_webhook_deliveries SET status = ?, last_error = ?, updated_at = ? "
                                     "WHERE endpoint_id = ? AND status = ?"),
                           (FAILED, "the endpoint was deleted", now, endpoint_id, PENDING))  # fmt: skip
        return deleted

    # -- deliveries --------------------------------------------------------------------------------------------

    def add_deliveries(self, batch: Sequence[tuple[str, str, str, str, str, str]]) -> int:
        """Record (endpoint id, tenant, event id, event type, payload, the event's cursor) as due now, and move
        each endpoint's feed cursor past it, in one transaction: an event read again after a restart is not
        recorded twice (one delivery per endpoint and event), and none read is lost. How many were new."""
        now = time.time_ns()
        added = 0
        ignore = "ON CONFLICT (endpoint_id, event_id) DO NOTHING"
        with self._transaction() as cursor:
            for endpoint_id, tenant, event_id, event_type, payload, feed_cursor in batch:
                cursor.execute(
                    self._sql(f"INSERT INTO gateway_webhook_deliveries ({_DELIVERY_COLUMNS}) "
                              f"VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, 0, '', 0, ?, ?) {ignore}"),
                    (new_id("wd"), endpoint_id, tenant, event_id, event_type, payload, PENDING, now, now, now),
                )  # fmt: skip
                added += max(cursor.rowcount, 0)
                cursor.execute(self._sql("UPDATE gateway_webhook_endpoints SET feed_cursor = ? WHERE endpoint_id = ?"),
                               (feed_cursor, endpoint_id))  # fmt: skip
        return added

    def due_deliveries(self, now: int, limit: int, skip: Sequence[str]) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, oldest due first, but those in `skip` (in flight) and
        those of paused endpoints (they wait)."""
        columns = ", ".join(f"d.{column}" for column in _DELIVERY_COLUMNS.split(", "))
        rows = self._all(f"SELECT {columns} FROM gateway_webhook_deliveries d JOIN gateway_webhook_endpoints e "
                         "ON e.endpoint_id = d.endpoint_id WHERE d.status = ? AND d.next_attempt_at <= ? "
                         "AND e.enabled = 1 ORDER BY d.next_attempt_at, d.delivery_id LIMIT ?",
                         PENDING, now, limit + len(skip))  # fmt: skip
        skipped = set(skip)
        return [delivery for delivery in map(lambda row: Delivery(*row), rows) if delivery.delivery_id not in skipped][
            :limit
        ]

    def record_attempt(
        self,
        delivery: Delivery,
        *,
        started_at: int,
        status_code: int,
        latency_ms: int,
        error: str,
        succeeded: bool,
        next_attempt_at: int | None,
    ) -> None:
        """One attempt and its outcome: succeeded, due again at `next_attempt_at`, or (None) given up."""  # fmt: skip
        attempt = delivery.attempts + 1
        status = SUCCEEDED if succeeded else PENDING if next_attempt_at is not None else FAILED
        now = time.time_ns()
        with self._transaction() as cursor:
            cursor.execute(self._sql("INSERT INTO gateway_webhook_attempts VALUES (?, ?, ?, ?, ?, ?)"),
                           (delivery.delivery_id, attempt, started_at, status_code, latency_ms, error))  # fmt: skip
            cursor.execute(
                self._sql("UPDATE gateway_webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, "
                          "last_status_code = ?, last_error = ?, last_latency_ms = ?, updated_at = ? "
                          "WHERE delivery_id = ? AND status = ?"),
                (status, attempt, next_attempt_at or 0, status_code, error, latency_ms, now, delivery.delivery_id,
                 PENDING),
            )  # fmt: skip

    def delivery(self, tenant: str, delivery_id: str) -> Delivery | None:
        rows = self._all(f"SELECT {_DELIVERY_COLUMNS} FROM gateway_webhook_deliveries "
                         "WHERE tenant = ? AND delivery_id = ?", tenant, delivery_id)  # fmt: skip
        return Delivery(*rows[0]) if rows else None

    def deliveries(
        self,
        tenant: str,
        *,
        endpoint_id: str | None,
        status: str | None,
        event_id: str | None,
        limit: int,
        starting_after: str,
    ) -> list[Delivery]:
        """The tenant's deliveries, newest first, a page at a time (after `starting_after`, older ones)."""  # fmt: skip
        conditions, parameters = ["tenant = ?"], [tenant]
        for column, value in (("endpoint_id", endpoint_id), ("status", status), ("event_id", event_id)):
            if value is not None:
                conditions.append(f"{column} = ?")
                parameters.append(value)
        if starting_after:
            conditions.append("delivery_id < ?")
            parameters.append(starting_after)
        where = " AND ".join(conditions)
        query = f"SELECT {_DELIVERY_COLUMNS} FROM gateway_webhook_deliveries "
        query += f"WHERE {where} ORDER BY delivery_id DESC LIMIT ?"
        rows = self._all(query, *parameters, limit)
        return [Delivery(*row) for row in rows]

    def attempts(self, delivery_id: str) -> list[Attempt]:
        rows = self._all("SELECT attempt, started_at, status_code, latency_ms, error FROM gateway_webhook_attempts "
                         "WHERE delivery_id = ? ORDER BY attempt", delivery_id)  # fmt: skip
        return [Attempt(*row) for row in rows]

    def redeliver(self, tenant: str, delivery_id: str) -> Delivery | None:
        """Due again now, whatever its status (the receiver gets the same webhook-id: it may have it already)."""
        now = time.time_ns()
        with self._transaction() as cursor:
            cursor.execute(
                self._sql("UPDATE gateway_webhook_deliveries SET status = ?, next_attempt_at = ?, updated_at = ? "
                          "WHERE tenant = ? AND delivery_id = ? AND endpoint_id IN "
                          "(SELECT endpoint_id FROM gateway_webhook_endpoints WHERE deleted = 0)"),
                (PENDING, now, now, tenant, delivery_id),
            )  # fmt: skip
        return self.delivery(tenant, delivery_id)

    # -- grant jobs --------------------------------------------------------------------------------------------

    def create_job(self, tenant: str, run_id: str, total: int) -> GrantJob:
        now = time.time_ns()
        job = GrantJob(new_id("gj"), tenant, run_id, "running", total, 0, 0, 0, [], 0, "", now, now)
        with self._transaction() as cursor:
            cursor.execute(self._sql(f"INSERT INTO gateway_grant_jobs ({_JOB_COLUMNS}) "
                                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                           (job.job_id, tenant, run_id, job.status, total, 0, 0, 0, "[]", 0, "", now, now))  # fmt: skip
        return job

    def update_job(self, job: GrantJob) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                self._sql("UPDATE gateway_grant_jobs SET status = ?, done = ?, granted = ?, granted_amount = ?, "
                          "refused = ?, refused_count = ?, message = ?, updated_at = ? WHERE job_id = ?"),
                (job.status, job.done, job.granted, job.granted_amount, json.dumps(job.refused), job.refused_count,
                 job.message, time.time_ns(), job.job_id),
            )  # fmt: skip

    def job(self, tenant: str, job_id: str) -> GrantJob | None:
        rows = self._all(f"SELECT {_JOB_COLUMNS} FROM gateway_grant_jobs WHERE tenant = ? AND job_id = ?",
                         tenant, job_id)  # fmt: skip
        return _job(rows[0]) if rows else None

    def interrupt_jobs(self, message: str) -> int:
        """Jobs left running by a gateway that stopped: interrupted, for their runs to be sent again."""
        with self._transaction() as cursor:
            cursor.execute(self._sql("UPDATE gateway_grant_jobs SET status = 'interrupted', message = ?, "
                                     "updated_at = ? WHERE status = 'running'"), (message, time.time_ns()))  # fmt: skip
            count: int = max(cursor.rowcount, 0)
            return count

    # -- the leader --------------------------------------------------------------------------------------------

    # -- the wallet page's sign-in links and sessions (tokens kept as SHA-256 only) ----------------------------

    def create_access(self, kind: str, tenant: str, customer: str, seconds: int) -> tuple[str, int]:
        """A new sign-in link's or session's token and when it expires; forgets those expired a day ago."""
        token = secrets.token_urlsafe(32)
        now = time.time_ns()
        expires_at = now + seconds * 1_000_000_000
        with self._transaction() as cursor:
            cursor.execute(self._sql("DELETE FROM gateway_wallet_access WHERE expires_at < ?"),
                           (now - 86_400 * 1_000_000_000,))  # fmt: skip
            cursor.execute(self._sql("INSERT INTO gateway_wallet_access VALUES (?, ?, ?, ?, ?, 0)"),
                           (_token_hash(token), kind, tenant, customer, expires_at))  # fmt: skip
        return token, expires_at

    def use_signin(self, token: str) -> tuple[str, str] | None:
        """(tenant, customer) of an unused, unexpired sign-in link, used by this call; else None."""
        now = time.time_ns()
        with self._transaction() as cursor:
            cursor.execute(self._sql("UPDATE gateway_wallet_access SET used_at = ? WHERE token_hash = ? AND "
                                     "kind = 'signin' AND used_at = 0 AND expires_at > ? RETURNING tenant, customer"),
                           (now, _token_hash(token), now))  # fmt: skip
            row = cursor.fetchone()
        return (row[0], row[1]) if row else None

    def session(self, token: str) -> tuple[str, str] | None:
        """(tenant, customer) of a live wallet page session."""
        rows = self._all("SELECT tenant, customer FROM gateway_wallet_access WHERE token_hash = ? AND "
                         "kind = 'session' AND expires_at > ?", _token_hash(token), time.time_ns())  # fmt: skip
        return (rows[0][0], rows[0][1]) if rows else None

    def end_session(self, token: str) -> None:
        with self._transaction() as cursor:
            cursor.execute(self._sql("DELETE FROM gateway_wallet_access WHERE token_hash = ?"), (_token_hash(token),))

    def leadership(self) -> Leadership:
        return Leadership(self)


class Leadership:
    """Whether this worker leads: it holds an exclusive lock (a file lock beside the SQLite file, or a session
    advisory lock in PostgreSQL) that the operating system or the database frees when the worker dies."""

    def __init__(self, store: GatewayStore) -> None:
        self._store = store
        self._file: int | None = None
        self._connection: Any = None

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if self._store.lock_path is not None:
            descriptor = os.open(self._store.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(descriptor)
                return False
            self._file = descriptor
            return True
        import psycopg

        connection = psycopg.connect(self._store.url, autocommit=True)
        acquired = connection.execute("SELECT pg_try_advisory_lock(%s)", (_ADVISORY_LOCK,)).fetchone()
        if acquired and acquired[0]:
            self._connection = connection
            return True
        connection.close()
        return False

    @property
    def held(self) -> bool:
        return self._file is not None or self._connection is not None

    def release(self) -> None:
        if self._file is not None:
            os.close(self._file)  # closing the descriptor releases its lock
            self._file = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    """A Standard Webhooks signing secret: "whsec_" and 32 random bytes in base64."""
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def store_description(url: str) -> str:
    """The store's URL without a password, for the log."""
    if url.startswith(("postgresql://", "postgres://")):
        return f"postgresql://{url.split('@', 1)[-1]}" if "@" in url else url
    return url


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite store URL, read as the ledger reads its own (ledger.journal.sqlite_file, which the
    gateway may not import): "sqlite:///path" is the path after the third slash ("sqlite:////tmp/x" is /tmp/x,
    "sqlite:///data/x" relative), "sqlite:path" the path; None for a postgresql:// URL; ValueError else."""
    if url.startswith(("postgresql://", "postgres://")):
        return None
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
    elif url.startswith("sqlite:") and not url.startswith("sqlite://"):
        path = url.removeprefix("sqlite:")
    else:
        raise ValueError(f"store: {url!r} is neither sqlite:///path nor a postgresql:// URL")
    if not path:
        raise ValueError(f"store: {url!r} names no file")
    return path


def open_store(url: str) -> GatewayStore:
    """The store at `url` (`sqlite_path` says which forms)."""
    file = sqlite_path(url)
    if file is None:
        import psycopg

        connection = psycopg.connect(url)
        store = GatewayStore(connection, postgres=True, description=store_description(url), lock_path=None)
        store.url = url
        return store
    path = Path(file)
    path.parent.mkdir(parents=True, exist_ok=True)
    lite = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
    lite.execute("PRAGMA journal_mode=WAL")
    lite.execute("PRAGMA synchronous=FULL")
    store = GatewayStore(lite, postgres=False, description=f"sqlite:///{path}", lock_path=Path(f"{path}.leader"))
    store.url = url
    return store
