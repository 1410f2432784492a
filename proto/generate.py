"""Generate the Python code of the proto contract into ledger/v1/ (run: python proto/generate.py).

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
# (proto file, whether it defines services)
SOURCES = (("ledger/v1/types.proto", False), ("ledger/v1/ledger.proto", True))
GENERATED = (
    "ledger/v1/types_pb2.py",
    "ledger/v1/types_pb2.pyi",
    "ledger/v1/ledger_pb2.py",
    "ledger/v1/ledger_pb2.pyi",
    "ledger/v1/ledger_pb2_grpc.py",
)


def generate(out: Path) -> list[Path]:
    """Write the generated modules under `out` (mirroring the proto package path); return their paths."""
    from grpc_tools import protoc

    for source, services in SOURCES:
        arguments = ["protoc", f"-I{PROTO}", f"--python_out={out}", f"--pyi_out={out}"]
        if services:
            arguments.append(f"--grpc_python_out={out}")
        if protoc.main([*arguments, str(PROTO / source)]) != 0:
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
