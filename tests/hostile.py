"""What an attacker sends, and a real server process to send it to.

gRPC's own client refuses to send some of it (a header value that is not
UTF-8, say), so calls that must carry such bytes are written as HTTP/2 frames
with h2 over a plain socket, as any client on the network could.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h2.config
import h2.connection
import h2.events

START_LINE = re.compile(r"ledger serving gRPC on [^ ]+:(\d+) ")
START_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class RawAnswer:
    """What came back for one raw call: HTTP status, and the gRPC status and message of its trailers."""

    http_status: str
    grpc_status: int | None
    grpc_message: str


def raw_call(
    port: int,
    path: str,
    body: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
    timeout_seconds: float = 10.0,
) -> RawAnswer:
    """One unary gRPC call written frame by frame: any header bytes, any body (framed as one message)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_seconds) as connection:
        h2c = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True, header_encoding=None, validate_outbound_headers=False,
                normalize_outbound_headers=False, validate_inbound_headers=False,
            )
        )  # fmt: skip
        h2c.initiate_connection()
        stream_id = h2c.get_next_available_stream_id()
        request_headers = [
            (b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()), (b":authority", b"localhost"),
            (b"content-type", b"application/grpc"), (b"te", b"trailers"), *headers,
        ]  # fmt: skip
        h2c.send_headers(stream_id, request_headers)
        frame = b"\x00" + len(body).to_bytes(4, "big") + body
        window = h2c.local_settings.initial_window_size
        h2c.send_data(stream_id, frame[:window] if len(frame) > window else frame, end_stream=len(frame) <= window)
        connection.sendall(h2c.data_to_send())
        sent = min(len(frame), window)
        found: dict[bytes, bytes] = {}
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            data = connection.recv(65536)
            if not data:
                break
            for event in h2c.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    found.update(dict(event.headers))
                elif isinstance(event, h2.events.DataReceived):
                    h2c.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.WindowUpdated) and sent < len(frame):
                    room = h2c.local_flow_control_window(stream_id)
                    chunk = frame[sent : sent + min(room, h2c.max_outbound_frame_size)]
                    if chunk:
                        sent += len(chunk)
                        h2c.send_data(stream_id, chunk, end_stream=sent == len(frame))
                if isinstance(event, h2.events.StreamEnded | h2.events.StreamReset | h2.events.ConnectionTerminated):
                    connection.sendall(h2c.data_to_send())
                    return _answer(found)
            connection.sendall(h2c.data_to_send())
        return _answer(found)


def _answer(headers: dict[bytes, bytes]) -> RawAnswer:
    status = headers.get(b"grpc-status")
    return RawAnswer(
        http_status=headers.get(b":status", b"").decode(),
        grpc_status=None if status is None else int(status),
        grpc_message=headers.get(b"grpc-message", b"").decode("utf-8", "replace"),
    )


class ServedProcess:
    """`ledger serve` in a process of its own, its output (stdout and stderr) in one log file."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path, port: int) -> None:
        self.process = process
        self.log_path = log_path
        self.port = port

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_serving(
    directory: Path, *arguments: str, env: dict[str, str] | None = None, log_name: str = "serve.log"
) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = directory / log_name
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ledger", "serve", *arguments],
            stdout=log,
            stderr=log,
            cwd=directory,
            env={**os.environ, "LEDGER_ACCOUNTS_MAX": "1000", "LEDGER_TRANSFERS_MAX": "100000", **(env or {})},
        )
    return process, log_path


@contextlib.contextmanager
def served(directory: Path, *arguments: str, env: dict[str, str] | None = None) -> Iterator[ServedProcess]:
    """A server on `--address 127.0.0.1:0` (unless given), waited for until its start line; stopped after."""
    if "--address" not in arguments:
        arguments = ("--address", "127.0.0.1:0", *arguments)
    process, log_path = start_serving(directory, *arguments, env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        match = None
        while match is None and time.monotonic() < deadline and process.poll() is None:
            match = START_LINE.search(log_path.read_text(errors="replace"))
            time.sleep(0.05)
        assert match is not None, log_path.read_text(errors="replace")
        yield ServedProcess(process, log_path, int(match.group(1)))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
