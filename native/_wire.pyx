# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The wire codec in C: the contract of ledger.server._wire_py, with no Python object per transfer.

Requests are read from their protobuf wire bytes straight into the engine's
packed 128-byte transfer records, and replies written from the packed 24-byte
results straight into wire bytes. The wire format is read as the protobuf
library (upb) reads it; the twin's docstring says how, and both read in the
same order so that they report the same fault at the same byte. Limits and
the text of every error come from the shared Python modules at import.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport UINT32_MAX, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from ledger.engine._limits import BATCH_EVENTS_MAX as _BATCH_EVENTS_MAX
from ledger.engine._limits import TRANSFER_RESULT_SIZE as _TRANSFER_RESULT_SIZE
from ledger.engine._limits import TRANSFER_SIZE as _TRANSFER_SIZE
from ledger.server._convert import _check_count, _check_u16
from ledger.server._wire_errors import DEPTH_MAX as _DEPTH_MAX
from ledger.server._wire_errors import ENUM_VALUE_MAX as _ENUM_VALUE_MAX
from ledger.server._wire_errors import LENGTH_LIMIT as _LENGTH_LIMIT
from ledger.server._wire_errors import LENGTH_SIZE_MAX as _LENGTH_SIZE_MAX
from ledger.server._wire_errors import TAG_SIZE_MAX as _TAG_SIZE_MAX
from ledger.server._wire_errors import VARINT_SIZE_MAX as _VARINT_SIZE_MAX
from ledger.server._wire_errors import Malformed as _Malformed
from ledger.server._wire_errors import (
    malformed,
    result_code_error,
    result_size_error,
    results_size_error,
)

implementation = "cython"

cdef enum:
    WIRE_VARINT = 0
    WIRE_I64 = 1
    WIRE_LEN = 2
    WIRE_START_GROUP = 3
    WIRE_END_GROUP = 4
    WIRE_I32 = 5

# How each field number of ledger.v1.Transfer is read, and where it lands in the record.
cdef enum:
    KIND_UNKNOWN = 0
    KIND_UINT128 = 1
    KIND_U64 = 2
    KIND_U32 = 3
    KIND_CODE = 4
    KIND_FLAGS = 5

cdef enum:
    TRANSFER_FIELDS = 14
    CODE_OFFSET = 108
    RELEASE_GIL_BYTES_MIN = 16384

cdef uint8_t FIELD_KIND[TRANSFER_FIELDS]
cdef uint8_t FIELD_OFFSET[TRANSFER_FIELDS]
FIELD_KIND[:] = [KIND_UNKNOWN, KIND_UINT128, KIND_UINT128, KIND_UINT128, KIND_U64, KIND_UINT128, KIND_UINT128,
                 KIND_U64, KIND_U32, KIND_U32, KIND_U32, KIND_CODE, KIND_FLAGS, KIND_U64]
FIELD_OFFSET[:] = [0, 0, 16, 32, 48, 56, 72, 88, 96, 100, 104, 0, 0, 112]

cdef Py_ssize_t BATCH_EVENTS_MAX = _BATCH_EVENTS_MAX
cdef Py_ssize_t TRANSFER_SIZE = _TRANSFER_SIZE
cdef Py_ssize_t RESULT_SIZE = _TRANSFER_RESULT_SIZE
cdef int DEPTH_MAX = _DEPTH_MAX
cdef int TAG_SIZE_MAX = _TAG_SIZE_MAX
cdef int LENGTH_SIZE_MAX = _LENGTH_SIZE_MAX
cdef int VARINT_SIZE_MAX = _VARINT_SIZE_MAX
cdef uint64_t LENGTH_LIMIT = _LENGTH_LIMIT
cdef uint64_t ENUM_VALUE_MAX = _ENUM_VALUE_MAX

