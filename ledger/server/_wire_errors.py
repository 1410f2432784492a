"""What the wire codec says about what it refuses, shared by the native codec and its pure-Python twin.

Both implementations find the same fault at the same byte for every input and
build their message here, so they agree word for word (a test holds them to
it). Faults are those for which the protobuf library (upb) refuses the bytes.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from ._convert import ConversionError
from ._wire_schema import Kind, Repeated

DEPTH_MAX: Final = 100
"""Sub-messages and groups nested below the request, at most; upb's default limit, which the library applies."""

VARINT_SIZE_MAX: Final = 10
TAG_SIZE_MAX: Final = 5
LENGTH_SIZE_MAX: Final = 5
"""upb reads a length as it reads a tag: a varint of at most 5 bytes."""
LENGTH_LIMIT: Final = 2**31 - 1
"""upb refuses a length of INT32_MAX or more, wherever its message ends."""
ENUM_VALUE_MAX: Final = 2**31 - 1


class Malformed(IntEnum):
    """Why bytes are not a protobuf message; `value` in `malformed()` is the detail the text names."""

    TRUNCATED_VARINT = 1
    VARINT_TOO_LONG = 2
    TRUNCATED_TAG = 3
    TAG_TOO_LONG = 4
    TAG_TOO_LARGE = 5
    FIELD_NUMBER_ZERO = 6
    WIRE_TYPE_INVALID = 7
    TRUNCATED_FIXED64 = 8
    TRUNCATED_FIXED32 = 9
    TRUNCATED_LENGTH = 10
    LENGTH_TOO_LONG = 11
    LENGTH_PAST_END = 12
    END_GROUP_UNMATCHED = 13
    GROUP_NOT_CLOSED = 14
    TOO_DEEP = 15


_TEXT: Final = {
    Malformed.TRUNCATED_VARINT: "varint runs past the end of its message",
    Malformed.VARINT_TOO_LONG: f"varint longer than {VARINT_SIZE_MAX} bytes",
    Malformed.TRUNCATED_TAG: "tag runs past the end of its message",
    Malformed.TAG_TOO_LONG: f"tag longer than {TAG_SIZE_MAX} bytes",
    Malformed.TAG_TOO_LARGE: "tag {value} exceeds 2^32 - 1",
    Malformed.FIELD_NUMBER_ZERO: "field number 0",
    Malformed.WIRE_TYPE_INVALID: "wire type {value} does not exist",
    Malformed.TRUNCATED_FIXED64: "fixed64 value runs past the end of its message",
    Malformed.TRUNCATED_FIXED32: "fixed32 value runs past the end of its message",
    Malformed.TRUNCATED_LENGTH: "length runs past the end of its message",
    Malformed.LENGTH_TOO_LONG: f"length longer than {LENGTH_SIZE_MAX} bytes",
    Malformed.LENGTH_PAST_END: "length {value} runs past the end of its message",
    Malformed.END_GROUP_UNMATCHED: "end-group tag of field {value} closes no open group",
    Malformed.GROUP_NOT_CLOSED: "group of field {value} is not closed",
    Malformed.TOO_DEEP: f"nested deeper than {DEPTH_MAX} levels",
}


def malformed(where: str, offset: int, reason: int, value: int = 0) -> ConversionError:
    """The error for a fault at byte `offset` of the request, inside `where` (the request or one of its transfers)."""
    return ConversionError(f"{where}: malformed at byte {offset}: {_TEXT[Malformed(reason)].format(value=value)}")


def records_error(reply: Repeated, size: int) -> ConversionError:
    """Packed records to write that are not a whole number of them (for a stream's message: not one)."""
    record_size = reply.element.size
    if reply.single:
        return ConversionError(f"{reply.field}: {size} bytes where one {record_size}-byte {reply.field} was expected")
    return ConversionError(f"{reply.field}: {size} bytes is not a whole number of {record_size}-byte {reply.field}")


def result_error(reply: Repeated, index: int, value: int) -> ConversionError:
    """A result code past the largest value of an enum on the wire (int32), which protobuf refuses too."""
    where = reply.field if reply.single else f"{reply.field}[{index}]"
    name = next(field.name for field in reply.element.fields.values() if field.kind == Kind.RESULT)
    return ConversionError(f"{where}.{name}: {value} exceeds {ENUM_VALUE_MAX}, the largest enum value")
