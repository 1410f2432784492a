# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The wire codec in C: the contract of ledger.server._wire_py, with no Python object per record.

Requests are read from their protobuf wire bytes straight into the engine's
packed records (accounts, transfers, ids), and replies written from packed
records (accounts, transfers, results) straight into wire bytes. The wire
format is read as the protobuf library (upb) reads it; the twin's docstring
says how, and both read in the same order so that they report the same
fault at the same byte. One reader and one writer serve every message: which
field lands where is a C copy, made at import, of the tables in
ledger.server._wire_schema. Limits and the text of every error come from the
shared Python modules too.
"""

from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
    _PyBytes_Resize,
)
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF
from libc.stdint cimport UINT32_MAX, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from ledger.records.limits import BATCH_EVENTS_MAX as _BATCH_EVENTS_MAX
from ledger.server import _wire_schema as _schema
from ledger.server._convert import _check_count, _check_u16
from ledger.server._wire_errors import DEPTH_MAX as _DEPTH_MAX
from ledger.server._wire_errors import ENUM_VALUE_MAX as _ENUM_VALUE_MAX
from ledger.server._wire_errors import LENGTH_LIMIT as _LENGTH_LIMIT
from ledger.server._wire_errors import LENGTH_SIZE_MAX as _LENGTH_SIZE_MAX
from ledger.server._wire_errors import TAG_SIZE_MAX as _TAG_SIZE_MAX
from ledger.server._wire_errors import VARINT_SIZE_MAX as _VARINT_SIZE_MAX
from ledger.server._wire_errors import Malformed as _Malformed
from ledger.server._wire_errors import malformed, records_error, result_error
from ledger.server._wire_schema import Kind as _Kind

implementation = "cython"

cdef enum:
    WIRE_VARINT = 0
    WIRE_I64 = 1
    WIRE_LEN = 2
    WIRE_START_GROUP = 3
    WIRE_END_GROUP = 4
    WIRE_I32 = 5
    WIRE_NONE = 8            # what no field is read with: the numbers a message does not know

cdef enum:
    FIELDS_MAX = 16          # field numbers stay below it (one-byte tags; checked as the tables load)
    BODY_SIZE_MAX = 255      # the most a message written here takes (checked as the tables load)
    RELEASE_GIL_BYTES_MIN = 16384

cdef extern from "Python.h":
    # A new reference, or NULL with the error set; its own name, as Cython declares it to give an object.
    PyObject* new_bytes "PyBytes_FromStringAndSize"(const char* data, Py_ssize_t size) except NULL


cdef struct message_t:
    uint8_t wire_type[FIELDS_MAX]   # by field number: the wire type it is read with, WIRE_NONE if unknown
    uint8_t kind[FIELDS_MAX]        # by field number: its ledger.server._wire_schema.Kind
    uint16_t offset[FIELDS_MAX]     # by field number: where its value is in the record
    uint8_t numbers[FIELDS_MAX]     # its field numbers in order, the first `count` of them
    int count
    Py_ssize_t size                 # of its record
    Py_ssize_t element_size_max     # the most one element of field 1 takes when written from a record
    Py_ssize_t code_offset          # of its CODE field, -1 for none
    Py_ssize_t flags_offset         # of its FLAGS field, -1 for none


cdef message_t UINT128, TRANSFER, ACCOUNT, TRANSFER_RESULT, ACCOUNT_RESULT

# ledger.server._wire_schema.Kind as constants the C compiler can branch on; checked against it at import.
cdef enum:
    KIND_UNKNOWN = 0
    KIND_UINT128 = 1
    KIND_U64 = 2
    KIND_U32 = 3
    KIND_CODE = 4
    KIND_FLAGS = 5
    KIND_FIXED64 = 6
    KIND_RESULT = 7

_KINDS = {"UNKNOWN": KIND_UNKNOWN, "UINT128": KIND_UINT128, "U64": KIND_U64, "U32": KIND_U32, "CODE": KIND_CODE,
          "FLAGS": KIND_FLAGS, "FIXED64": KIND_FIXED64, "RESULT": KIND_RESULT}
if _KINDS != {kind.name: kind.value for kind in _Kind}:
    raise ImportError(f"the codec's kinds {_KINDS} are not ledger.server._wire_schema.Kind")


VALUE_SIZE_WRITTEN_MAX = {
    _Kind.UINT128: 1 + 2 * 9,  # its length, each half's tag and 8 bytes
    _Kind.U64: 10,
    _Kind.U32: 5,
    _Kind.CODE: 3,             # a varint of 16 bits
    _Kind.FLAGS: 3,
    _Kind.FIXED64: 8,
    _Kind.RESULT: 5,           # at most 2^31 - 1: larger codes are refused
}
"""The most each kind of field takes on the wire after its tag, as written from a record."""


cdef void load_message(message_t* m, message) except *:
    """The C table of one message of ledger.server._wire_schema."""
    memset(m, 0, sizeof(message_t))
    memset(m.wire_type, WIRE_NONE, FIELDS_MAX)
    for number, field in message.fields.items():
        if not 0 < number < FIELDS_MAX:
            raise ImportError(f"{message.name}.{field.name}: field number {number} is past the codec's table")
        m.wire_type[number] = _schema.WIRE_TYPE[field.kind]
        m.kind[number] = field.kind
        m.offset[number] = field.offset
        m.numbers[m.count] = number
        m.count += 1
    m.size = message.size
    body_size_max = sum(1 + VALUE_SIZE_WRITTEN_MAX[field.kind] for field in message.fields.values())
    if body_size_max > BODY_SIZE_MAX:
        raise ImportError(f"{message.name}: up to {body_size_max} bytes written, past BODY_SIZE_MAX")
    m.element_size_max = 1 + varint_size(body_size_max) + body_size_max
    m.code_offset = message.offset_of(_Kind.CODE)
    m.flags_offset = message.offset_of(_Kind.FLAGS)


cdef const message_t* table_of(message) except NULL:
    """The C table of a message of ledger.server._wire_schema."""
    if message is _schema.TRANSFER:
        return &TRANSFER
    if message is _schema.ACCOUNT:
        return &ACCOUNT
    if message is _schema.UINT128:
        return &UINT128
    if message is _schema.TRANSFER_RESULT:
        return &TRANSFER_RESULT
    if message is _schema.ACCOUNT_RESULT:
        return &ACCOUNT_RESULT
    raise LookupError(f"{message.name}: no C table")


cdef class Repeated:
    """A ledger.server._wire_schema.Repeated with its element's C table, read without a Python lookup per call."""

    cdef const message_t* element
    cdef bint single
    cdef readonly object schema

    def __cinit__(self, schema):
        self.element = table_of(schema.element)
        self.single = schema.single
        self.schema = schema