cdef int TRUNCATED_VARINT = _Malformed.TRUNCATED_VARINT
cdef int VARINT_TOO_LONG = _Malformed.VARINT_TOO_LONG
cdef int TRUNCATED_TAG = _Malformed.TRUNCATED_TAG
cdef int TAG_TOO_LONG = _Malformed.TAG_TOO_LONG
cdef int TAG_TOO_LARGE = _Malformed.TAG_TOO_LARGE
cdef int FIELD_NUMBER_ZERO = _Malformed.FIELD_NUMBER_ZERO
cdef int WIRE_TYPE_INVALID = _Malformed.WIRE_TYPE_INVALID
cdef int TRUNCATED_FIXED64 = _Malformed.TRUNCATED_FIXED64
cdef int TRUNCATED_FIXED32 = _Malformed.TRUNCATED_FIXED32
cdef int TRUNCATED_LENGTH = _Malformed.TRUNCATED_LENGTH
cdef int LENGTH_TOO_LONG = _Malformed.LENGTH_TOO_LONG
cdef int LENGTH_PAST_END = _Malformed.LENGTH_PAST_END
cdef int END_GROUP_UNMATCHED = _Malformed.END_GROUP_UNMATCHED
cdef int GROUP_NOT_CLOSED = _Malformed.GROUP_NOT_CLOSED
cdef int TOO_DEEP = _Malformed.TOO_DEEP


cdef struct reader_t:
    const uint8_t* data      # the request's first byte: offsets in errors count from here
    Py_ssize_t index         # the transfer being read, -1 for the request's own fields
    int fault                # 0, or the Malformed reason of the first fault
    Py_ssize_t fault_offset
    uint64_t fault_value


cdef struct too_wide_t:
    Py_ssize_t index         # the first transfer whose code or flags exceed 16 bits, -1 for none
    uint32_t value
    bint is_flags


cdef inline bint fail(reader_t* r, const uint8_t* at, int fault, uint64_t value) noexcept nogil:
    r.fault = fault
    r.fault_offset = at - r.data
    r.fault_value = value
    return False


cdef inline bint read_varint(reader_t* r, const uint8_t** p, const uint8_t* end, uint64_t* value,
                             int size_max, int truncated, int too_long) noexcept nogil:
    """A varint of at most `size_max` bytes; bits past 64 are dropped."""
    cdef const uint8_t* q = p[0]
    cdef uint64_t result = 0, byte
    cdef int i
    for i in range(size_max):
        if q >= end:
            return fail(r, p[0], truncated, 0)
        byte = q[0]
        q += 1
        result |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            value[0] = result
            p[0] = q
            return True
    return fail(r, p[0], too_long, 0)


cdef inline bint read_value(reader_t* r, const uint8_t** p, const uint8_t* end, uint64_t* value) noexcept nogil:
    return read_varint(r, p, end, value, VARINT_SIZE_MAX, TRUNCATED_VARINT, VARINT_TOO_LONG)


cdef inline bint read_tag(reader_t* r, const uint8_t** p, const uint8_t* end,
                          uint32_t* field, uint32_t* wire_type) noexcept nogil:
    cdef const uint8_t* start = p[0]
    cdef uint64_t value
    if start < end and start[0] < 0x80:
        field[0] = start[0] >> 3
        wire_type[0] = start[0] & 7
        p[0] = start + 1
        return True
    if not read_varint(r, p, end, &value, TAG_SIZE_MAX, TRUNCATED_TAG, TAG_TOO_LONG):
        return False
    if value > UINT32_MAX:
        return fail(r, start, TAG_TOO_LARGE, value)
    field[0] = <uint32_t>(value >> 3)
    wire_type[0] = <uint32_t>(value & 7)
    return True


cdef inline bint read_length(reader_t* r, const uint8_t** p, const uint8_t* end, Py_ssize_t* length) noexcept nogil:
    """The length of a length-delimited field, which must end by `end`."""
    cdef const uint8_t* start = p[0]
    cdef uint64_t value
    if not read_varint(r, p, end, &value, LENGTH_SIZE_MAX, TRUNCATED_LENGTH, LENGTH_TOO_LONG):
        return False
    if value >= LENGTH_LIMIT or value > <uint64_t>(end - p[0]):
        return fail(r, start, LENGTH_PAST_END, value)
    length[0] = <Py_ssize_t>value
    return True


