"""Customer-presented payment codes: what a phone shows at a counter, made without a network connection.

A wallet app enrols its device once and gets two keys: the device's seed (its own) and the tenant's code
key (every device of the tenant has it). From then on, for each 30-second window (`step`), it derives an
18-digit code on its own:

    "28" | device number, masked (10 digits) | one-time password (6 digits)

- The **one-time password** is HMAC-SHA256(seed, step) truncated as HOTP truncates (RFC 4226, with SHA-256
  as RFC 6238 allows) to 6 digits: only the device and the ledger can make it.
- The **device number** (random, 10 digits, unique within the tenant) tells the ledger which device made the
  code, and so which wallet pays. It is masked per window: (number + mask(step)) mod 10^10, the mask from
  HMAC-SHA256(code key, step). Codes of one device thus share no digits an onlooker could link; the wallet's
  id never appears.

Both keys derive from the tenant's secret and the device's id (HMAC-SHA256), so the ledger stores neither:
a device record holds its id, number, wallet and status. A code is valid in its own window and, as a grace
for a code read just before the window turned, in the one before (`GRACE_STEPS`); it pays once (the ledger
keeps each (device, step) it took a payment from for as long as the code could be shown).
"""

from __future__ import annotations

import functools
import hmac
import struct
from typing import Final

CODE_PREFIX: Final = "28"
CODE_LENGTH: Final = 18
NUMBER_DIGITS: Final = 10
OTP_DIGITS: Final = 6
STEP_SECONDS: Final = 30
GRACE_STEPS: Final = 1
"""A code of the window before the current one is still taken: at most 30 s after its window closed."""
NUMBER_MODULUS: Final = 10**NUMBER_DIGITS
_OTP_MODULUS: Final = 10**OTP_DIGITS
_OTP_FORMAT: Final = f"0{OTP_DIGITS}d"
_STEP: Final = struct.Struct(">Q")
_NS: Final = 1_000_000_000
MASKS_CACHED: Final = 1_024
"""Window masks (and tenants' code keys and keyed HMACs) kept computed: every code of a tenant in a window shares
its mask, so the ledger derives it once per window rather than twice per payment."""


def device_seed(tenant_secret: bytes, device_id: int) -> bytes:
    """The device's own key: only it and the ledger can make its one-time passwords. HMAC-SHA256 under the
    tenant's secret, from the HMAC keyed once per tenant (a third of the cost of keying it per device)."""
    keyed = _seeds_keyed(tenant_secret).copy()
    keyed.update(b"payment-code-seed\x00" + device_id.to_bytes(16, "little"))
    return keyed.digest()


@functools.lru_cache(maxsize=MASKS_CACHED)
def _seeds_keyed(tenant_secret: bytes) -> hmac.HMAC:
    return hmac.new(tenant_secret, digestmod="sha256")


@functools.lru_cache(maxsize=MASKS_CACHED)
def code_key(tenant_secret: bytes) -> bytes:
    """The tenant's code key, which masks device numbers; every enrolled device of the tenant has it."""
    return hmac.digest(tenant_secret, b"payment-code-mask", "sha256")


def step_at(now_ns: int) -> int:
    """The window a time falls in."""
    return now_ns // (STEP_SECONDS * _NS)


def one_time_password(seed: bytes, step: int) -> str:
    """RFC 4226 dynamic truncation of HMAC-SHA256(seed, step), 6 digits."""
    digest = hmac.digest(seed, _STEP.pack(step), "sha256")
    offset = digest[-1] & 0x0F
    value = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFF_FFFF
    return format(value % _OTP_MODULUS, _OTP_FORMAT)


@functools.lru_cache(maxsize=MASKS_CACHED)
def mask(key: bytes, step: int) -> int:
    """What masks device numbers in window `step` (the same for every device of the tenant whose code key it is)."""
    digest = hmac.digest(key, b"mask" + _STEP.pack(step), "sha256")
    return int.from_bytes(digest[:8], "big") % NUMBER_MODULUS


def make_code(seed: bytes, key: bytes, number: int, step: int) -> str:
    """The code a device with this seed and number shows in window `step` (what the wallet app computes)."""
    masked = (number + mask(key, step)) % NUMBER_MODULUS
    return f"{CODE_PREFIX}{masked:0{NUMBER_DIGITS}d}{one_time_password(seed, step)}"


def parse_code(code: str) -> tuple[int, str] | None:
    """(masked device number, one-time password) of a well-formed code, else None."""
    if len(code) != CODE_LENGTH or not code.isascii() or not code.isdigit() or not code.startswith(CODE_PREFIX):
        return None
    masked = int(code[len(CODE_PREFIX) : len(CODE_PREFIX) + NUMBER_DIGITS])
    return masked, code[-OTP_DIGITS:]


def candidates(key: bytes, masked: int, now_ns: int) -> list[tuple[int, int]]:
    """(step, device number) the code may be of: the current window's and the grace window's readings."""
    return [(step, (masked - window_mask) % NUMBER_MODULUS) for step, window_mask in _masks(key, step_at(now_ns))]


@functools.lru_cache(maxsize=MASKS_CACHED)
def _masks(key: bytes, current: int) -> tuple[tuple[int, int], ...]:
    """(step, mask) of the windows whose codes are taken while `current` is the window now, newest first."""
    return tuple((step, mask(key, step)) for step in range(current, max(current - GRACE_STEPS - 1, -1), -1))


def password_matches(seed: bytes, step: int, password: str) -> bool:
    """Whether `password` is the device's for `step`, in time independent of where they differ."""
    return hmac.compare_digest(one_time_password(seed, step), password)
