"""The payment packer, chosen as the engine is: LEDGER_ENGINE=cython needs the native module
(ledger.wallet._payments_c), =python takes the pure-Python twin, unset takes the native one if it was built."""

from __future__ import annotations

import os
from types import ModuleType

from . import _payments_py


class PaymentsUnavailable(RuntimeError):
    """LEDGER_ENGINE=cython without the native payment packer built."""


def _load_native() -> ModuleType | None:
    try:
        from . import _payments_c
    except ImportError:
        return None
    return _payments_c


def select(requested: str | None) -> ModuleType:
    requested = (requested or "").strip().lower()
    if requested == "python":
        return _payments_py
    native = _load_native()
    if requested == "cython" and native is None:
        raise PaymentsUnavailable(
            "LEDGER_ENGINE=cython but the native payment packer (ledger.wallet._payments_c) is not built"
        )
    return native or _payments_py


payments: ModuleType = select(os.environ.get("LEDGER_ENGINE"))