load_message(&UINT128, _schema.UINT128)
load_message(&TRANSFER, _schema.TRANSFER)
load_message(&ACCOUNT, _schema.ACCOUNT)
load_message(&TRANSFER_RESULT, _schema.TRANSFER_RESULT)
load_message(&ACCOUNT_RESULT, _schema.ACCOUNT_RESULT)

# Fixed64 fields are a Uint128's alone: within a message, read_uint128 and write_uint128 read and write them.
for _message in (_schema.TRANSFER, _schema.ACCOUNT, _schema.TRANSFER_RESULT, _schema.ACCOUNT_RESULT):
    if any(field.kind == _Kind.FIXED64 for field in _message.fields.values()):
        raise ImportError(f"{_message.name}: the codec knows fixed64 fields only inside a Uint128")

cdef Repeated CREATE_TRANSFERS_REQUEST = Repeated(_schema.CREATE_TRANSFERS_REQUEST)
cdef Repeated CREATE_ACCOUNTS_REQUEST = Repeated(_schema.CREATE_ACCOUNTS_REQUEST)
cdef Repeated LOOKUP_REQUEST = Repeated(_schema.LOOKUP_REQUEST)
cdef Repeated TRANSFERS_RESPONSE = Repeated(_schema.TRANSFERS_RESPONSE)
cdef Repeated ACCOUNTS_RESPONSE = Repeated(_schema.ACCOUNTS_RESPONSE)
cdef Repeated CREATE_TRANSFERS_RESPONSE = Repeated(_schema.CREATE_TRANSFERS_RESPONSE)
cdef Repeated CREATE_ACCOUNTS_RESPONSE = Repeated(_schema.CREATE_ACCOUNTS_RESPONSE)
cdef Repeated TRANSFER_STREAM_RESPONSE = Repeated(_schema.TRANSFER_STREAM_RESPONSE)

