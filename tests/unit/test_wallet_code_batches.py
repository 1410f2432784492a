"""Payments by code decided in batches (Wallets.pay_by_code_many) answer, move and record exactly what the same
payments sent one after the other (pay_by_code) do, on both engines; their compact records read back as the
records pay_by_code writes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ledger.engine import Engine
from ledger.wallet import CodePayment, WalletResult, decode_records
from ledger.wallet import _paycodes as paycodes
from ledger.wallet._ids import code_payment_fingerprint, fingerprint
from ledger.wallet._state import (
    CODE_PAYMENT_RECORD_FLAG,
    PAYMENT_RECORD_FLAG,
    RECORD_HEADER,
    WalletState,
    encode_code_payment_record,
    encode_record,
)
from tests.unit.test_wallet_domain import engines, opened, shop, top_up
from tests.wallets import WalletBench

WR = WalletResult
PIN_ABOVE = 2_000
TERMINAL_HOUR = 6_000
HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$not-checked-here"


def counter(engine_class: type[Engine], monkeypatch: pytest.MonkeyPatch) -> tuple[WalletBench, dict[str, Any]]:
    """A shop with a PIN threshold and a terminal limit; anna (two phones, a PIN), ben (little credit) and carla
    (expiring credit: the general path); a cancelled transaction. Its secret and device numbers come from a
    seeded generator and the clock stands still, so that two such benches are twins: given the same payments,
    in a batch or one by one, they stamp them alike."""
    draw = random.Random(7)
    monkeypatch.setattr("ledger.wallet._domain.os.urandom", draw.randbytes)
    bench = WalletBench(engine_class)
    bench.clock.step_ns = 0
    shop(bench, fee_fixed=5, fee_per_mille=10, partial_payment=True, pin_above=PIN_ABOVE, pin_attempts=3,
         terminal_hour_amount=TERMINAL_HOUR)  # fmt: skip
    phones: dict[str, Any] = {}
    for name, credit in (("anna", 10_000), ("ben", 300), ("carla", 5_000)):
        opened(bench, name)
        expiring = {"expires_at": bench.clock.now_ns + 86_400 * 10**9} if name == "carla" else {"never_expires": True}
        assert top_up(bench, credit, f"t-{name}", customer=name, **expiring).ok
        for n in range(2):
            with bench.op() as op:
                phones[f"{name}-{n}"] = bench.wallets.enroll_device(op, "shop-a", name, f"phone {n}", f"{name}-{n}")
    with bench.op() as op:
        assert bench.wallets.set_pin(op, "shop-a", "anna", HASH).ok
        assert bench.wallets.cancel_code_payment(op, "shop-a", "bar-2", "tx-cancelled", "changed mind").ok
    return bench, phones


def code(bench: WalletBench, phone: Any) -> str:
    return paycodes.make_code(phone.seed, phone.code_key, phone.number, paycodes.step_at(bench.clock.now_ns))


def payments(bench: WalletBench, phones: dict[str, Any]) -> list[CodePayment]:
    def paying(phone: str, amount: int, transaction: str, **fields: Any) -> CodePayment:
        shown = code(bench, phones[phone]) if phone in phones else phone
        tenant, terminal = str(fields.pop("tenant", "shop-a")), str(fields.pop("terminal", "bar-1"))
        return CodePayment(tenant=tenant, code=shown, amount=amount, terminal=terminal, transaction=transaction,
                           **fields)  # fmt: skip

    return [
        paying("anna-0", 450, "tx-1"),  # paid
        paying("anna-0", 100, "tx-2"),  # the same code again, in the same batch: used
        paying("ben-0", 500, "tx-3"),  # more than ben has
        paying("ben-1", 500, "tx-4", partial=True),  # what ben has, less the fee
        paying("28" + "0" * 16, 10, "tx-5"),  # no phone shows it
        paying("carla-0", 300, "tx-6", order_reference="order-6"),  # expiring credit: the general path
        paying("anna-1", 2_500, "tx-7"),  # above the PIN threshold without one
        paying("anna-1", 2_500, "tx-8", pin_ok=False),  # a wrong PIN: counted
        paying("carla-1", 2_500, "tx-9", pin_ok=True),  # a right one
        paying("anna-0", 450, "tx-1"),  # tx-1 again: its reply again
        paying("anna-0", 451, "tx-1"),  # tx-1 with another amount: the key was used for another request
        paying("anna-1", 10, ""),  # no transaction id
        paying("anna-1", 10, "tx-10", tenant="shop-z"),  # no such tenant
        paying("anna-1", 10, "tx-cancelled", terminal="bar-2"),  # the terminal cancelled it before
        paying("anna-1", 1_000, "tx-11", terminal="bar-3"),  # paid at another terminal
        paying("ben-0", 1, "tx-12", terminal="bar-3"),  # ben paid all he had: nothing left
        paying("carla-0", 4_000, "tx-13", terminal="bar-3"),  # carla-0's code paid tx-6 already
    ]


@pytest.mark.parametrize("engine_class", engines(), ids=lambda cls: cls.__name__)
def test_a_batch_answers_moves_and_records_as_the_same_payments_one_after_another(
    engine_class: type[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    one_by_one, phones = counter(engine_class, monkeypatch)
    batched, phones_too = counter(engine_class, monkeypatch)
    requests = payments(one_by_one, phones)
    assert requests == payments(batched, phones_too)  # the same phones, keys and codes on both benches
    journaled = len(one_by_one.journal), len(batched.journal)
    alone = []
    for request in requests:
        with one_by_one.op() as op:
            alone.append(one_by_one.wallets.pay_by_code(op, request))
    with batched.op() as op:
        together = batched.wallets.pay_by_code_many(op, requests)
    assert [r.result for r in together] == [
        WR.OK, WR.CODE_USED, WR.INSUFFICIENT_FUNDS, WR.OK, WR.CODE_INVALID, WR.OK, WR.PIN_REQUIRED, WR.PIN_INVALID,
        WR.OK, WR.OK, WR.IDEMPOTENCY_KEY_REUSED, WR.IDEMPOTENCY_KEY_INVALID, WR.TENANT_NOT_FOUND,
        WR.PAYMENT_CANCELLED, WR.OK, WR.INSUFFICIENT_FUNDS, WR.CODE_USED,
    ]  # fmt: skip
    assert together[9].replayed and together[9].payment_id == together[0].payment_id
    assert together == alone
    # the same state, and records that read back the same (the batch's in their compact form)
    assert batched.wallets.snapshot() == one_by_one.wallets.snapshot()
    records = [list(decode_records(b"".join(bench.journal[start:]))) for bench, start in
               zip((one_by_one, batched), journaled, strict=True)]  # fmt: skip
    assert records[1] == records[0]
    assert batched.engine.lookup_accounts(b"") == one_by_one.engine.lookup_accounts(b"")
    restarted = batched.restarted()
    assert restarted.snapshot() == batched.wallets.snapshot()


@pytest.mark.parametrize("engine_class", engines(), ids=lambda cls: cls.__name__)
def test_a_terminals_limit_counts_the_payments_decided_before_in_the_same_batch(
    engine_class: type[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    bench, phones = counter(engine_class, monkeypatch)
    requests = [
        CodePayment(tenant="shop-a", code=code(bench, phones[name]), amount=2_000, terminal="bar-9", transaction=name)
        for name in ("anna-0", "carla-0", "carla-1", "anna-1")
    ]
    with bench.op() as op:
        replies = bench.wallets.pay_by_code_many(op, requests)
    assert [r.result for r in replies] == [WR.OK, WR.OK, WR.OK, WR.LIMIT_EXCEEDED]
    assert "terminal_hour_amount" in replies[3].message and "60.00 EUR was already this hour" in replies[3].message


@pytest.mark.parametrize("engine_class", engines(), ids=lambda cls: cls.__name__)
def test_a_code_pays_once_across_batches_and_an_empty_batch_answers_nothing(
    engine_class: type[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    bench, phones = counter(engine_class, monkeypatch)
    shown = code(bench, phones["anna-0"])
    with bench.op() as op:
        assert bench.wallets.pay_by_code_many(op, []) == []
        first = bench.wallets.pay_by_code_many(op, [CodePayment(tenant="shop-a", code=shown, amount=100,
                                                                terminal="bar-1", transaction="a")])  # fmt: skip
    with bench.op() as op:
        second = bench.wallets.pay_by_code_many(op, [CodePayment(tenant="shop-a", code=shown, amount=100,
                                                                 terminal="bar-2", transaction="b")])  # fmt: skip
    assert (first[0].result, second[0].result) == (WR.OK, WR.CODE_USED)


def test_a_compact_record_reads_back_as_the_record_pay_by_code_writes() -> None:
    wallet, payment, device, at = 2**127 + 5, 2**126 + 16, 2**125 + 7, 1_800_000_000 * 10**9
    record = {
        "op": "payment_succeeded", "tenant": "shop-ä", "at": at, "wallet": wallet, "id": payment, "order": "o-1",
        "requested": 500, "paid": 480, "fee": 12, "device": f"{device:032x}", "terminal": "bar 1",
        "transaction": "tx-ü", "facts": [["code_used", device, 60_000_000, payment],
                                         ["spent_by_code", wallet, "shop-ä\x00bar 1", 500, at]],
    }  # fmt: skip
    compact = encode_code_payment_record("shop-ä", at, wallet, payment, "o-1", 500, 480, 12, device, 60_000_000,
                                         "bar 1", "tx-ü")  # fmt: skip
    assert RECORD_HEADER.unpack_from(compact)[0] & (CODE_PAYMENT_RECORD_FLAG | PAYMENT_RECORD_FLAG) == (
        CODE_PAYMENT_RECORD_FLAG
    )
    assert len(compact) < len(encode_record(record)) / 2
    assert list(decode_records(compact + encode_record({"op": "x"}) + compact)) == [record, {"op": "x"}, record]
    from_compact, from_json = WalletState(), WalletState()
    from_compact.apply_records(compact)
    from_json.apply_record(record)
    assert from_compact.snapshot() == from_json.snapshot() and from_compact.codes_used
    size = RECORD_HEADER.unpack_from(compact)[0] & (CODE_PAYMENT_RECORD_FLAG - 1)
    with pytest.raises(ValueError, match="do not add up"):
        list(decode_records(RECORD_HEADER.pack(CODE_PAYMENT_RECORD_FLAG | (size - 1)) + compact[4:-1]))
    with pytest.raises(ValueError, match="names no form"):
        list(decode_records(RECORD_HEADER.pack(CODE_PAYMENT_RECORD_FLAG | PAYMENT_RECORD_FLAG | size) + compact[4:]))


def test_the_batchs_fingerprint_is_the_one_pay_by_code_takes() -> None:
    for fields in (("28" + "1" * 16, 500, "tx-1", False, ""), ("x'\"\x00", 2**63 - 1, "ö" * 255, True, "EUR")):
        assert code_payment_fingerprint(*fields) == fingerprint("pay-code", *fields)