cdef inline bint skip_unknown(reader_t* r, const uint8_t** p, const uint8_t* end, uint32_t field, uint32_t wire_type,
                              const uint8_t* tag_start, int depth) noexcept nogil:
    """Past a field its message does not know (or knows with another wire type); field number 0 is in none."""
    if field == 0:
        return fail(r, tag_start, FIELD_NUMBER_ZERO, 0)
    return skip_value(r, p, end, field, wire_type, tag_start, depth)


cdef bint skip_value(reader_t* r, const uint8_t** p, const uint8_t* end, uint32_t field, uint32_t wire_type,
                     const uint8_t* tag_start, int depth) noexcept nogil:
    """Past the value of a field not read, in a message or group nested `depth` deep."""
    cdef uint64_t value
    cdef Py_ssize_t length
    if wire_type == WIRE_VARINT:
        return read_value(r, p, end, &value)
    if wire_type == WIRE_I64:
        if end - p[0] < 8:
            return fail(r, p[0], TRUNCATED_FIXED64, 0)
        p[0] += 8
        return True
    if wire_type == WIRE_LEN:
        if not read_length(r, p, end, &length):
            return False
        p[0] += length
        return True
    if wire_type == WIRE_I32:
        if end - p[0] < 4:
            return fail(r, p[0], TRUNCATED_FIXED32, 0)
        p[0] += 4
        return True
    if wire_type == WIRE_START_GROUP:
        return skip_group(r, p, end, field, tag_start, depth + 1)
    return fail(r, tag_start, WIRE_TYPE_INVALID, wire_type)


cdef bint skip_group(reader_t* r, const uint8_t** p, const uint8_t* end, uint32_t number,
                     const uint8_t* start, int depth) noexcept nogil:
    """Past an unknown group (every field in it unknown) up to its end-group tag."""
    cdef const uint8_t* tag_start
    cdef uint32_t field, wire_type
    if depth > DEPTH_MAX:
        return fail(r, start, TOO_DEEP, 0)
    while p[0] < end:
        tag_start = p[0]
        if not read_tag(r, p, end, &field, &wire_type):
            return False
        if wire_type == WIRE_END_GROUP:
            if field != number:
                return fail(r, tag_start, END_GROUP_UNMATCHED, field)
            return True
        if not skip_value(r, p, end, field, wire_type, tag_start, depth):
            return False
    return fail(r, start, GROUP_NOT_CLOSED, number)


cdef bint read_uint128(reader_t* r, const uint8_t* p, const uint8_t* end, uint8_t* out) noexcept nogil:
    """Merge one ledger.v1.Uint128 (fixed64 lo = 1, hi = 2) into the 16 bytes at `out`."""
    cdef const uint8_t* tag_start
    cdef uint32_t field, wire_type
    while p < end:
        tag_start = p
        if not read_tag(r, &p, end, &field, &wire_type):
            return False
        if wire_type == WIRE_I64 and (field == 1 or field == 2):
            if end - p < 8:
                return fail(r, p, TRUNCATED_FIXED64, 0)
            memcpy(out + 8 * (field - 1), p, 8)
            p += 8
        elif wire_type == WIRE_END_GROUP:
            return fail(r, tag_start, END_GROUP_UNMATCHED, field)
        elif not skip_unknown(r, &p, end, field, wire_type, tag_start, 2):
            return False
    return True


cdef bint read_transfer(reader_t* r, const uint8_t* p, const uint8_t* end, uint8_t* record,
                        uint32_t* code_flags) noexcept nogil:
    """Merge one ledger.v1.Transfer into the record; code and flags (32 bits wide on the wire) go to code_flags."""
    cdef const uint8_t* tag_start
    cdef uint32_t field, wire_type, value32
    cdef uint8_t kind
    cdef uint64_t value
    cdef Py_ssize_t length
    while p < end:
        tag_start = p
        if not read_tag(r, &p, end, &field, &wire_type):
            return False
        kind = FIELD_KIND[field] if field < TRANSFER_FIELDS else KIND_UNKNOWN
        if kind == KIND_UINT128 and wire_type == WIRE_LEN:
            if not read_length(r, &p, end, &length):
                return False
            if not read_uint128(r, p, p + length, record + FIELD_OFFSET[field]):
                return False
            p += length
        elif kind >= KIND_U64 and wire_type == WIRE_VARINT:
            if p < end and p[0] < 0x80:
                value = p[0]
                p += 1
            elif not read_value(r, &p, end, &value):
                return False
            if kind == KIND_U64:
                memcpy(record + FIELD_OFFSET[field], &value, 8)
            else:
                value32 = <uint32_t>value
                if kind == KIND_U32:
                    memcpy(record + FIELD_OFFSET[field], &value32, 4)
                else:
                    code_flags[kind - KIND_CODE] = value32
        elif wire_type == WIRE_END_GROUP:
            return fail(r, tag_start, END_GROUP_UNMATCHED, field)
        elif not skip_unknown(r, &p, end, field, wire_type, tag_start, 1):
            return False
    return True


