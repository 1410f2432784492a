# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""A wallet payment's journal entries in C: the contract of ledger.wallet._payments_py.

`pack_payment` appends a payment's chain of transfer records (its payment and, if any, its fee, linked) and
its compact domain record to two buffers, as the twin does with struct; a test feeds both the same payments.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from ledger.records.codes import TransferFlags as _TransferFlags
from ledger.wallet._codes import TransferCode as _TransferCode
from ledger.wallet._state import PAYMENT_RECORD_FLAG as _PAYMENT_RECORD_FLAG

implementation = "cython"

cdef extern from "Python.h":
    ctypedef struct PyLongObject:
        pass
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL
    int _PyLong_AsByteArray(PyLongObject* value, unsigned char* bytes, size_t n, int little_endian,
                            int is_signed) except -1
    bint PyLong_Check(object value)
    unsigned long long PyLong_AsUnsignedLongLong(object value) except? <unsigned long long>-1
    long long PyLong_AsLongLong(object value) except? -1

cdef enum:
    TRANSFER_SIZE = 128
    RECORD_HEAD_SIZE = 4 + 68
    TEXT_SIZE_MAX = 65535

cdef uint16_t PAYMENT = int(_TransferCode.PAYMENT)
cdef uint16_t PAYMENT_FEE = int(_TransferCode.PAYMENT_FEE)
cdef uint16_t LINKED = int(_TransferFlags.LINKED)
cdef uint32_t RECORD_FLAG = _PAYMENT_RECORD_FLAG


cdef inline void put_id(uint8_t* at, object value) except *:
    """A 128-bit id, little-endian (OverflowError past 128 bits or below zero)."""
    if not PyLong_Check(value):
        raise TypeError(f"an id must be an int, not {type(value).__name__}")
    _PyLong_AsByteArray(<PyLongObject*>value, at, 16, 1, 0)


cdef inline void put_u64(uint8_t* at, uint64_t value) noexcept nogil:
    memcpy(at, &value, 8)


cdef inline void put_transfer(uint8_t* t, object transfer_id, object debit, object credit, uint64_t amount,
                              object user_data_128, uint64_t user_data_64, uint32_t user_data_32, uint32_t ledger,
                              uint16_t code, uint16_t flags) except *:
    memset(t, 0, TRANSFER_SIZE)
    put_id(t, transfer_id)
    put_id(t + 16, debit)
    put_id(t + 32, credit)
    put_u64(t + 48, amount)
    put_id(t + 72, user_data_128)
    put_u64(t + 88, user_data_64)
    memcpy(t + 96, &user_data_32, 4)
    memcpy(t + 104, &ledger, 4)
    memcpy(t + 108, &code, 2)
    memcpy(t + 110, &flags, 2)


cdef inline uint8_t* grow(bytearray buffer, Py_ssize_t size) except NULL:
    cdef Py_ssize_t at = PyByteArray_GET_SIZE(buffer)
    PyByteArray_Resize(buffer, at + size)
    return <uint8_t*>PyByteArray_AS_STRING(buffer) + at


def pack_payment(bytearray chains, bytearray records, key_id, fee_id, wallet, revenue, fees, uint32_t ledger,
                 paid, fee, fp, balance, requested, bint partial, str tenant, str order, at):
    """Append the payment's chain to `chains` and its compact record to `records`; the chain's transfer count."""
    cdef uint64_t paid_ = PyLong_AsUnsignedLongLong(paid)
    cdef uint64_t fee_ = PyLong_AsUnsignedLongLong(fee)
    cdef uint64_t requested_ = PyLong_AsUnsignedLongLong(requested)
    cdef uint64_t fp_ = PyLong_AsUnsignedLongLong(fp)
    cdef uint64_t balance_ = PyLong_AsUnsignedLongLong(balance)
    cdef uint64_t at_ = PyLong_AsUnsignedLongLong(at)
    cdef Py_ssize_t tenant_size, order_size
    cdef const char* tenant_text = PyUnicode_AsUTF8AndSize(tenant, &tenant_size)
    cdef const char* order_text = PyUnicode_AsUTF8AndSize(order, &order_size)
    cdef int count = 2 if fee_ else 1
    cdef uint8_t[16] user_data
    cdef uint8_t* t
    cdef uint8_t* r
    cdef uint32_t size
    cdef int64_t signed_value
    cdef uint16_t text_size
    if tenant_size > TEXT_SIZE_MAX or order_size > TEXT_SIZE_MAX:
        raise OverflowError("a payment record's tenant or order reference is past 65,535 bytes")
    if requested_ >> 63 or paid_ >> 63 or fee_ >> 63:
        raise OverflowError("a payment's amounts are past int64")
    t = grow(chains, count * TRANSFER_SIZE)
    put_transfer(t, key_id, wallet, revenue, paid_, 0, requested_, partial, ledger, PAYMENT, LINKED if fee_ else 0)
    put_u64(t + 72, fp_)
    put_u64(t + 80, balance_)
    if fee_:
        put_transfer(t + TRANSFER_SIZE, fee_id, wallet, fees, fee_, key_id, 0, 0, ledger, PAYMENT_FEE, 0)
    size = 68 + <uint32_t>(tenant_size + order_size)
    r = grow(records, 4 + size)
    size |= RECORD_FLAG
    memcpy(r, &size, 4)
    put_u64(r + 4, at_)
    put_id(r + 12, wallet)
    put_id(r + 28, key_id)
    put_u64(r + 44, requested_)
    put_u64(r + 52, paid_)
    put_u64(r + 60, fee_)
    text_size = <uint16_t>tenant_size
    memcpy(r + 68, &text_size, 2)
    text_size = <uint16_t>order_size
    memcpy(r + 70, &text_size, 2)
    memcpy(r + 72, tenant_text, tenant_size)
    memcpy(r + 72 + tenant_size, order_text, order_size)
    return count
