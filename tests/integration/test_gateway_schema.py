"""schemathesis against the gateway's OpenAPI document, served by `ledger serve` over a real core: every
operation with generated requests, bounded for CI; no 5xx, and every answer conforms to the document
(status codes, media types, bodies)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
HTTP_LINE = re.compile(r"HTTP on (http://127\.0\.0\.1:\d+) \(docs")
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


def test_generated_requests_get_no_5xx_and_answers_that_conform_to_the_document(tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    environment = {**os.environ, "LEDGER_ACCOUNTS_MAX": "10000", "LEDGER_TRANSFERS_MAX": "100000",
                   "LEDGER_METRICS_ADDRESS": "", "LEDGER_HTTP_ADDRESS": "127.0.0.1:0"}  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ledger", "serve", "--address", "127.0.0.1:0", "--store",
             f"sqlite:///{tmp_path / 'journal.sqlite3'}"], stdout=log, stderr=log, env=environment, cwd=ROOT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while (found := HTTP_LINE.search(log_path.read_text())) is None:
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        base = found.group(1)
        # A tenant and a wallet exist, so that generated requests reach past "no such tenant" too.
        assert httpx.post(f"{base}/v1/tenants", json={"id": "shop-a", "currency": "EUR"}).status_code == 201
        assert httpx.post(f"{base}/v1/tenants/shop-a/wallets", json={"customer": "anna"}).status_code == 201
        beside = Path(sys.executable).parent / "schemathesis"  # installed with this interpreter's packages
        command = str(beside) if beside.exists() else shutil.which("schemathesis") or "schemathesis"
        done = subprocess.run(
            [command, "run", f"{base}/docs/openapi.json", "--checks", CHECKS, "--max-examples", "8", "--seed", "7",
             "--request-timeout", "15"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
        assert re.search(r"\d+ generated, \d+ passed", done.stdout), done.stdout[-3000:]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
