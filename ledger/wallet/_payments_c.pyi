# Type stub of the native payment packer built from native/_payments.pyx.
implementation: str

def pack_payment(
    chains: bytearray,
    records: bytearray,
    key_id: int,
    fee_id: int,
    wallet: int,
    revenue: int,
    fees: int,
    ledger: int,
    paid: int,
    fee: int,
    fp: int,
    balance: int,
    requested: int,
    partial: bool,
    tenant: str,
    order: str,
    at: int,
) -> int: ...