cdef Py_ssize_t BATCH_EVENTS_MAX = _BATCH_EVENTS_MAX
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
    Py_ssize_t index         # the element being read, -1 for the request's own fields
    int fault                # 0, or the Malformed reason of the first fault
    Py_ssize_t fault_offset
    uint64_t fault_value


cdef struct too_wide_t:
    Py_ssize_t index         # the first element whose code or flags exceed 16 bits, -1 for none
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


cdef bint read_message(reader_t* r, const message_t* m, const uint8_t* p, const uint8_t* end, uint8_t* record,
                       uint32_t* wide, int depth) noexcept nogil:
    """Merge one message, nested `depth` deep, into its record; code and flags (32 bits on the wire) go to `wide`."""
    cdef const uint8_t* tag_start
    cdef uint32_t field, wire_type, value32
    cdef uint8_t kind
    cdef uint64_t value
    cdef Py_ssize_t length
    while p < end:
        tag_start = p
        if not read_tag(r, &p, end, &field, &wire_type):
            return False
        if field < FIELDS_MAX and wire_type == m.wire_type[field]:
            kind = m.kind[field]
            if wire_type == WIRE_VARINT:
                if p < end and p[0] < 0x80:
                    value = p[0]
                    p += 1
                elif not read_value(r, &p, end, &value):
                    return False
                value32 = <uint32_t>value
                if kind == KIND_U64:
                    memcpy(record + m.offset[field], &value, 8)
                elif kind == KIND_CODE:
                    wide[0] = value32
                elif kind == KIND_FLAGS:
                    wide[1] = value32
                else:
                    memcpy(record + m.offset[field], &value32, 4)
            elif wire_type == WIRE_LEN:  # a Uint128, the only sub-message these messages have
                if not read_length(r, &p, end, &length):
                    return False
                if not read_uint128(r, p, p + length, record + m.offset[field], depth + 1):
                    return False
                p += length
            else:  # a fixed64: a half of a Uint128 read as a request's element (LookupRequest.ids)
                if end - p < 8:
                    return fail(r, p, TRUNCATED_FIXED64, 0)
                memcpy(record + m.offset[field], p, 8)
                p += 8
        elif wire_type == WIRE_END_GROUP:
            return fail(r, tag_start, END_GROUP_UNMATCHED, field)
        elif not skip_unknown(r, &p, end, field, wire_type, tag_start, depth):
            return False
    return True


cdef bint read_uint128(reader_t* r, const uint8_t* p, const uint8_t* end, uint8_t* out, int depth) noexcept nogil:
    """Merge one ledger.v1.Uint128, nested `depth` deep, into the 16 bytes at `out` (lo, then hi).

    Not through read_message and its table: a transfer has ten of these fields (more than all its others), and
    reading them in a loop of their own keeps CreateTransfers decoding as fast as before the tables (through the
    table it took about 10 % longer). write_uint128 is the writer's counterpart.
    """
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
        elif not skip_unknown(r, &p, end, field, wire_type, tag_start, depth):
            return False
    return True


cdef inline void finish_record(const message_t* m, uint8_t* record, const uint32_t* wide, Py_ssize_t index,
                               too_wide_t* too_wide) noexcept nogil:
    """Write code and flags into the record; remember the first element with one too wide for it."""
    cdef uint16_t narrow
    if m.code_offset < 0:
        return
    narrow = <uint16_t>wide[0]
    memcpy(record + m.code_offset, &narrow, 2)
    narrow = <uint16_t>wide[1]
    memcpy(record + m.flags_offset, &narrow, 2)
    if too_wide.index >= 0:
        return
    if wide[0] > 0xFFFF:
        too_wide.index, too_wide.value, too_wide.is_flags = index, wide[0], False
    elif wide[1] > 0xFFFF:
        too_wide.index, too_wide.value, too_wide.is_flags = index, wide[1], True


