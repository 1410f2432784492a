"""Pay links' pure parts: the contact a link goes to, its URL token, and its one-time codes' digests.

A link's token is 128 bits of HMAC-SHA256 under its tenant's secret, base32 without padding (26 characters,
case-insensitive, safe in a URL and in an SMS): knowing one link's URL tells nothing of another's. A one-time
code is 6 random digits drawn by the server; the journal keeps only its HMAC under the tenant's secret and the
challenge's id, so the code cannot be read back from a store or a snapshot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

CONTACT_LENGTH_MAX: Final = 254
_PHONE: Final = re.compile(r"\+[1-9][0-9]{6,14}")
_EMAIL: Final = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                           r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,63}")  # fmt: skip
CODE_DIGITS: Final = 6


def contact_problem(contact: str) -> str | None:
    """None if `contact` is a phone number in E.164 form or an e-mail address, else why not."""
    if len(contact) <= CONTACT_LENGTH_MAX and (_PHONE.fullmatch(contact) or _EMAIL.fullmatch(contact)):
        return None
    return "contact: a phone number in E.164 form (+4915112345678) or an e-mail address is required"


def is_phone(contact: str) -> bool:
    return contact.startswith("+")


def masked_contact(contact: str) -> str:
    """Enough of a contact for its owner to recognise it, not enough to reach them: +49•••••678,
    a•••@example.com."""
    if is_phone(contact):
        return contact[:3] + "•" * (len(contact) - 6) + contact[-3:]
    local, _, domain = contact.partition("@")
    return f"{local[:1]}•••@{domain}"


def link_token(secret: bytes, link_id: int) -> str:
    digest = hmac.new(secret, b"pay-link\x00" + link_id.to_bytes(16, "big"), hashlib.sha256).digest()
    return base64.b32encode(digest[:16]).decode().rstrip("=").lower()


def challenge_digest(secret: bytes, challenge_id: int, code: str) -> str:
    message = b"pay-link-code\x00" + challenge_id.to_bytes(16, "big") + code.encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()