cdef inline void finish_transfer(uint8_t* record, const uint32_t* code_flags, Py_ssize_t index,
                                 too_wide_t* too_wide) noexcept nogil:
    """Write code and flags into the record; remember the first transfer with one too wide for it."""
    cdef uint16_t[2] pair
    pair[0] = <uint16_t>code_flags[0]
    pair[1] = <uint16_t>code_flags[1]
    memcpy(record + CODE_OFFSET, pair, 4)
    if too_wide.index >= 0:
        return
    if code_flags[0] > 0xFFFF:
        too_wide.index, too_wide.value, too_wide.is_flags = index, code_flags[0], False
    elif code_flags[1] > 0xFFFF:
        too_wide.index, too_wide.value, too_wide.is_flags = index, code_flags[1], True


cdef bint count_transfers(reader_t* r, const uint8_t* p, const uint8_t* end, Py_ssize_t* count) noexcept nogil:
    """Read the request's own fields, the transfers skipped: how many transfers there are."""
    cdef const uint8_t* tag_start
    cdef uint32_t field, wire_type
    count[0] = 0
    while p < end:
        tag_start = p
        if not read_tag(r, &p, end, &field, &wire_type):
            return False
        if wire_type == WIRE_END_GROUP:
            return fail(r, tag_start, END_GROUP_UNMATCHED, field)
        if field == 1 and wire_type == WIRE_LEN:
            count[0] += 1
        if not skip_unknown(r, &p, end, field, wire_type, tag_start, 0):
            return False
    return True


cdef bint read_transfers(reader_t* r, const uint8_t* p, const uint8_t* end, uint8_t* records,
                         too_wide_t* too_wide) noexcept nogil:
    """Every transfer of a request whose own fields count_transfers has read (and found well formed), in turn."""
    cdef const uint8_t* tag_start
    cdef uint32_t field, wire_type
    cdef uint32_t[2] code_flags
    cdef Py_ssize_t length
    while p < end:
        tag_start = p
        if not read_tag(r, &p, end, &field, &wire_type):
            return False
        if field == 1 and wire_type == WIRE_LEN:
            if not read_length(r, &p, end, &length):
                return False
            r.index += 1
            code_flags[0] = code_flags[1] = 0
            if not read_transfer(r, p, p + length, records, code_flags):
                return False
            finish_transfer(records, code_flags, r.index, too_wide)
            records += TRANSFER_SIZE
            p += length
        elif not skip_unknown(r, &p, end, field, wire_type, tag_start, 0):
            return False
    r.index = -1
    return True


cdef bint count_transfers_releasing(reader_t* r, const uint8_t* p, const uint8_t* end, Py_ssize_t* count,
                                   bint release):
    if release:
        with nogil:
            return count_transfers(r, p, end, count)
    return count_transfers(r, p, end, count)


cdef bint read_transfers_releasing(reader_t* r, const uint8_t* p, const uint8_t* end, uint8_t* records,
                                   too_wide_t* too_wide, bint release):
    if release:
        with nogil:
            return read_transfers(r, p, end, records, too_wide)
    return read_transfers(r, p, end, records, too_wide)


cdef object fault_error(const reader_t* r, str request, str transfer):
    where = request if r.index < 0 else transfer.format(index=r.index)
    return malformed(where, r.fault_offset, r.fault, r.fault_value)


cdef inline const uint8_t* first_byte(const uint8_t[::1] view) noexcept:
    return &view[0] if view.shape[0] else <const uint8_t*>b""