cdef bint count_elements(reader_t* r, const uint8_t* p, const uint8_t* end, Py_ssize_t* count) noexcept nogil:
    """Read the request's own fields, its elements (field 1) skipped: how many elements there are."""
    cdef const uint8_t* tag_start
    cdef uint32_t field, wire_type
    cdef Py_ssize_t counted = 0, length
    while p < end:
        # An element with a one-byte length (every id, and all but the largest transfers and accounts) is counted
        # and passed at once: the most ids a message can hold (2 bytes each) are refused in a few milliseconds.
        if p[0] == (1 << 3 | WIRE_LEN) and end - p >= 2:
            length = p[1]
            if length < 0x80 and length <= end - p - 2:
                counted += 1
                p += 2 + length
                continue
        tag_start = p
        if not read_tag(r, &p, end, &field, &wire_type):
            return False
        if wire_type == WIRE_END_GROUP:
            return fail(r, tag_start, END_GROUP_UNMATCHED, field)
        if field == 1 and wire_type == WIRE_LEN:
            counted += 1
        if not skip_unknown(r, &p, end, field, wire_type, tag_start, 0):
            return False
    count[0] = counted
    return True


cdef bint read_elements(reader_t* r, const message_t* m, const uint8_t* p, const uint8_t* end, uint8_t* records,
                        too_wide_t* too_wide) noexcept nogil:
    """Every element of a request whose own fields count_elements has read (and found well formed), in turn."""
    cdef const uint8_t* tag_start
    cdef uint32_t field, wire_type
    cdef uint32_t[2] wide
    cdef Py_ssize_t length
    while p < end:
        tag_start = p
        if not read_tag(r, &p, end, &field, &wire_type):
            return False
        if field == 1 and wire_type == WIRE_LEN:
            if not read_length(r, &p, end, &length):
                return False
            r.index += 1
            wide[0] = wide[1] = 0
            if not read_message(r, m, p, p + length, records, wide, 1):
                return False
            finish_record(m, records, wide, r.index, too_wide)
            records += m.size
            p += length
        elif not skip_unknown(r, &p, end, field, wire_type, tag_start, 0):
            return False
    r.index = -1
    return True


cdef bint count_elements_releasing(reader_t* r, const uint8_t* p, const uint8_t* end, Py_ssize_t* count,
                                   bint release):
    if release:
        with nogil:
            return count_elements(r, p, end, count)
    return count_elements(r, p, end, count)


cdef bint read_elements_releasing(reader_t* r, const message_t* m, const uint8_t* p, const uint8_t* end,
                                  uint8_t* records, too_wide_t* too_wide, bint release):
    if release:
        with nogil:
            return read_elements(r, m, p, end, records, too_wide)
    return read_elements(r, m, p, end, records, too_wide)


cdef object fault_error(const reader_t* r, str message, str element):
    where = message if r.index < 0 else element.format(index=r.index)
    return malformed(where, r.fault_offset, r.fault, r.fault_value)


cdef object check_too_wide(const too_wide_t* too_wide, str field):
    _check_u16(too_wide.value, f"{field}.flags" if too_wide.is_flags else f"{field}.code", too_wide.index)


cdef inline object steal(PyObject* reference):
    """An object from a reference this function takes over (as C code hands them back)."""
    result = <object>reference
    Py_DECREF(result)
    return result


cdef inline const uint8_t* first_byte(const uint8_t[::1] view) noexcept:
    return &view[0] if view.shape[0] else <const uint8_t*>b""


cdef object decode(data, Repeated request):
    """The packed records of the elements of a request whose field 1 is `repeated <element> <field>`."""
    cdef const message_t* m = request.element
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
    if not count_elements_releasing(&r, start, start + size, &count, release):
        raise fault_error(&r, request.schema.message, request.schema.field + "[{index}]")
    if count > BATCH_EVENTS_MAX:
        _check_count(count, request.schema.field)
    out = PyBytes_FromStringAndSize(NULL, count * m.size)
    cdef uint8_t* records = <uint8_t*>PyBytes_AS_STRING(out)
    memset(records, 0, count * m.size)
    if not read_elements_releasing(&r, m, start, start + size, records, &too_wide, release):
        raise fault_error(&r, request.schema.message, request.schema.field + "[{index}]")
    if too_wide.index >= 0:
        check_too_wide(&too_wide, request.schema.field)
    return out


def decode_create_transfers(data):
    """The packed transfer records of a ledger.v1.CreateTransfersRequest's wire bytes."""
    return decode(data, CREATE_TRANSFERS_REQUEST)


def decode_create_accounts(data):
    """The packed account records of a ledger.v1.CreateAccountsRequest's wire bytes."""
    return decode(data, CREATE_ACCOUNTS_REQUEST)


def decode_lookup_request(data):
    """The packed 16-byte ids of a ledger.v1.LookupRequest's wire bytes."""
    return decode(data, LOOKUP_REQUEST)


