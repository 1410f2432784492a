"""Store URLs: the ledger's journal, its embedded gateway's store beside it, and the gateway's own reading,
agree on every form (sqlite:///relative, sqlite:////absolute, sqlite:path, a plain path, postgresql://)."""

from __future__ import annotations

import pytest

from gateway import GatewayConfig
from gateway._store import sqlite_path
from ledger.journal import sqlite_file
from ledger.server._serve import gateway_store_url


@pytest.mark.parametrize(("journal", "gateway"), [
    ("sqlite:///data/ledger.sqlite3", "sqlite:///data/gateway.sqlite3"),
    ("sqlite:////tmp/x/journal.sqlite3", "sqlite:////tmp/x/gateway.sqlite3"),
    ("sqlite:data/j.db", "sqlite:///data/gateway.sqlite3"),
    ("data/plain.sqlite3", "sqlite:///data/gateway.sqlite3"),
    ("postgresql://u:p@db:5432/ledger", "postgresql://u:p@db:5432/ledger"),
])  # fmt: skip
def test_the_embedded_gateway_keeps_its_store_beside_the_journal(journal: str, gateway: str) -> None:
    assert gateway_store_url(journal) == gateway
    file = sqlite_file(journal)
    assert sqlite_path(gateway) == (
        str(__import__("pathlib").Path(file).with_name("gateway.sqlite3")) if file else None
    )


@pytest.mark.parametrize("url", ["sqlite://host/x", "sqlite:", "sqlite:///", "ftp://x/y"])
def test_urls_that_name_no_file_are_refused_by_both(url: str) -> None:
    with pytest.raises(ValueError):
        sqlite_file(url)
    with pytest.raises(ValueError, match="store"):
        sqlite_path(url)
    with pytest.raises(ValueError, match="store"):
        GatewayConfig(store=url)
