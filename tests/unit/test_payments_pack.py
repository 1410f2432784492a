"""The native payment packer against the pure-Python one, and the twin against the general encoders."""

from __future__ import annotations

import os
from types import ModuleType

from hypothesis import given
from hypothesis import strategies as st

from ledger.wallet import _payments_py, decode_records
from ledger.wallet._codes import TransferCode
from ledger.wallet._domain import _chain, _transfer

try:
    from ledger.wallet import _payments_c
except ImportError:
    _payments_c = None  # type: ignore[assignment]

if _payments_c is None and (os.environ.get("CI") == "true" or os.environ.get("LEDGER_ENGINE") == "cython"):
    raise RuntimeError("the native payment packer (ledger.wallet._payments_c) is not built")

IMPLEMENTATIONS: list[ModuleType] = [_payments_py] + ([_payments_c] if _payments_c is not None else [])
_IDS = st.one_of(st.integers(1, 2**128 - 2), st.sampled_from([1, 2**64 - 1, 2**64, 2**127, 2**128 - 2]))
_U63 = st.integers(0, 2**63 - 1)
_PAYMENTS = st.tuples(
    _IDS, _IDS, _IDS, _IDS, _IDS, st.integers(0, 2**32 - 1), st.integers(1, 2**63 - 1), _U63,
    st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(1, 2**63 - 1), st.booleans(),
    st.text(max_size=64), st.text(max_size=255), st.integers(0, 2**64 - 1),
)  # fmt: skip


@given(st.lists(_PAYMENTS, max_size=12))
def test_both_pack_the_same_chains_and_records(batch: list[tuple]) -> None:  # type: ignore[type-arg]
    packed = []
    for module in IMPLEMENTATIONS:
        chains, records = bytearray(), bytearray()
        counts = [module.pack_payment(chains, records, *payment) for payment in batch]
        packed.append((chains, records, counts))
    assert all(output == packed[0] for output in packed[1:])


@given(_PAYMENTS)
def test_the_twin_packs_the_linked_chain_and_the_record_the_domain_reads(payment: tuple) -> None:  # type: ignore[type-arg]
    key_id, fee_id, wallet, revenue, fees, ledger, paid, fee, fp, balance, requested, partial, tenant, order, at = (
        payment
    )
    chains, records = bytearray(), bytearray()
    count = _payments_py.pack_payment(chains, records, *payment)
    first = _transfer(
        key_id, wallet, revenue, paid, ledger, TransferCode.PAYMENT,
        user_data_128=fp | balance << 64, user_data_64=requested, user_data_32=int(partial),
    )  # fmt: skip
    second = _transfer(fee_id, wallet, fees, fee, ledger, TransferCode.PAYMENT_FEE, user_data_128=key_id)
    assert (count, bytes(chains)) == ((2, _chain(first, second)) if fee else (1, first))
    assert list(decode_records(records)) == [
        {"op": "payment_succeeded", "tenant": tenant, "at": at, "wallet": wallet, "id": key_id, "order": order,
         "requested": requested, "paid": paid, "fee": fee, "facts": []}
    ]  # fmt: skip


def test_the_packer_is_chosen_as_the_engine_is() -> None:
    from ledger.records.native import NativeUnavailable
    from ledger.wallet._payments import select

    assert select("python") is _payments_py
    if _payments_c is not None:
        assert select("cython") is select(None) is _payments_c
    else:
        assert select(None) is _payments_py
        try:
            select("cython")
        except NativeUnavailable as exc:
            assert "ledger.wallet._payments_c" in str(exc)
        else:
            raise AssertionError("LEDGER_ENGINE=cython without the native packer must fail")