def decode_transfer_stream_request(data):
    """The one packed transfer record of a ledger.v1.TransferStreamRequest's wire bytes (zeros if it has none)."""
    cdef const uint8_t[::1] view
    cdef const uint8_t* p
    cdef const uint8_t* end
    cdef reader_t r
    cdef too_wide_t too_wide
    cdef const uint8_t* tag_start
    cdef uint32_t field, wire_type
    cdef uint32_t[2] wide
    cdef Py_ssize_t length
    if PyBytes_CheckExact(data):
        p, end = <const uint8_t*>PyBytes_AS_STRING(data), <const uint8_t*>PyBytes_AS_STRING(data) + PyBytes_GET_SIZE(data)
    else:
        view = data
        p = first_byte(view)
        end = p + view.shape[0]
    r.data, r.index, r.fault = p, -1, 0
    too_wide.index = -1
    wide[0] = wide[1] = 0
    out = PyBytes_FromStringAndSize(NULL, TRANSFER.size)
    cdef uint8_t* record = <uint8_t*>PyBytes_AS_STRING(out)
    memset(record, 0, TRANSFER.size)
    while p < end:
        tag_start = p
        if not read_tag(&r, &p, end, &field, &wire_type):
            raise fault_error(&r, "TransferStreamRequest", "transfer")
        if field == 1 and wire_type == WIRE_LEN:
            if not read_length(&r, &p, end, &length):
                raise fault_error(&r, "TransferStreamRequest", "transfer")
            r.index = 0
            if not read_message(&r, &TRANSFER, p, p + length, record, wide, 1):
                raise fault_error(&r, "TransferStreamRequest", "transfer")
            r.index = -1
            p += length
        elif wire_type == WIRE_END_GROUP:
            fail(&r, tag_start, END_GROUP_UNMATCHED, field)
            raise fault_error(&r, "TransferStreamRequest", "transfer")
        elif not skip_unknown(&r, &p, end, field, wire_type, tag_start, 0):
            raise fault_error(&r, "TransferStreamRequest", "transfer")
    finish_record(&TRANSFER, record, wide, 0, &too_wide)
    if too_wide.index >= 0:
        check_too_wide(&too_wide, CREATE_TRANSFERS_REQUEST.schema.field)
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


cdef inline uint64_t scalar(const uint8_t* at, uint8_t kind) noexcept nogil:
    """The value of a scalar field of a kind but UINT128 and FIXED64, from its place in the record."""
    cdef uint64_t value64
    cdef uint32_t value32
    cdef uint16_t value16
    if kind == KIND_U64:
        memcpy(&value64, at, 8)
        return value64
    if kind == KIND_CODE or kind == KIND_FLAGS:
        memcpy(&value16, at, 2)
        return value16
    memcpy(&value32, at, 4)
    return value32


cdef inline uint8_t* write_uint128(uint8_t* p, uint8_t number, const uint8_t* at) noexcept nogil:
    """A Uint128 field, written even when zero (as _convert sets every one), each half only when not zero."""
    cdef uint64_t lo, hi
    memcpy(&lo, at, 8)
    memcpy(&hi, at + 8, 8)
    p[0] = number << 3 | WIRE_LEN
    p[1] = (9 if lo else 0) + (9 if hi else 0)  # a one-byte tag and 8 bytes a half
    p += 2
    if lo:
        p[0] = 1 << 3 | WIRE_I64
        memcpy(p + 1, at, 8)
        p += 9
    if hi:
        p[0] = 2 << 3 | WIRE_I64
        memcpy(p + 1, at + 8, 8)
        p += 9
    return p


cdef Py_ssize_t write_body(uint8_t* p, const message_t* m, const uint8_t* record, uint64_t* bad_result) noexcept nogil:
    """One message's fields in number order as protobuf writes them: its size, or -1 for a result code past int32."""
    cdef uint8_t* start = p
    cdef int i
    cdef uint8_t number, kind
    cdef uint64_t value
    for i in range(m.count):
        number = m.numbers[i]
        kind = m.kind[number]
        if kind == KIND_UINT128:
            p = write_uint128(p, number, record + m.offset[number])
            continue
        value = scalar(record + m.offset[number], kind)
        if kind == KIND_RESULT and value > ENUM_VALUE_MAX:
            bad_result[0] = value
            return -1
        if value:
            p[0] = number << 3 | WIRE_VARINT
            p = write_varint(p + 1, value)
    return p - start


