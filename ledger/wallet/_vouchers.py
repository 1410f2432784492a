"""Voucher and gift card codes: unguessable, typed by people, with a check character.

A code is 16 characters of Crockford's base32 (0-9 and A-Z without I, L, O, U: 80 bits) and a 17th,
the Luhn mod 32 check character over the 16, printed in groups of four: `7K2M-9QXD-4HPR-T0WB-Y`. Reading a
code forgives what people do: case, spaces and dashes are ignored, O reads as 0 and I and L as 1. A code
whose check character does not match is a typo, told apart from a code that was never issued.

The 80 bits are derived from the tenant's secret and the issuing operation's id (a keyed BLAKE2b), so a
retry of the issue yields the same code without the code being kept anywhere; the wallet keeps only a
hash of it, the voucher's id, by which it finds the voucher.
"""

from __future__ import annotations

import hashlib
from typing import Final

ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_CHARACTERS: Final = 16
_VALUES: Final = {character: value for value, character in enumerate(ALPHABET)}
_FORGIVEN: Final = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})


def _check_character(body: str) -> str:
    """Luhn mod 32 over `body`: doubles every second value from the right, so that a single mistyped
    character and most swaps of neighbours change it."""
    total = 0
    factor = 2
    for character in reversed(body):
        addend = factor * _VALUES[character]
        total += addend // 32 + addend % 32
        factor = 1 if factor == 2 else 2
    return ALPHABET[(32 - total % 32) % 32]


def voucher_code(secret: bytes, operation_id: int) -> str:
    """The code of the voucher issued by this operation, grouped for print."""
    digest = hashlib.blake2b(operation_id.to_bytes(16, "little"), key=secret, digest_size=10).digest()
    value = int.from_bytes(digest, "big")
    body = "".join(ALPHABET[(value >> (5 * index)) & 31] for index in reversed(range(CODE_CHARACTERS)))
    code = body + _check_character(body)
    return "-".join(code[index : index + 4] for index in range(0, len(code), 4))


def normalized(code: str) -> str | None:
    """The code's 17 characters as issued, or None if it is not a well-formed code with a matching check
    character (a typo)."""
    text = code.upper().translate(_FORGIVEN)
    if len(text) != CODE_CHARACTERS + 1 or any(character not in _VALUES for character in text):
        return None
    if _check_character(text[:CODE_CHARACTERS]) != text[-1]:
        return None
    return text


def voucher_id(tenant: str, code: str) -> int:
    """The voucher's id: a hash of its tenant and normalized code (what the wallet keeps instead of the code)."""
    digest = hashlib.blake2b(f"voucher\x00{tenant}\x00{code}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "little") or 1
