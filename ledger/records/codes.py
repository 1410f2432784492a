"""Result codes and flags shared by both engines, the proto contract and the journal.

Codes are listed in precedence order: when a request breaks several rules,
it gets the code of the first rule in this order that it breaks. Numbers are
explicit and never reused; 0 is "unspecified" and is never returned.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class AccountFlags(IntFlag):
    NONE = 0
    LINKED = 1 << 0
    """This account and the next event in the batch succeed or fail together."""
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1 << 1
    """debits_pending + debits_posted <= credits_posted: a wallet cannot go negative."""
    CREDITS_MUST_NOT_EXCEED_DEBITS = 1 << 2
    """credits_pending + credits_posted <= debits_posted."""
    HISTORY = 1 << 3
    """Keep the balance after every transfer, for balance history."""
    CLOSED = 1 << 4
    """No new transfers; set at creation or by a closing transfer."""


ACCOUNT_FLAGS_KNOWN = int(
    AccountFlags.LINKED
    | AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
    | AccountFlags.HISTORY
    | AccountFlags.CLOSED
)


class TransferFlags(IntFlag):
    NONE = 0
    LINKED = 1 << 0
    """This transfer and the next event in the batch succeed or fail together."""
    PENDING = 1 << 1
    """Reserve the amount (a hold); expires after `timeout` seconds unless posted or voided."""
    POST_PENDING_TRANSFER = 1 << 2
    """Capture the hold named by pending_id, fully (amount 0) or a smaller amount."""
    VOID_PENDING_TRANSFER = 1 << 3
    """Release the hold named by pending_id."""
    BALANCING_DEBIT = 1 << 4
    """Move at most what keeps debits within the debit account's credits."""
    BALANCING_CREDIT = 1 << 5
    """Move at most what keeps credits within the credit account's debits."""
    CLOSING_DEBIT = 1 << 6
    """A pending transfer that closes the debit account; voiding it reopens the account."""
    CLOSING_CREDIT = 1 << 7
    """A pending transfer that closes the credit account; voiding it reopens the account."""


TRANSFER_FLAGS_KNOWN = (1 << 8) - 1


class TransferStatus(IntEnum):
    """State of a transfer created with the PENDING flag."""

    NONE = 0
    PENDING = 1
    POSTED = 2
    VOIDED = 3
    EXPIRED = 4


class CreateAccountResult(IntEnum):
    UNSPECIFIED = 0
    OK = 1
    LINKED_EVENT_FAILED = 2
    LINKED_EVENT_CHAIN_OPEN = 3
    TIMESTAMP_MUST_BE_ZERO = 4
    RESERVED_FIELD = 5
    RESERVED_FLAG = 6
    ID_MUST_NOT_BE_ZERO = 7
    ID_MUST_NOT_BE_INT_MAX = 8
    EXISTS_WITH_DIFFERENT_FLAGS = 9
    EXISTS_WITH_DIFFERENT_USER_DATA_128 = 10
    EXISTS_WITH_DIFFERENT_USER_DATA_64 = 11
    EXISTS_WITH_DIFFERENT_USER_DATA_32 = 12
    EXISTS_WITH_DIFFERENT_LEDGER = 13
    EXISTS_WITH_DIFFERENT_CODE = 14
    EXISTS = 15
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = 16
    DEBITS_PENDING_MUST_BE_ZERO = 17
    DEBITS_POSTED_MUST_BE_ZERO = 18
    CREDITS_PENDING_MUST_BE_ZERO = 19
    CREDITS_POSTED_MUST_BE_ZERO = 20
    LEDGER_MUST_NOT_BE_ZERO = 21
    CODE_MUST_NOT_BE_ZERO = 22
    ACCOUNTS_FULL = 23
    """The engine holds as many accounts as it was configured for."""


class CreateTransferResult(IntEnum):
    UNSPECIFIED = 0
    OK = 1
    LINKED_EVENT_FAILED = 2
    LINKED_EVENT_CHAIN_OPEN = 3
    TIMESTAMP_MUST_BE_ZERO = 4
    RESERVED_FIELD = 5
    RESERVED_FLAG = 6
    ID_MUST_NOT_BE_ZERO = 7
    ID_MUST_NOT_BE_INT_MAX = 8
    EXISTS_WITH_DIFFERENT_FLAGS = 9
    EXISTS_WITH_DIFFERENT_PENDING_ID = 10
    EXISTS_WITH_DIFFERENT_TIMEOUT = 11
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = 12
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = 13
    EXISTS_WITH_DIFFERENT_AMOUNT = 14
    EXISTS_WITH_DIFFERENT_USER_DATA_128 = 15
    EXISTS_WITH_DIFFERENT_USER_DATA_64 = 16
    EXISTS_WITH_DIFFERENT_USER_DATA_32 = 17
    EXISTS_WITH_DIFFERENT_LEDGER = 18
    EXISTS_WITH_DIFFERENT_CODE = 19
    EXISTS = 20
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = 21
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = 22
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = 23
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = 24
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = 25
    ACCOUNTS_MUST_BE_DIFFERENT = 26
    PENDING_ID_MUST_BE_ZERO = 27
    PENDING_ID_MUST_NOT_BE_ZERO = 28
    PENDING_ID_MUST_NOT_BE_INT_MAX = 29
    PENDING_ID_MUST_BE_DIFFERENT = 30
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = 31
    CLOSING_TRANSFER_MUST_BE_PENDING = 32
    AMOUNT_MUST_NOT_BE_ZERO = 33
    AMOUNT_EXCEEDS_MAX = 34
    LEDGER_MUST_NOT_BE_ZERO = 35
    CODE_MUST_NOT_BE_ZERO = 36
    DEBIT_ACCOUNT_NOT_FOUND = 37
    CREDIT_ACCOUNT_NOT_FOUND = 38
    ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = 39
    TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = 40
    PENDING_TRANSFER_NOT_FOUND = 41
    PENDING_TRANSFER_NOT_PENDING = 42
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = 43
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = 44
    PENDING_TRANSFER_HAS_DIFFERENT_LEDGER = 45
    PENDING_TRANSFER_HAS_DIFFERENT_CODE = 46
    EXCEEDS_PENDING_TRANSFER_AMOUNT = 47
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = 48
    PENDING_TRANSFER_ALREADY_POSTED = 49
    PENDING_TRANSFER_ALREADY_VOIDED = 50
    PENDING_TRANSFER_EXPIRED = 51
    DEBIT_ACCOUNT_ALREADY_CLOSED = 52
    CREDIT_ACCOUNT_ALREADY_CLOSED = 53
    OVERFLOWS_DEBITS_PENDING = 54
    OVERFLOWS_CREDITS_PENDING = 55
    OVERFLOWS_DEBITS_POSTED = 56
    OVERFLOWS_CREDITS_POSTED = 57
    OVERFLOWS_DEBITS = 58
    OVERFLOWS_CREDITS = 59
    OVERFLOWS_TIMEOUT = 60
    EXCEEDS_CREDITS = 61
    EXCEEDS_DEBITS = 62
    TRANSFERS_FULL = 63
    """The engine remembers as many transfer ids as it was configured for."""
    PENDING_TRANSFERS_FULL = 64
    """The engine holds as many open pending transfers as it was configured for."""
