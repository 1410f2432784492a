"""A wallet payment's journal entries in plain Python: the reference for native/_payments.pyx.

`pack_payment` appends a payment's chain of transfer records (its payment and, if any, its fee, linked) and
its compact domain record (ledger.wallet._state.encode_payment_record) to two buffers.
"""

from __future__ import annotations

import struct
from typing import Final

from ledger.records.codes import TransferFlags
from ledger.records.layout import TRANSFER_STRUCT

from ._codes import TransferCode
from ._state import encode_payment_record

implementation = "python"

_TWO_TRANSFERS: Final = struct.Struct("<" + TRANSFER_STRUCT.format.lstrip("<") * 2)
_MASK_64: Final = 2**64 - 1


def payment_chain(
    key_id: int, fee_id: int, wallet: int, revenue: int, fees: int, ledger: int, paid: int, fee: int, fp: int,
    balance: int, requested: int, partial: bool,
) -> bytes:  # fmt: skip
    """A payment's chain: what the wallet pays to the revenue account, then its fee to the fees account (if
    any), linked. The payment's transfer carries the request's fingerprint and the balance after
    (user_data_128), the amount asked for (user_data_64) and whether it was partial (user_data_32), so a
    retry's reply is rebuilt from the chain alone; the fee's carries the payment's id. Packed in one call: it
    is what `_chain(_transfer(…), _transfer(…))` of ledger.wallet._domain gives, which a test checks."""
    head = (
        key_id & _MASK_64, key_id >> 64, wallet & _MASK_64, wallet >> 64, revenue & _MASK_64, revenue >> 64,
        paid, 0, 0, fp, balance, requested, int(partial), 0, ledger, int(TransferCode.PAYMENT),
    )  # fmt: skip
    if not fee:
        return TRANSFER_STRUCT.pack(*head, 0, 0, 0)
    return _TWO_TRANSFERS.pack(
        *head, int(TransferFlags.LINKED), 0, 0,
        fee_id & _MASK_64, fee_id >> 64, wallet & _MASK_64, wallet >> 64, fees & _MASK_64, fees >> 64,
        fee, 0, 0, key_id & _MASK_64, key_id >> 64, 0, 0, 0, ledger, int(TransferCode.PAYMENT_FEE), 0, 0, 0,
    )  # fmt: skip


def pack_payment(
    chains: bytearray, records: bytearray, key_id: int, fee_id: int, wallet: int, revenue: int, fees: int,
    ledger: int, paid: int, fee: int, fp: int, balance: int, requested: int, partial: bool, tenant: str,
    order: str, at: int,
) -> int:  # fmt: skip
    """Append the payment's chain (payment_chain) to `chains` and its compact record to `records`; the
    chain's transfer count."""
    chains += payment_chain(key_id, fee_id, wallet, revenue, fees, ledger, paid, fee, fp, balance, requested, partial)
    records += encode_payment_record(tenant, at, wallet, key_id, order, requested, paid, fee)
    return 2 if fee else 1