cdef Py_ssize_t write_elements(uint8_t* out, const message_t* m, const uint8_t* records, Py_ssize_t count,
                               Py_ssize_t* bad_index, uint64_t* bad_result) noexcept nogil:
    """Field 1 from every record, each element its tag, its length and its body; the size written, or -1 with the
    first result code no enum can hold and its index. `out` holds count * m.element_size_max bytes."""
    cdef uint8_t[BODY_SIZE_MAX] body  # written first: its length goes before it
    cdef uint8_t* p = out
    cdef Py_ssize_t i, size
    for i in range(count):
        size = write_body(body, m, records + i * m.size, bad_result)
        if size < 0:
            bad_index[0] = i
            return -1
        p[0] = 1 << 3 | WIRE_LEN
        p = write_varint(p + 1, size)
        memcpy(p, body, size)
        p += size
    return p - out


cdef Py_ssize_t write_elements_releasing(uint8_t* out, const message_t* m, const uint8_t* records, Py_ssize_t count,
                                         Py_ssize_t* bad_index, uint64_t* bad_result, bint release):
    if release:
        with nogil:
            return write_elements(out, m, records, count, bad_index, bad_result)
    return write_elements(out, m, records, count, bad_index, bad_result)


cdef object encode(records, Repeated reply):
    """The wire bytes of a reply whose field 1 is `repeated <element> <field>` (or one), from packed records.

    They are written once, into room for the largest the records could take, which is then cut to what they took.
    """
    cdef const message_t* m = reply.element
    cdef const uint8_t[::1] view
    cdef const uint8_t* packed
    cdef Py_ssize_t size, count, total, bad_index = -1
    cdef uint64_t bad_result = 0
    cdef PyObject* out
    if PyBytes_CheckExact(records):
        packed, size = <const uint8_t*>PyBytes_AS_STRING(records), PyBytes_GET_SIZE(records)
    else:
        view = records
        packed, size = first_byte(view), view.shape[0]
    if size % m.size or (reply.single and size != m.size):
        raise records_error(reply.schema, size)
    count = size // m.size
    out = new_bytes(NULL, count * m.element_size_max)
    total = write_elements_releasing(<uint8_t*>PyBytes_AS_STRING(<object>out), m, packed, count, &bad_index,
                                     &bad_result, size >= RELEASE_GIL_BYTES_MIN)
    if total < 0:
        Py_DECREF(<object>out)
        raise result_error(reply.schema, bad_index, bad_result)
    _PyBytes_Resize(&out, total)
    return steal(out)


def encode_transfers(records):
    """The wire bytes of a ledger.v1.LookupTransfersResponse carrying these packed transfer records."""
    return encode(records, TRANSFERS_RESPONSE)


def encode_accounts(records):
    """The wire bytes of a ledger.v1.LookupAccountsResponse carrying these packed account records."""
    return encode(records, ACCOUNTS_RESPONSE)


def encode_create_transfers_response(results):
    """The wire bytes of the ledger.v1.CreateTransfersResponse carrying these packed transfer results."""
    return encode(results, CREATE_TRANSFERS_RESPONSE)


def encode_create_accounts_response(results):
    """The wire bytes of the ledger.v1.CreateAccountsResponse carrying these packed account results."""
    return encode(results, CREATE_ACCOUNTS_RESPONSE)


def encode_transfer_stream_response(result):
    """The wire bytes of the ledger.v1.TransferStreamResponse carrying this one packed transfer result."""
    return encode(result, TRANSFER_STREAM_RESPONSE)


# -- wallet.v1.PayBatchReply ------------------------------------------------------------------------------

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL
    unsigned long long PyLong_AsUnsignedLongLongMask(object value) except? <unsigned long long>-1
    long long PyLong_AsLongLong(object value) except? -1

cdef enum:
    PAY_REPLY_FIXED_MAX = 220   # a PayReply's fields but its message, with its tag and length (at most)

cdef const char* HEX_DIGITS = b"0123456789abcdef"


