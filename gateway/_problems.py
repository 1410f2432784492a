"""Errors as RFC 9457 problem details (application/problem+json), and the one table from a wallet result to
its HTTP status and problem `code`.

Every problem carries `type`, `title`, `status`, `detail`, a stable `code`, the `field` at fault where one is
(a JSON field of the request, a path parameter, or a header) and the `request_id` of the request. Business
outcomes of the wallet (a declined payment, an unknown wallet) become problems by WALLET_PROBLEMS; refusals
of the ledger (a missing permission) and of the gateway itself (a body that is not JSON) have their own codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ledger.v1 import wallet_pb2

PROBLEM_TYPE_BASE: Final = "https://wallet-ledger.dev/problems/"
PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
_FIELD: Final = re.compile(r"^[a-z_][a-z0-9_]*(\[[0-9]+\])?(\.[a-z_][a-z0-9_]*(\[[0-9]+\])?)*$")
"""A field's name as the ledger's messages name it: `amount`, `settings.fee_fixed`, `items[3].amount`."""

R = wallet_pb2.WalletResult


@dataclass(frozen=True, slots=True)
class ProblemKind:
    status: int
    code: str
    title: str


def _kind(status: int, code: str, title: str) -> ProblemKind:
    return ProblemKind(status, code, title)


_INVALID = 400
_DECLINED = 402
_NOT_FOUND = 404
_CONFLICT = 409

WALLET_PROBLEMS: Final[dict[int, ProblemKind]] = {
    R.WALLET_RESULT_IDEMPOTENCY_KEY_INVALID: _kind(_INVALID, "idempotency_key_invalid",
                                                   "The Idempotency-Key header is missing or malformed"),
    R.WALLET_RESULT_IDEMPOTENCY_KEY_REUSED: _kind(422, "idempotency_key_reused",
                                                  "The Idempotency-Key was used for another request"),
    R.WALLET_RESULT_TENANT_INVALID: _kind(_INVALID, "tenant_invalid", "A tenant id or setting is invalid"),
    R.WALLET_RESULT_TENANT_NOT_FOUND: _kind(_NOT_FOUND, "tenant_not_found", "No such tenant"),
    R.WALLET_RESULT_TENANT_EXISTS: _kind(_CONFLICT, "tenant_exists", "The tenant exists with other settings"),
    R.WALLET_RESULT_CURRENCY_MISMATCH: _kind(_INVALID, "currency_mismatch",
                                             "The currency is not the tenant's"),
    R.WALLET_RESULT_CUSTOMER_INVALID: _kind(_INVALID, "customer_invalid", "The customer reference is invalid"),
    R.WALLET_RESULT_WALLET_NOT_FOUND: _kind(_NOT_FOUND, "wallet_not_found", "No such wallet"),
    R.WALLET_RESULT_WALLET_CLOSED: _kind(_DECLINED, "wallet_closed", "The wallet is closed"),
    R.WALLET_RESULT_WALLET_FROZEN: _kind(_DECLINED, "wallet_frozen", "The wallet is frozen"),
    R.WALLET_RESULT_AMOUNT_INVALID: _kind(_INVALID, "amount_invalid",
                                          "An amount is not an integer from 1 to 2^63 - 1 minor units"),
    R.WALLET_RESULT_REFERENCE_REQUIRED: _kind(_INVALID, "reference_required",
                                              "A reference is missing or too long"),
    R.WALLET_RESULT_EXPIRY_INVALID: _kind(_INVALID, "expiry_invalid", "An expiry or duration is out of range"),
    R.WALLET_RESULT_SELF_TOPUP_DISABLED: _kind(_DECLINED, "self_topup_disabled",
                                               "The tenant does not allow this top-up"),
    R.WALLET_RESULT_AMOUNT_NOT_ALLOWED: _kind(_DECLINED, "amount_not_allowed",
                                              "The tenant does not allow this amount"),
    R.WALLET_RESULT_MAX_BALANCE_EXCEEDED: _kind(_DECLINED, "max_balance_exceeded",
                                                "The wallet would hold more than the tenant allows"),
    R.WALLET_RESULT_PARTIAL_PAYMENT_DISABLED: _kind(_DECLINED, "partial_payment_disabled",
                                                    "The tenant does not allow partial payment"),
    R.WALLET_RESULT_INSUFFICIENT_FUNDS: _kind(_DECLINED, "insufficient_funds",
                                              "The wallet does not hold enough credit"),
    R.WALLET_RESULT_PAYMENT_NOT_FOUND: _kind(_NOT_FOUND, "payment_not_found", "No such payment"),
    R.WALLET_RESULT_REFUND_EXCEEDS_PAYMENT: _kind(_DECLINED, "refund_exceeds_payment",
                                                  "The refund exceeds what is left of the payment"),
    R.WALLET_RESULT_REFUND_TO_CREDIT_DISABLED: _kind(_DECLINED, "refund_to_credit_disabled",
                                                     "The tenant does not refund other means into credit"),
    R.WALLET_RESULT_HOLD_NOT_FOUND: _kind(_NOT_FOUND, "hold_not_found", "No such hold"),
    R.WALLET_RESULT_HOLD_NOT_PENDING: _kind(_CONFLICT, "hold_not_pending",
                                            "The hold was captured, voided or expired"),
    R.WALLET_RESULT_CAPTURE_EXCEEDS_HOLD: _kind(_DECLINED, "capture_exceeds_hold",
                                                "The capture exceeds the hold"),
    R.WALLET_RESULT_WALLET_NOT_EMPTY: _kind(_CONFLICT, "wallet_not_empty", "The wallet still holds credit"),
    R.WALLET_RESULT_BOOKING_NOT_FOUND: _kind(_NOT_FOUND, "booking_not_found", "No such booking"),
    R.WALLET_RESULT_BOOKING_ALREADY_REVERSED: _kind(_CONFLICT, "booking_already_reversed",
                                                    "The booking was reversed before"),
    R.WALLET_RESULT_LEDGER_REFUSED: _kind(503, "ledger_refused",
                                          "The ledger refused the operation (a capacity bound); nothing moved"),
    R.WALLET_RESULT_VOUCHER_NOT_FOUND: _kind(_NOT_FOUND, "voucher_not_found", "No such voucher"),
    R.WALLET_RESULT_VOUCHER_EXPIRED: _kind(_DECLINED, "voucher_expired", "The voucher has expired"),
    R.WALLET_RESULT_VOUCHER_DEACTIVATED: _kind(_DECLINED, "voucher_deactivated", "The voucher was deactivated"),
    R.WALLET_RESULT_VOUCHER_EMPTY: _kind(_DECLINED, "voucher_empty", "Nothing is left on the voucher"),
    R.WALLET_RESULT_GRANT_RUN_REFUSED: _kind(_DECLINED, "grant_run_refused",
                                             "An all-or-nothing grant run had an item refused; nothing moved"),
    R.WALLET_RESULT_CODE_INVALID: _kind(_INVALID, "code_invalid",
                                        "The payment code is not one of this tenant valid now"),
    R.WALLET_RESULT_CODE_USED: _kind(_CONFLICT, "code_used", "The payment code paid already"),
    R.WALLET_RESULT_DEVICE_NOT_FOUND: _kind(_NOT_FOUND, "device_not_found", "No such device"),
    R.WALLET_RESULT_PIN_REQUIRED: _kind(_DECLINED, "pin_required", "The payment needs the customer's PIN"),
    R.WALLET_RESULT_PIN_INVALID: _kind(_DECLINED, "pin_invalid", "The PIN is wrong, or may not be a PIN"),
    R.WALLET_RESULT_PIN_LOCKED: _kind(_DECLINED, "pin_locked", "Wrong PINs locked the wallet's code payments"),
    R.WALLET_RESULT_PAYMENT_CANCELLED: _kind(_CONFLICT, "payment_cancelled",
                                             "The terminal cancelled this transaction; it cannot be paid"),
    R.WALLET_RESULT_LIMIT_EXCEEDED: _kind(_DECLINED, "limit_exceeded",
                                          "The payment would pass one of the tenant's risk limits"),
    R.WALLET_RESULT_REQUEST_NOT_FOUND: _kind(_NOT_FOUND, "request_not_found", "No such payment request"),
    R.WALLET_RESULT_REQUEST_EXPIRED: _kind(_CONFLICT, "request_expired", "The payment request expired"),
    R.WALLET_RESULT_REQUEST_NOT_OPEN: _kind(_CONFLICT, "request_not_open",
                                            "The payment request was paid or cancelled"),
    R.WALLET_RESULT_CANCEL_TOO_LATE: _kind(_CONFLICT, "cancel_too_late",
                                           "The payment is too old to cancel at the terminal; refund it"),
    R.WALLET_RESULT_CHALLENGE_INVALID: _kind(_DECLINED, "challenge_invalid",
                                             "The one-time code is wrong, expired or used up; ask for a new one"),
    R.WALLET_RESULT_CONTACT_INVALID: _kind(_INVALID, "contact_invalid",
                                           "The contact is not a phone number (E.164) or an e-mail address"),
}  # fmt: skip
"""HTTP status and problem code of every wallet result but OK: 400 for what the request got wrong, 402 for
what the wallet or the tenant's policy declines, 404 for an unknown id, 409 for a state that forbids it,
422 for a reused idempotency key."""

INVALID_BODY: Final = _kind(_INVALID, "invalid_request", "The request is not what this endpoint takes")
UNAUTHENTICATED: Final = _kind(401, "unauthenticated", "No valid API key")
PERMISSION_DENIED: Final = _kind(403, "permission_denied", "The API key may not do this")
NOT_FOUND: Final = _kind(_NOT_FOUND, "not_found", "No such resource")
METHOD_NOT_ALLOWED: Final = _kind(405, "method_not_allowed", "The resource does not take this method")
BODY_TOO_LARGE: Final = _kind(413, "body_too_large", "The request body is too large")
UNSUPPORTED_MEDIA: Final = _kind(415, "unsupported_media_type", "The request body must be application/json")
RATE_LIMITED: Final = _kind(429, "rate_limited", "The ledger is busy; retry after the time given")
UNAVAILABLE: Final = _kind(
    503, "unavailable", "The ledger did not answer in time; a retry with the same Idempotency-Key is safe"
)
INTERNAL: Final = _kind(500, "internal", "The gateway failed; the request id names it in its log")


class Problem(Exception):
    """A request's answer as a problem: its kind, what went wrong, and the field at fault ("" for none)."""

    def __init__(self, kind: ProblemKind, detail: str, field: str = "", retry_after_seconds: int = 0) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.field = field
        self.retry_after_seconds = retry_after_seconds

    def body(self, request_id: str) -> dict[str, object]:
        body: dict[str, object] = {
            "type": PROBLEM_TYPE_BASE + self.kind.code,
            "title": self.kind.title,
            "status": self.kind.status,
            "detail": self.detail,
            "code": self.kind.code,
            "request_id": request_id,
        }
        if self.field:
            body["field"] = self.field
        return body


def field_named(message: str) -> str:
    """The field a ledger's message names first ("amount: ..." or, naming its RPC, "GetStatement: limit: ...")."""
    parts = message.split(": ", 2)
    if len(parts) > 2 and parts[0].isidentifier() and parts[0][:1].isupper():
        parts = parts[1:]
    return parts[0] if len(parts) > 1 and _FIELD.match(parts[0]) else ""


def wallet_problem(result: int, message: str) -> Problem:
    """The problem of a wallet result that is not OK; its message names the field first ("amount: ...")."""
    kind = WALLET_PROBLEMS.get(result)
    if kind is None:
        return Problem(INTERNAL, f"the ledger answered an unknown wallet result {result}")
    field, colon, _ = message.partition(":")
    named = (
        field if colon and field.replace("_", "").replace(".", "").replace("[", "").replace("]", "").isalnum() else ""
    )
    if result in (R.WALLET_RESULT_IDEMPOTENCY_KEY_INVALID, R.WALLET_RESULT_IDEMPOTENCY_KEY_REUSED):
        named = "Idempotency-Key"
        message = "Idempotency-Key:" + message.removeprefix("key:") if message.startswith("key:") else message
    return Problem(kind, message, named)
