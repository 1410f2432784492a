"""Payment PINs: 4 to 6 digits a customer sets for their wallet, kept only as an Argon2id hash.

Hashing and checking are slow on purpose (about 20 ms here), so they never run in the ledger's single writer:
the server hashes a new PIN, or checks one against the wallet's hash, in a worker thread, and the writer takes
only the hash or the outcome. A check for a wallet without a PIN (or for a code that names no wallet) runs
against `DUMMY_HASH` and fails, in the time a real one takes, so timing tells nothing of a wallet.

Parameters: Argon2id with 19 MiB, 2 passes, 1 lane (OWASP's recommendation); a PIN's few digits make any hash
guessable offline given time, so the hash is slowed, kept in the journal only, and wrong guesses online lock
the wallet (its tenant's pin_attempts).
"""

from __future__ import annotations

import itertools
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PIN_DIGITS_MIN: Final = 4
PIN_DIGITS_MAX: Final = 6
_HASHER: Final = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
DUMMY_HASH: Final = _HASHER.hash("no wallet has this pin")


def pin_problem(pin: str) -> str | None:
    """None if `pin` may be a payment PIN, else why not (never repeating it)."""
    if not PIN_DIGITS_MIN <= len(pin) <= PIN_DIGITS_MAX or not pin.isascii() or not pin.isdigit():
        return f"pin: {PIN_DIGITS_MIN} to {PIN_DIGITS_MAX} digits are required"
    steps = {int(b) - int(a) for a, b in itertools.pairwise(pin)}
    if steps in ({0}, {1}, {-1}):
        return "pin: a run of one digit or of consecutive digits is too easy to guess"
    return None


def hash_pin(pin: str) -> str:
    return _HASHER.hash(pin)


def pin_matches(stored: str | None, pin: str) -> bool:
    """Whether `pin` is the one `stored` hashes (False for None, after the same work as a real check)."""
    try:
        return _HASHER.verify(stored or DUMMY_HASH, pin) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