cdef inline uint8_t* write_hex_id(uint8_t* p, uint8_t tag, object value):
    """A 128-bit id as its 32 lowercase hex digits (f"{value:032x}"), as a string field."""
    cdef uint64_t lo = PyLong_AsUnsignedLongLongMask(value)
    cdef uint64_t hi = PyLong_AsUnsignedLongLongMask(value >> 64)
    cdef int i
    if value >> 128:
        raise OverflowError("a payment or wallet id past 128 bits")
    p[0] = tag
    p[1] = 32
    for i in range(16):
        p[2 + i] = HEX_DIGITS[(hi >> (60 - 4 * i)) & 0xF]
        p[18 + i] = HEX_DIGITS[(lo >> (60 - 4 * i)) & 0xF]
    return p + 34


cdef inline uint8_t* write_int64(uint8_t* p, uint8_t tag, object value):
    """An int64 field unless zero (a negative one as its 64-bit two's complement, as protobuf writes it)."""
    cdef long long number = PyLong_AsLongLong(value)
    if number:
        p[0] = tag
        p = write_varint(p + 1, <uint64_t>number)
    return p


def encode_pay_batch_reply(replies):
    """The wire bytes of a wallet.v1.PayBatchReply carrying these PaymentReply (ledger.wallet) replies, as
    protobuf writes the message ledger.server._convert.pay_reply fills for each."""
    cdef list items = list(replies)
    cdef Py_ssize_t i, size, room = 0, message_size
    cdef const char* message
    cdef uint8_t[PAY_REPLY_FIXED_MAX] fixed
    cdef uint8_t* p
    cdef uint8_t* q
    cdef uint8_t* start
    cdef long long result
    cdef uint64_t timestamp
    cdef object payment_id
    for reply in items:
        PyUnicode_AsUTF8AndSize(reply.message, &message_size)
        room += PAY_REPLY_FIXED_MAX + message_size + 10
    out = PyBytes_FromStringAndSize(NULL, room)
    p = <uint8_t*>PyBytes_AS_STRING(out)
    start = p
    for reply in items:
        result = PyLong_AsLongLong(reply.result)
        if result < 0 or <uint64_t>result > ENUM_VALUE_MAX:
            raise ValueError(f"a wallet result past the enum's range: {result}")
        message = PyUnicode_AsUTF8AndSize(reply.message, &message_size)
        # The fields after the message first, into `fixed`; then the element's tag, length and fields.
        size = 0
        q = fixed
        payment_id = reply.payment_id
        if payment_id:
            q = write_hex_id(q, 3 << 3 | WIRE_LEN, payment_id)
            q = write_hex_id(q, 4 << 3 | WIRE_LEN, reply.wallet_id)
        q = write_int64(q, 5 << 3 | WIRE_VARINT, reply.requested)
        q = write_int64(q, 6 << 3 | WIRE_VARINT, reply.paid)
        q = write_int64(q, 7 << 3 | WIRE_VARINT, reply.remainder)
        q = write_int64(q, 8 << 3 | WIRE_VARINT, reply.fee)
        q = write_int64(q, 9 << 3 | WIRE_VARINT, reply.balance)
        timestamp = PyLong_AsUnsignedLongLongMask(reply.timestamp)
        if timestamp:
            q[0] = 10 << 3 | WIRE_LEN
            q[1] = (1 + varint_size(timestamp // 1000000000) if timestamp >= 1000000000 else 0) + (
                1 + varint_size(timestamp % 1000000000) if timestamp % 1000000000 else 0)
            q += 2
            if timestamp >= 1000000000:
                q[0] = 1 << 3 | WIRE_VARINT
                q = write_varint(q + 1, timestamp // 1000000000)
            if timestamp % 1000000000:
                q[0] = 2 << 3 | WIRE_VARINT
                q = write_varint(q + 1, timestamp % 1000000000)
        if reply.replayed:
            q[0] = 11 << 3 | WIRE_VARINT
            q[1] = 1
            q += 2
        size = q - fixed
        if result:
            size += 1 + varint_size(<uint64_t>result)
        if message_size:
            size += 1 + varint_size(<uint64_t>message_size) + message_size
        p[0] = 1 << 3 | WIRE_LEN
        p = write_varint(p + 1, <uint64_t>size)
        if result:
            p[0] = 1 << 3 | WIRE_VARINT
            p = write_varint(p + 1, <uint64_t>result)
        if message_size:
            p[0] = 2 << 3 | WIRE_LEN
            p = write_varint(p + 1, <uint64_t>message_size)
            memcpy(p, message, message_size)
            p += message_size
        memcpy(p, fixed, q - fixed)
        p += q - fixed
    return out[: p - start]
