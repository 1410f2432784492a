"""The pages' amounts: minor units written as people read them, in integers only, signs and scales included."""

from __future__ import annotations

from gateway._paylink_routes import money


def test_amounts_are_written_exactly_with_their_sign_and_scale() -> None:
    assert money(123_456, "EUR", 2) == "1,234.56 EUR"
    assert money(-1_250, "EUR", 2) == "-12.50 EUR"
    assert money(-5, "EUR", 2) == "-0.05 EUR"
    assert money(0, "EUR", 2) == "0.00 EUR"
    assert money(1_500, "JPY", 0) == "1,500 JPY" and money(-1_500, "JPY", 0) == "-1,500 JPY"
    assert money(1_234, "BHD", 3) == "1.234 BHD"
    assert money(2**63 - 1, "EUR", 2) == "92,233,720,368,547,758.07 EUR"
