"""The payment packer, chosen as the engine is: LEDGER_ENGINE=cython needs the native module
(ledger.wallet._payments_c), =python takes the pure-Python twin, unset takes the native one if it was built."""

from __future__ import annotations

import os
from types import ModuleType

from ledger.records.native import choose

from . import _payments_py


def select(requested: str | None) -> ModuleType:
    return choose(requested, "ledger.wallet._payments_c", _payments_py, "the native payment packer")


payments: ModuleType = select(os.environ.get("LEDGER_ENGINE"))
