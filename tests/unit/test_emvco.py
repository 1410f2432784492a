"""EMVCo merchant-presented QR payloads: written as the specification lays them out, read back exactly, and a
payload altered in any character refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway._emvco import EmvError, PaymentRequestQr, amount_text, crc16, decode, encode, fields


def test_the_crc_is_ccitt_false_and_the_layout_the_specifications() -> None:
    assert crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE's check value
    payload = encode(PaymentRequestQr(tenant="bar", request_id="pr_1", amount=1250, currency_number=978, scale=2,
                                      merchant_name="Festival Bar", merchant_city="Berlin", country="DE"))  # fmt: skip
    assert payload.startswith("000201010212") and "5303978" in payload and "540512.50" in payload
    assert "5802DE" in payload and "5912Festival Bar" in payload and "6006Berlin" in payload
    assert payload[-8:-4] == "6304" and f"{crc16(payload[:-4].encode()):04X}" == payload[-4:]
    assert fields(payload)["26"] == "0017dev.wallet-ledger0103bar0204pr_1"


@pytest.mark.parametrize(("amount", "scale", "text"), [(1250, 2, "12.50"), (5, 2, "0.05"), (1250, 0, "1250"),
                                                       (1, 3, "0.001"), (10**12, 2, "10000000000.00")])  # fmt: skip
def test_amounts_are_written_in_major_units_with_their_minor_digits(amount: int, scale: int, text: str) -> None:
    assert amount_text(amount, scale) == text


@given(
    tenant=st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True),
    request=st.from_regex(r"pr_[0-9a-f]{1,20}", fullmatch=True),
    amount=st.integers(1, 10**10), scale=st.sampled_from([0, 2, 3]), name=st.text(max_size=40),
    city=st.text(max_size=30), position=st.integers(0, 10**6),
    replacement=st.characters(min_codepoint=32, max_codepoint=126),
)  # fmt: skip
def test_a_payload_reads_back_and_one_altered_anywhere_is_refused(
    tenant: str, request: str, amount: int, scale: int, name: str, city: str, position: int, replacement: str
) -> None:
    qr = PaymentRequestQr(tenant=tenant, request_id=request, amount=amount, currency_number=978, scale=scale,
                          merchant_name=name, merchant_city=city)  # fmt: skip
    payload = encode(qr)
    back = decode(payload)
    assert (back.tenant, back.request_id, back.currency_number) == (tenant, request, 978)
    assert (back.amount, back.scale) == (amount, scale)
    at = position % len(payload)
    altered = payload[:at] + replacement + payload[at + 1 :]
    crc_case = at >= len(payload) - 4 and replacement.upper() == payload[at]  # the CRC's hex in either case
    if altered != payload and not crc_case:
        with pytest.raises(EmvError):
            decode(altered)


@pytest.mark.parametrize("payload", ["", "6304ABCD", "000201" + "6304" + "0000", "00020101021263041234", "é" * 20])
def test_malformed_payloads_are_refused_with_a_reason(payload: str) -> None:
    with pytest.raises(EmvError) as refused:
        decode(payload)
    assert str(refused.value)


def test_a_static_or_foreign_payload_is_not_a_payment_request() -> None:
    static = "00020101021152045999530397858025DE" + "6304"
    with pytest.raises(EmvError):
        decode(static + f"{crc16(static.encode()):04X}")
    foreign_body = "000201010212" + "2611" + "0007com.xyz" + "5303978540112" + "6304"
    with pytest.raises(EmvError, match="field 26"):
        decode(foreign_body + f"{crc16(foreign_body.encode()):04X}")
