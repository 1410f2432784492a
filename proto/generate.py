"""Generate the Python code of the proto contract into ledger/v1/ (run: python proto/generate.py).

The Wallet service's contract is proto/wallet/v1/wallet.proto (package wallet.v1); its code is generated
into ledger/v1/ beside the Ledger service's, so that the client library needs one package of stubs.

The generated modules are committed so that an install needs no protoc;
tests/unit/test_generated.py regenerates them and fails if they are stale.
grpcio-tools is pinned (the test extra) because its version is written into
the generated code.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "proto"
# (proto file, whether it defines services, the path it is compiled under: its generated module's path)
SOURCES = (
    ("ledger/v1/types.proto", False, "ledger/v1/types.proto"),
    ("ledger/v1/ledger.proto", True, "ledger/v1/ledger.proto"),
    ("wallet/v1/wallet.proto", True, "ledger/v1/wallet.proto"),
)
GENERATED = (
    "ledger/v1/types_pb2.py",
    "ledger/v1/types_pb2.pyi",
    "ledger/v1/ledger_pb2.py",
    "ledger/v1/ledger_pb2.pyi",
    "ledger/v1/ledger_pb2_grpc.py",
    "ledger/v1/wallet_pb2.py",
    "ledger/v1/wallet_pb2.pyi",
    "ledger/v1/wallet_pb2_grpc.py",
)


def generate(out: Path) -> list[Path]:
    """Write the generated modules under `out` (mirroring the proto package path); return their paths."""
    from grpc_tools import protoc

    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
    for source, services, compiled_as in SOURCES:
        # -I<as>=<file> compiles the file under the path `compiled_as`, which names its generated module.
        arguments = ["protoc", f"-I{compiled_as}={PROTO / source}", f"-I{PROTO}", f"-I{include}"]
        arguments += [f"--python_out={out}", f"--pyi_out={out}"]
        if services:
            arguments.append(f"--grpc_python_out={out}")
        if protoc.main([*arguments, compiled_as]) != 0:
            raise RuntimeError(f"protoc failed on {source}")
    return [out / name for name in GENERATED]


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        for path in generate(Path(directory)):
            target = ROOT / path.relative_to(directory)
            target.write_bytes(path.read_bytes())
            print(f"wrote {target.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
