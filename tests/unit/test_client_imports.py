"""The client and the generated stubs load without the engine: a service built on them (the wallet, the HTTP
gateway) must start on a host where the native build is missing, and must not drag in the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: the native extensions cannot be imported there (as on a build without them),
# and LEDGER_ENGINE=cython, which would fail at once if anything selected an engine.
PROBE = r"""
import importlib.abc, json, sys

NATIVE = {"ledger.engine._c", "ledger.journal._postings_c", "ledger.server._wire_c", "ledger.wallet._payments_c"}

class NoNativeBuild(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in NATIVE:
            raise ImportError(f"{name} is not built")
        return None

sys.meta_path.insert(0, NoNativeBuild())

import ledger.client
from ledger.client import Account, AsyncClient, Client, ClientConfig, Transfer
from ledger.client._records import pack_transfers
from ledger.records.layout import TRANSFER_AMOUNT_OFFSET
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2

records = pack_transfers([Transfer(id=1, debit_account_id=2, credit_account_id=3, amount=250, ledger=7, code=1)])
amount = int.from_bytes(records[TRANSFER_AMOUNT_OFFSET : TRANSFER_AMOUNT_OFFSET + 8], "little")
print(json.dumps({"modules": sorted(m for m in sys.modules if m.startswith("ledger")), "amount": amount}))
"""

FORBIDDEN = ("ledger.engine", "ledger.journal", "ledger.core", "ledger.server", "ledger.auth", "ledger.cli")


def test_the_client_and_the_stubs_load_no_engine_journal_core_or_server() -> None:
    environment = {**os.environ, "LEDGER_ENGINE": "cython", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["amount"] == 250
    loaded = [name for name in found["modules"] if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)]
    assert loaded == [], f"importing the client loaded {loaded}"
    assert "ledger.records.layout" in found["modules"]


def test_the_gateway_loads_no_engine_journal_core_or_server() -> None:
    """The gateway runs on any host: it builds its app on the client and the stubs alone."""
    probe = PROBE.replace("import ledger.client\n", "import ledger.client\nimport gateway\ngateway.create_app()\n")
    environment = {**os.environ, "LEDGER_ENGINE": "cython", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], check=False, capture_output=True, text=True, env=environment, cwd=ROOT,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded = [name for name in json.loads(done.stdout)["modules"]
              if any(name == f or name.startswith(f + ".") for f in (*FORBIDDEN, "ledger.wallet"))]  # fmt: skip
    assert loaded == [], f"importing the gateway loaded {loaded}"


def test_the_records_package_imports_only_the_standard_library() -> None:
    """ledger.records is the leaf every layer reads records through: nothing of the ledger's own but itself."""
    import ast

    for path in (ROOT / "ledger" / "records").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in sys.stdlib_module_names or name == "__future__", (path.name, name)
