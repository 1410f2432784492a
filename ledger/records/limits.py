"""Every bound of the engine in one place, with the relations between them.

Amounts and balances are integers in minor units. They are capped at
2**63 - 1 so that every balance, amount and timestamp fits a signed 64-bit
column in the journal stores, and so that the sum of two in-range values
never wraps in unsigned 64-bit arithmetic inside the native engine.
"""

from __future__ import annotations

from typing import Final

# Records (see ledger.records.layout for the byte layout).
ACCOUNT_SIZE: Final = 128
TRANSFER_SIZE: Final = 128
ID_SIZE: Final = 16
ACCOUNT_RESULT_SIZE: Final = 16
TRANSFER_RESULT_SIZE: Final = 24
ACCOUNT_BALANCE_SIZE: Final = 64

# Values.
ID_INT_MAX: Final = 2**128 - 1
"""Reserved: an id may be neither 0 nor this (it is the "no id" sentinel of scans)."""
AMOUNT_MAX: Final = 2**63 - 1
"""Largest amount of one transfer and largest value of any balance, in minor units."""
TIMESTAMP_MAX: Final = 2**63 - 1
"""Largest timestamp (nanoseconds since the Unix epoch) the engine assigns."""
TIMEOUT_SECONDS_MAX: Final = 2**32 - 1
"""A pending transfer's timeout is a u32 number of seconds; 0 means it never expires."""
NANOSECONDS_PER_SECOND: Final = 1_000_000_000
DOMAIN_LEDGER_FIRST: Final = 1 << 31
"""Ledger numbers from here up belong to the domain layer (the wallet's tenants, one per tenant and currency)
and are written through it alone; the ledgers a caller of the Ledger service chooses for its own books stay
below. The boundary is the top bit of the u32 ledger field, the top bit of its last byte (little-endian), so a
batch is checked with one strided slice of those bytes."""

# Batches.
BATCH_EVENTS_MAX: Final = 8190
"""Most events (accounts, transfers or ids) in one request to the engine."""

# Capacity of the native tables, chosen at start. The defaults suit a
# single shop or event; a server sizes them from its configuration.
ACCOUNTS_MAX_DEFAULT: Final = 1_000_000
TRANSFERS_MAX_DEFAULT: Final = 1_000_000_000
"""A limit: a transfer takes memory as it is made (its status, fingerprint and index slot, about 20 bytes)."""
PENDING_TRANSFERS_MAX_DEFAULT: Final = 1_000_000
TRANSFERS_HOT_DEFAULT: Final = (1 << 20) - BATCH_EVENTS_MAX
"""Newest transfers whose records stay in memory when older ones can be read back: with a batch beyond them,
a ring of 1 Mi records (128 MiB)."""
CAPACITY_MAX: Final = 2**32 - 2
"""Native tables address slots with 32-bit indexes."""

assert BATCH_EVENTS_MAX * TRANSFER_SIZE < 2**20, "a full batch must fit a 1 MiB message"
assert 2 * AMOUNT_MAX < 2**64, "the sum of two balances must not wrap in u64"
assert TIMESTAMP_MAX + TIMEOUT_SECONDS_MAX * NANOSECONDS_PER_SECOND < 2**64
assert ACCOUNTS_MAX_DEFAULT <= CAPACITY_MAX and TRANSFERS_MAX_DEFAULT <= CAPACITY_MAX