def decode_create_transfers(data):
    """The packed transfer records of a ledger.v1.CreateTransfersRequest's wire bytes."""
    cdef const uint8_t[::1] view
    cdef const uint8_t* start
    cdef Py_ssize_t size, count
    cdef reader_t r
    cdef too_wide_t too_wide
    if PyBytes_CheckExact(data):  # what gRPC hands over: read in place, without taking a buffer view
        start, size = <const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)
    else:
        view = data
        start, size = first_byte(view), view.shape[0]
    # A small request is read in less time than handing the GIL to another thread and back takes.
    cdef bint release = size >= RELEASE_GIL_BYTES_MIN
    r.data, r.index, r.fault = start, -1, 0
    too_wide.index = -1
    if not count_transfers_releasing(&r, start, start + size, &count, release):
        raise fault_error(&r, "CreateTransfersRequest", "transfers[{index}]")
    if count > BATCH_EVENTS_MAX:
        _check_count(count, "transfers")
    out = PyBytes_FromStringAndSize(NULL, count * TRANSFER_SIZE)
    cdef uint8_t* records = <uint8_t*>PyBytes_AS_STRING(out)
    memset(records, 0, count * TRANSFER_SIZE)
    if not read_transfers_releasing(&r, start, start + size, records, &too_wide, release):
        raise fault_error(&r, "CreateTransfersRequest", "transfers[{index}]")
    if too_wide.index >= 0:
        _check_u16(too_wide.value, "transfers.flags" if too_wide.is_flags else "transfers.code", too_wide.index)
    return out


def decode_transfer_stream_request(data):
    """The one packed transfer record of a ledger.v1.TransferStreamRequest's wire bytes (zeros if it has none)."""
    cdef const uint8_t[::1] view
    cdef const uint8_t* p
    cdef const uint8_t* end
    cdef reader_t r
    cdef too_wide_t too_wide
    cdef const uint8_t* tag_start
    cdef uint32_t field, wire_type
    cdef uint32_t[2] code_flags
    cdef Py_ssize_t length
    if PyBytes_CheckExact(data):
        p, end = <const uint8_t*>PyBytes_AS_STRING(data), <const uint8_t*>PyBytes_AS_STRING(data) + PyBytes_GET_SIZE(data)
    else:
        view = data
        p = first_byte(view)
        end = p + view.shape[0]
    r.data, r.index, r.fault = p, -1, 0
    too_wide.index = -1
    code_flags[0] = code_flags[1] = 0
    out = PyBytes_FromStringAndSize(NULL, TRANSFER_SIZE)
    cdef uint8_t* record = <uint8_t*>PyBytes_AS_STRING(out)
    memset(record, 0, TRANSFER_SIZE)
    while p < end:
        tag_start = p
        if not read_tag(&r, &p, end, &field, &wire_type):
            raise fault_error(&r, "TransferStreamRequest", "transfer")
        if field == 1 and wire_type == WIRE_LEN:
            if not read_length(&r, &p, end, &length):
                raise fault_error(&r, "TransferStreamRequest", "transfer")
            r.index = 0
            if not read_transfer(&r, p, p + length, record, code_flags):
                raise fault_error(&r, "TransferStreamRequest", "transfer")
            r.index = -1
            p += length
        elif wire_type == WIRE_END_GROUP:
            fail(&r, tag_start, END_GROUP_UNMATCHED, field)
            raise fault_error(&r, "TransferStreamRequest", "transfer")
        elif not skip_unknown(&r, &p, end, field, wire_type, tag_start, 0):
            raise fault_error(&r, "TransferStreamRequest", "transfer")
    finish_transfer(record, code_flags, 0, &too_wide)
    if too_wide.index >= 0:
        _check_u16(too_wide.value, "transfers.flags" if too_wide.is_flags else "transfers.code", 0)
    return out


cdef inline int varint_size(uint64_t value) noexcept nogil:
    cdef int size = 1
    while value > 0x7F:
        value >>= 7
        size += 1
    return size


