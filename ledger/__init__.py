"""A stored-value wallet ledger: double-entry money movement with bank-ledger guarantees."""

__version__ = "0.1.0"