cdef inline uint8_t* write_varint(uint8_t* p, uint64_t value) noexcept nogil:
    while value > 0x7F:
        p[0] = <uint8_t>(value & 0x7F) | 0x80
        value >>= 7
        p += 1
    p[0] = <uint8_t>value
    return p + 1


cdef inline int result_body_size(uint32_t code, uint64_t timestamp, uint64_t amount) noexcept nogil:
    """The size of a ledger.v1.CreateTransfersResult as protobuf writes it: zero fields left out."""
    return ((1 + varint_size(code) if code else 0) + (1 + varint_size(timestamp) if timestamp else 0)
            + (1 + varint_size(amount) if amount else 0))


cdef inline uint8_t* write_result(uint8_t* p, const uint8_t* packed) noexcept nogil:
    """One results element (field 1 of the reply): its tag, its length and its fields in order."""
    cdef uint32_t code
    cdef uint64_t timestamp, amount
    memcpy(&code, packed, 4)
    memcpy(&timestamp, packed + 8, 8)
    memcpy(&amount, packed + 16, 8)
    p[0] = 1 << 3 | WIRE_LEN
    p = write_varint(p + 1, result_body_size(code, timestamp, amount))
    if code:
        p[0] = 1 << 3 | WIRE_VARINT
        p = write_varint(p + 1, code)
    if timestamp:
        p[0] = 2 << 3 | WIRE_VARINT
        p = write_varint(p + 1, timestamp)
    if amount:
        p[0] = 3 << 3 | WIRE_VARINT
        p = write_varint(p + 1, amount)
    return p


cdef Py_ssize_t results_wire_size(const uint8_t* packed, Py_ssize_t count, Py_ssize_t* bad_index,
                                  uint32_t* bad_code) noexcept nogil:
    """The size of the results on the wire, or -1 with the first result code no enum can hold and its index."""
    cdef Py_ssize_t i, total = 0
    cdef uint32_t code
    cdef uint64_t timestamp, amount
    cdef int body
    for i in range(count):
        memcpy(&code, packed, 4)
        memcpy(&timestamp, packed + 8, 8)
        memcpy(&amount, packed + 16, 8)
        if code > ENUM_VALUE_MAX:
            bad_index[0] = i
            bad_code[0] = code
            return -1
        body = result_body_size(code, timestamp, amount)
        total += 1 + varint_size(body) + body
        packed += RESULT_SIZE
    return total


cdef void write_results(uint8_t* p, const uint8_t* packed, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        p = write_result(p, packed + i * RESULT_SIZE)


def encode_create_transfers_response(results):
    """The wire bytes of the ledger.v1.CreateTransfersResponse carrying these packed transfer results."""
    cdef const uint8_t[::1] view
    cdef const uint8_t* packed
    cdef Py_ssize_t size, total, bad_index = -1
    cdef uint32_t bad_code = 0
    if PyBytes_CheckExact(results):
        packed, size = <const uint8_t*>PyBytes_AS_STRING(results), PyBytes_GET_SIZE(results)
    else:
        view = results
        packed, size = first_byte(view), view.shape[0]
    if size % RESULT_SIZE:
        raise results_size_error(size)
    cdef Py_ssize_t count = size // RESULT_SIZE
    total = results_wire_size(packed, count, &bad_index, &bad_code)
    if total < 0:
        raise result_code_error(f"results[{bad_index}].result", bad_code)
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(out)
    if size >= RELEASE_GIL_BYTES_MIN:
        with nogil:
            write_results(p, packed, count)
    else:
        write_results(p, packed, count)
    return out


def encode_transfer_stream_response(result):
    """The wire bytes of the ledger.v1.TransferStreamResponse carrying this one packed transfer result."""
    cdef const uint8_t[::1] view = result
    cdef Py_ssize_t size = view.shape[0], bad_index = -1
    cdef uint32_t bad_code = 0
    if size != RESULT_SIZE:
        raise result_size_error(size)
    cdef Py_ssize_t total = results_wire_size(&view[0], 1, &bad_index, &bad_code)
    if total < 0:
        raise result_code_error("result.result", bad_code)
    out = PyBytes_FromStringAndSize(NULL, total)
    write_result(<uint8_t*>PyBytes_AS_STRING(out), &view[0])
    return out
