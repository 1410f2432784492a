# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The native engine: the reference engine's rules over C tables.

Accounts live in a dense array of the packed 128-byte records
(ledger.records.layout), in creation order, reserved at the configured
capacity and backed by memory as it fills. Transfers keep, for every one
ever created, a status byte and an index slot; their full records are kept
only while they are hot:

- the newest `transfers_hot` records, in a ring (retries come soon after the
  original, and a batch's own records are always among them);
- every open hold, in a table of its own (a post, void or expiry may come
  long after the hold was made);
- older records are read from the journal through the engine's cold reader
  when an idempotency check, a late post or void of a closed hold, or a
  lookup needs them, so every result is exactly what it would be with all
  records in memory. An engine made without a cold reader keeps every record.

Each index is open addressing over 8-byte slots (a 32-bit hash tag and the
record's position + 1) in shards that grow on their own, at a load factor of
at most 3/4. A slot's tag decides whether its record is read at all: a new
id meets a record of another id with the same tag about once in two billion
probes.
Batches are read straight from the caller's buffer and results written
straight into the reply; no Python object is made per event.

Result codes, flags and limits come from the shared Python modules at import;
nothing here redefines them.
"""

cimport cython
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES, PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from ledger.records import limits as _limits
from ledger.engine._api import (
    AccountsApplied,
    ClockExhausted,
    ColdRecordUnavailable,
    EngineConfig,
    EngineSnapshot,
    EngineState,
    EngineStats,
    StateMismatch,
    TransfersApplied,
    available_memory_bytes,
    check_batch,
)
from ledger.records.layout import unpack_ids
from ledger.records.codes import ACCOUNT_FLAGS_KNOWN as _ACCOUNT_FLAGS_KNOWN
from ledger.records.codes import TRANSFER_FLAGS_KNOWN as _TRANSFER_FLAGS_KNOWN
from ledger.records.codes import AccountFlags as _AF
from ledger.records.codes import CreateAccountResult as _AR
from ledger.records.codes import CreateTransferResult as _TR
from ledger.records.codes import TransferFlags as _TF
from ledger.records.codes import TransferStatus as _TS

cdef extern from *:
    """
    #include <stdint.h>
    #include <stddef.h>
    typedef struct {
        uint64_t id_lo, id_hi;
        uint64_t debits_pending, debits_posted, credits_pending, credits_posted;
        uint32_t ledger;
        uint16_t code, flags;
        uint64_t timestamp;
        uint64_t ud128_lo, ud128_hi, ud64;
        uint32_t ud32, reserved;
        uint64_t reserved_tail[4];
    } ledger_account_t;
    typedef struct {
        uint64_t id_lo, id_hi, dr_lo, dr_hi, cr_lo, cr_hi, amount, pending_lo, pending_hi;
        uint64_t ud128_lo, ud128_hi, ud64;
        uint32_t ud32, timeout, ledger;
        uint16_t code, flags;
        uint64_t timestamp, reserved;
    } ledger_transfer_t;
    typedef struct { uint32_t tag; uint32_t pos1; } ledger_slot_t;
    typedef struct { uint64_t expires_at; uint64_t timestamp; uint64_t pos; } ledger_expiry_t;
    _Static_assert(sizeof(ledger_account_t) == 128, "account record is 128 bytes");
    _Static_assert(sizeof(ledger_transfer_t) == 128, "transfer record is 128 bytes");
    _Static_assert(sizeof(ledger_slot_t) == 8, "index slot is 8 bytes");
    _Static_assert(offsetof(ledger_account_t, timestamp) == 56, "hot account fields share one cache line");
    _Static_assert(offsetof(ledger_account_t, ud128_lo) == 64, "account layout");
    _Static_assert(offsetof(ledger_transfer_t, timestamp) == 112, "transfer layout");

    static inline uint64_t ledger_hash(uint64_t lo, uint64_t hi) {
        /* splitmix64's finaliser over both halves: sequential and random ids spread alike. */
        uint64_t x = lo ^ (hi * 0x9E3779B97F4A7C15ULL);
        x ^= x >> 30; x *= 0xBF58476D1CE4E5B9ULL;
        x ^= x >> 27; x *= 0x94D049BB133111EBULL;
        x ^= x >> 31;
        return x;
    }
    /* A second, independent 32 bits of an id (murmur3's finaliser over another mix of its halves), kept for
       every transfer: a slot whose tag matches is taken for the id only if this matches too, so a new id
       reads another's record about once in 10^14 inserts rather than once in 40,000 at 100M transfers. */
    static inline uint32_t ledger_fingerprint(uint64_t lo, uint64_t hi) {
        uint64_t x = hi ^ (lo * 0xC2B2AE3D27D4EB4FULL) ^ 0x165667B19E3779F9ULL;
        x ^= x >> 33; x *= 0xFF51AFD7ED558CCDULL;
        x ^= x >> 33; x *= 0xC4CEB9FE1A85EC53ULL;
        x ^= x >> 33;
        return (uint32_t)x;
    }
    #define ledger_prefetch(p) __builtin_prefetch((const void *)(p))

    /* Records are appended with non-temporal stores: the log is written once
       and read rarely, and streaming it through the cache would evict the
       account and index tables that every transfer probes. */
    #if defined(__SSE2__)
    #include <emmintrin.h>
    static inline void ledger_stream_record(void *dst, const void *src) {
        __m128i *d = (__m128i *)dst;
        const __m128i *s = (const __m128i *)src;
        for (int i = 0; i < 8; i++) _mm_stream_si128(d + i, _mm_loadu_si128(s + i));
    }
    static inline void ledger_stream_fence(void) { _mm_sfence(); }
    static inline void ledger_copy_record(void *dst, const void *src) {
        __m128i *d = (__m128i *)dst;
        const __m128i *s = (const __m128i *)src;
        for (int i = 0; i < 8; i++) _mm_storeu_si128(d + i, _mm_loadu_si128(s + i));
    }
    #else
    #include <string.h>
    static inline void ledger_stream_record(void *dst, const void *src) { memcpy(dst, src, 128); }
    static inline void ledger_stream_fence(void) {}
    static inline void ledger_copy_record(void *dst, const void *src) { memcpy(dst, src, 128); }
    #endif

    /* Tables are reserved once, at start, for the configured capacity (a limit,
       not an allocation): address space only, with no page behind it until a
       record is written there, so a fresh ledger's resident memory is what it
       stores. They are backed by huge pages where the kernel offers them: a
       first touch then costs one fault per 2 MiB (about 10 ns per appended
       transfer) instead of one per 4 KiB (about 90 ns, at some 3 us a fault
       in a VM), and tables probed at random spare TLB misses. */
    #if defined(_WIN32)
    #include <stdlib.h>
    static void *ledger_table_alloc(size_t size, int huge) { (void)huge; return calloc(size ? size : 1, 1); }
    static void ledger_table_free(void *p, size_t size) { (void)size; free(p); }
    #else
    #include <sys/mman.h>
    static void *ledger_table_alloc(size_t size, int huge) {
        size_t length = size ? size : 1;
        void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) return NULL;
    #ifdef MADV_HUGEPAGE
        if (huge) madvise(p, length, MADV_HUGEPAGE);
    #endif
        return p;
    }
    static void ledger_table_free(void *p, size_t size) { if (p) munmap(p, size ? size : 1); }
    #endif

    /* A table filled in order (records appended at its end) has its next
       LEDGER_READY_CHUNK faulted in ahead of use, before the batch that needs
       it: one call per 4 MiB (1 to 2 ms, about 40 ns per 128-byte record)
       rather than a page fault per 4 KiB inside the batch (about 75 ns per
       record). Where the kernel has no MADV_POPULATE_WRITE, pages fault in on
       first write instead. */
    #define LEDGER_READY_CHUNK ((size_t)4 << 20)
    static void ledger_table_ready(void *base, size_t reserved, size_t *ready, size_t upto) {
        if (upto <= *ready || base == NULL) return;
        size_t target = (upto + LEDGER_READY_CHUNK - 1) / LEDGER_READY_CHUNK * LEDGER_READY_CHUNK;
        if (target > reserved) target = reserved;
    #if !defined(_WIN32) && defined(MADV_POPULATE_WRITE)
        if (target > *ready) (void)madvise((char *)base + *ready, target - *ready, MADV_POPULATE_WRITE);
    #endif
        *ready = target;
    }

    /* Replies of a full batch are up to 1 MiB. glibc serves blocks that large
       with a fresh mmap each time and returns them on free, so every call
       would page-fault its reply in afresh (about 3 us per 4 KiB here, 18 ns
       per transfer). Keep such blocks on the heap and the heap's top mapped. */
    #if defined(__GLIBC__)
    #include <malloc.h>
    static void ledger_tune_malloc(void) {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 128 << 20);
    }
    #else
    static void ledger_tune_malloc(void) {}
    #endif
    """
    ctypedef struct ledger_account_t:
        uint64_t id_lo, id_hi
        uint64_t debits_pending, debits_posted, credits_pending, credits_posted
        uint32_t ledger
        uint16_t code, flags
        uint64_t timestamp
        uint64_t ud128_lo, ud128_hi, ud64
        uint32_t ud32, reserved
        uint64_t reserved_tail[4]
    ctypedef struct ledger_transfer_t:
        uint64_t id_lo, id_hi, dr_lo, dr_hi, cr_lo, cr_hi, amount, pending_lo, pending_hi
        uint64_t ud128_lo, ud128_hi, ud64
        uint32_t ud32, timeout, ledger
        uint16_t code, flags
        uint64_t timestamp, reserved
    ctypedef struct ledger_slot_t:
        uint32_t tag
        uint32_t pos1
    ctypedef struct ledger_expiry_t:
        uint64_t expires_at
        uint64_t timestamp
        uint64_t pos
    uint64_t ledger_hash(uint64_t lo, uint64_t hi) noexcept nogil
    uint32_t ledger_fingerprint(uint64_t lo, uint64_t hi) noexcept nogil
    void ledger_prefetch(const void* p) noexcept nogil
    void ledger_stream_record(void* dst, const void* src) noexcept nogil
    void ledger_stream_fence() noexcept nogil
    void ledger_copy_record(void* dst, const void* src) noexcept nogil
    void ledger_tune_malloc() noexcept nogil
    void* ledger_table_alloc(size_t size, int huge) noexcept nogil
    void ledger_table_free(void* p, size_t size) noexcept nogil
    void ledger_table_ready(void* base, size_t reserved, size_t* ready, size_t upto) noexcept nogil

# ---------------------------------------------------------------------------
# Shared definitions, read from the Python modules once.

cdef uint64_t U64_MAX = 0xFFFFFFFFFFFFFFFF
cdef uint64_t AMOUNT_MAX = _limits.AMOUNT_MAX
cdef uint64_t TIMESTAMP_MAX = _limits.TIMESTAMP_MAX
cdef uint64_t NS_PER_S = _limits.NANOSECONDS_PER_SECOND
cdef Py_ssize_t BATCH_EVENTS_MAX = _limits.BATCH_EVENTS_MAX
cdef Py_ssize_t RECORD_SIZE = _limits.TRANSFER_SIZE
assert _limits.ACCOUNT_SIZE == _limits.TRANSFER_SIZE == sizeof(ledger_transfer_t) == sizeof(ledger_account_t)
assert _limits.TRANSFER_RESULT_SIZE == 24 and _limits.ACCOUNT_RESULT_SIZE == 16

cdef uint16_t AF_LINKED = _AF.LINKED
cdef uint16_t AF_DMNEC = _AF.DEBITS_MUST_NOT_EXCEED_CREDITS
cdef uint16_t AF_CMNED = _AF.CREDITS_MUST_NOT_EXCEED_DEBITS
cdef uint16_t AF_CLOSED = _AF.CLOSED
cdef uint16_t AF_HISTORY = _AF.HISTORY
cdef uint16_t AF_KNOWN = _ACCOUNT_FLAGS_KNOWN

cdef uint16_t TF_LINKED = _TF.LINKED
cdef uint16_t TF_PENDING = _TF.PENDING
cdef uint16_t TF_POST = _TF.POST_PENDING_TRANSFER
cdef uint16_t TF_VOID = _TF.VOID_PENDING_TRANSFER
cdef uint16_t TF_BALANCING_DEBIT = _TF.BALANCING_DEBIT
cdef uint16_t TF_BALANCING_CREDIT = _TF.BALANCING_CREDIT
cdef uint16_t TF_CLOSING_DEBIT = _TF.CLOSING_DEBIT
cdef uint16_t TF_CLOSING_CREDIT = _TF.CLOSING_CREDIT
cdef uint16_t TF_KNOWN = _TRANSFER_FLAGS_KNOWN
cdef uint16_t TF_POST_OR_VOID = TF_POST | TF_VOID
cdef uint16_t TF_BALANCING = TF_BALANCING_DEBIT | TF_BALANCING_CREDIT
cdef uint16_t TF_CLOSING = TF_CLOSING_DEBIT | TF_CLOSING_CREDIT

cdef uint8_t S_NONE = _TS.NONE
cdef uint8_t S_PENDING = _TS.PENDING
cdef uint8_t S_POSTED = _TS.POSTED
cdef uint8_t S_VOIDED = _TS.VOIDED
cdef uint8_t S_EXPIRED = _TS.EXPIRED

cdef uint32_t A_UNSPECIFIED = _AR.UNSPECIFIED
cdef uint32_t A_OK = _AR.OK
cdef uint32_t A_LINKED_EVENT_FAILED = _AR.LINKED_EVENT_FAILED
cdef uint32_t A_LINKED_EVENT_CHAIN_OPEN = _AR.LINKED_EVENT_CHAIN_OPEN
cdef uint32_t A_TIMESTAMP_MUST_BE_ZERO = _AR.TIMESTAMP_MUST_BE_ZERO
cdef uint32_t A_RESERVED_FIELD = _AR.RESERVED_FIELD
cdef uint32_t A_RESERVED_FLAG = _AR.RESERVED_FLAG
cdef uint32_t A_ID_MUST_NOT_BE_ZERO = _AR.ID_MUST_NOT_BE_ZERO
cdef uint32_t A_ID_MUST_NOT_BE_INT_MAX = _AR.ID_MUST_NOT_BE_INT_MAX
cdef uint32_t A_EXISTS_WITH_DIFFERENT_FLAGS = _AR.EXISTS_WITH_DIFFERENT_FLAGS
cdef uint32_t A_EXISTS_WITH_DIFFERENT_USER_DATA_128 = _AR.EXISTS_WITH_DIFFERENT_USER_DATA_128
cdef uint32_t A_EXISTS_WITH_DIFFERENT_USER_DATA_64 = _AR.EXISTS_WITH_DIFFERENT_USER_DATA_64
cdef uint32_t A_EXISTS_WITH_DIFFERENT_USER_DATA_32 = _AR.EXISTS_WITH_DIFFERENT_USER_DATA_32
cdef uint32_t A_EXISTS_WITH_DIFFERENT_LEDGER = _AR.EXISTS_WITH_DIFFERENT_LEDGER
cdef uint32_t A_EXISTS_WITH_DIFFERENT_CODE = _AR.EXISTS_WITH_DIFFERENT_CODE
cdef uint32_t A_EXISTS = _AR.EXISTS
cdef uint32_t A_FLAGS_ARE_MUTUALLY_EXCLUSIVE = _AR.FLAGS_ARE_MUTUALLY_EXCLUSIVE
cdef uint32_t A_DEBITS_PENDING_MUST_BE_ZERO = _AR.DEBITS_PENDING_MUST_BE_ZERO
cdef uint32_t A_DEBITS_POSTED_MUST_BE_ZERO = _AR.DEBITS_POSTED_MUST_BE_ZERO
cdef uint32_t A_CREDITS_PENDING_MUST_BE_ZERO = _AR.CREDITS_PENDING_MUST_BE_ZERO
cdef uint32_t A_CREDITS_POSTED_MUST_BE_ZERO = _AR.CREDITS_POSTED_MUST_BE_ZERO
cdef uint32_t A_LEDGER_MUST_NOT_BE_ZERO = _AR.LEDGER_MUST_NOT_BE_ZERO
cdef uint32_t A_CODE_MUST_NOT_BE_ZERO = _AR.CODE_MUST_NOT_BE_ZERO
cdef uint32_t A_ACCOUNTS_FULL = _AR.ACCOUNTS_FULL

cdef uint32_t T_UNSPECIFIED = _TR.UNSPECIFIED
cdef uint32_t T_OK = _TR.OK
cdef uint32_t T_LINKED_EVENT_FAILED = _TR.LINKED_EVENT_FAILED
cdef uint32_t T_LINKED_EVENT_CHAIN_OPEN = _TR.LINKED_EVENT_CHAIN_OPEN
cdef uint32_t T_TIMESTAMP_MUST_BE_ZERO = _TR.TIMESTAMP_MUST_BE_ZERO
cdef uint32_t T_RESERVED_FIELD = _TR.RESERVED_FIELD
cdef uint32_t T_RESERVED_FLAG = _TR.RESERVED_FLAG
cdef uint32_t T_ID_MUST_NOT_BE_ZERO = _TR.ID_MUST_NOT_BE_ZERO
cdef uint32_t T_ID_MUST_NOT_BE_INT_MAX = _TR.ID_MUST_NOT_BE_INT_MAX
cdef uint32_t T_EXISTS_WITH_DIFFERENT_FLAGS = _TR.EXISTS_WITH_DIFFERENT_FLAGS
cdef uint32_t T_EXISTS_WITH_DIFFERENT_PENDING_ID = _TR.EXISTS_WITH_DIFFERENT_PENDING_ID
cdef uint32_t T_EXISTS_WITH_DIFFERENT_TIMEOUT = _TR.EXISTS_WITH_DIFFERENT_TIMEOUT
cdef uint32_t T_EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = _TR.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
cdef uint32_t T_EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = _TR.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
cdef uint32_t T_EXISTS_WITH_DIFFERENT_AMOUNT = _TR.EXISTS_WITH_DIFFERENT_AMOUNT
cdef uint32_t T_EXISTS_WITH_DIFFERENT_USER_DATA_128 = _TR.EXISTS_WITH_DIFFERENT_USER_DATA_128
cdef uint32_t T_EXISTS_WITH_DIFFERENT_USER_DATA_64 = _TR.EXISTS_WITH_DIFFERENT_USER_DATA_64
cdef uint32_t T_EXISTS_WITH_DIFFERENT_USER_DATA_32 = _TR.EXISTS_WITH_DIFFERENT_USER_DATA_32
cdef uint32_t T_EXISTS_WITH_DIFFERENT_LEDGER = _TR.EXISTS_WITH_DIFFERENT_LEDGER
cdef uint32_t T_EXISTS_WITH_DIFFERENT_CODE = _TR.EXISTS_WITH_DIFFERENT_CODE
cdef uint32_t T_EXISTS = _TR.EXISTS
cdef uint32_t T_FLAGS_ARE_MUTUALLY_EXCLUSIVE = _TR.FLAGS_ARE_MUTUALLY_EXCLUSIVE
cdef uint32_t T_DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = _TR.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
cdef uint32_t T_DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = _TR.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
cdef uint32_t T_CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO = _TR.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
cdef uint32_t T_CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX = _TR.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
cdef uint32_t T_ACCOUNTS_MUST_BE_DIFFERENT = _TR.ACCOUNTS_MUST_BE_DIFFERENT
cdef uint32_t T_PENDING_ID_MUST_BE_ZERO = _TR.PENDING_ID_MUST_BE_ZERO
cdef uint32_t T_PENDING_ID_MUST_NOT_BE_ZERO = _TR.PENDING_ID_MUST_NOT_BE_ZERO
cdef uint32_t T_PENDING_ID_MUST_NOT_BE_INT_MAX = _TR.PENDING_ID_MUST_NOT_BE_INT_MAX
cdef uint32_t T_PENDING_ID_MUST_BE_DIFFERENT = _TR.PENDING_ID_MUST_BE_DIFFERENT
cdef uint32_t T_TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = _TR.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
cdef uint32_t T_CLOSING_TRANSFER_MUST_BE_PENDING = _TR.CLOSING_TRANSFER_MUST_BE_PENDING
cdef uint32_t T_AMOUNT_MUST_NOT_BE_ZERO = _TR.AMOUNT_MUST_NOT_BE_ZERO
cdef uint32_t T_AMOUNT_EXCEEDS_MAX = _TR.AMOUNT_EXCEEDS_MAX
cdef uint32_t T_LEDGER_MUST_NOT_BE_ZERO = _TR.LEDGER_MUST_NOT_BE_ZERO
cdef uint32_t T_CODE_MUST_NOT_BE_ZERO = _TR.CODE_MUST_NOT_BE_ZERO
cdef uint32_t T_DEBIT_ACCOUNT_NOT_FOUND = _TR.DEBIT_ACCOUNT_NOT_FOUND
cdef uint32_t T_CREDIT_ACCOUNT_NOT_FOUND = _TR.CREDIT_ACCOUNT_NOT_FOUND
cdef uint32_t T_ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = _TR.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
cdef uint32_t T_TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = _TR.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
cdef uint32_t T_PENDING_TRANSFER_NOT_FOUND = _TR.PENDING_TRANSFER_NOT_FOUND
cdef uint32_t T_PENDING_TRANSFER_NOT_PENDING = _TR.PENDING_TRANSFER_NOT_PENDING
cdef uint32_t T_PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = _TR.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
cdef uint32_t T_PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = _TR.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
cdef uint32_t T_PENDING_TRANSFER_HAS_DIFFERENT_LEDGER = _TR.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
cdef uint32_t T_PENDING_TRANSFER_HAS_DIFFERENT_CODE = _TR.PENDING_TRANSFER_HAS_DIFFERENT_CODE
cdef uint32_t T_EXCEEDS_PENDING_TRANSFER_AMOUNT = _TR.EXCEEDS_PENDING_TRANSFER_AMOUNT
cdef uint32_t T_PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = _TR.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
cdef uint32_t T_PENDING_TRANSFER_ALREADY_POSTED = _TR.PENDING_TRANSFER_ALREADY_POSTED
cdef uint32_t T_PENDING_TRANSFER_ALREADY_VOIDED = _TR.PENDING_TRANSFER_ALREADY_VOIDED
cdef uint32_t T_PENDING_TRANSFER_EXPIRED = _TR.PENDING_TRANSFER_EXPIRED
cdef uint32_t T_DEBIT_ACCOUNT_ALREADY_CLOSED = _TR.DEBIT_ACCOUNT_ALREADY_CLOSED
cdef uint32_t T_CREDIT_ACCOUNT_ALREADY_CLOSED = _TR.CREDIT_ACCOUNT_ALREADY_CLOSED
cdef uint32_t T_OVERFLOWS_DEBITS_PENDING = _TR.OVERFLOWS_DEBITS_PENDING
cdef uint32_t T_OVERFLOWS_CREDITS_PENDING = _TR.OVERFLOWS_CREDITS_PENDING
cdef uint32_t T_OVERFLOWS_DEBITS_POSTED = _TR.OVERFLOWS_DEBITS_POSTED
cdef uint32_t T_OVERFLOWS_CREDITS_POSTED = _TR.OVERFLOWS_CREDITS_POSTED
cdef uint32_t T_OVERFLOWS_DEBITS = _TR.OVERFLOWS_DEBITS
cdef uint32_t T_OVERFLOWS_CREDITS = _TR.OVERFLOWS_CREDITS
cdef uint32_t T_OVERFLOWS_TIMEOUT = _TR.OVERFLOWS_TIMEOUT
cdef uint32_t T_EXCEEDS_CREDITS = _TR.EXCEEDS_CREDITS
cdef uint32_t T_EXCEEDS_DEBITS = _TR.EXCEEDS_DEBITS
cdef uint32_t T_TRANSFERS_FULL = _TR.TRANSFERS_FULL
cdef uint32_t T_PENDING_TRANSFERS_FULL = _TR.PENDING_TRANSFERS_FULL

ledger_tune_malloc()

# How far ahead of the event being applied the batch loop prefetches table slots.
# Transfers are applied in groups: a tight first pass over a group hashes
# every id and prefetches the index slots it will probe, a second pass finds
# the debit and credit accounts' slots and prefetches their records, and only
# then is the group applied in order. Tight loops keep many cache misses in
# flight at once; one miss after another is what limits a hash-table engine.
DEF GROUP_SIZE = 64

# Old records read back through the cold reader are kept in a direct-mapped cache of this many,
# and gathered up to half as many at a time to be read in one call.
DEF COLD_SLOTS = 4096
DEF COLD_WANTED_MAX = 2048

# Mixed into an ordinal's hash for the open holds' index, so that it does not follow the ids' hashes.
cdef uint64_t HOLD_SALT = 0x686F6C64735F6964

cdef ledger_transfer_t ZERO_TRANSFER
memset(&ZERO_TRANSFER, 0, sizeof(ledger_transfer_t))

cdef enum:
    UNDO_ACCOUNT = 1
    UNDO_STATUS = 2

ctypedef struct undo_t:
    uint64_t kind
    uint64_t pos
    uint64_t debits_pending, debits_posted, credits_pending, credits_posted
    uint64_t flags


# ---------------------------------------------------------------------------
# Open-addressing index over a dense array of 128-byte records whose id is
# their first 16 bytes, in INDEX_SHARDS shards chosen by the low bits of the
# id's hash. A slot holds the hash's high 32 bits as its tag, and its home is
# worked out from the tag alone, so a shard is rehashed without reading a
# record. Each shard grows on its own, doubling when one more entry would pass
# a load of 3/4: memory follows what is stored, and no growth stops the engine
# longer than one shard's rehash (a thousandth of the index). Shards start at sizes
# spread over one doubling, so that they do not all grow in the same batch.
# Linear probing; deletion (only when a linked chain is rolled back) shifts
# later slots back so no tombstones are needed.

cdef enum:
    INDEX_SHARDS = 1024
    SHARD_SLOTS_MIN = 16
    SHARD_SMALL_BYTES = 65536  # shards up to this are malloc'd; larger ones are mapped, on huge pages


ctypedef struct shard_t:
    ledger_slot_t* slots
    uint64_t slots_count
    uint64_t count


ctypedef struct index_t:
    shard_t* shards
    uint64_t slots_total


cdef object id_of(uint64_t lo, uint64_t hi):
    """A 128-bit id as a Python int (for messages: in C, `hi << 64` of a u64 is undefined)."""
    return (<object>hi << 64) | lo


cdef inline bint id_is_zero(uint64_t lo, uint64_t hi) noexcept nogil:
    return lo == 0 and hi == 0


cdef inline bint id_is_max(uint64_t lo, uint64_t hi) noexcept nogil:
    return lo == U64_MAX and hi == U64_MAX


cdef inline shard_t* shard_of(const index_t* ix, uint64_t hash) noexcept nogil:
    return &ix.shards[hash & (INDEX_SHARDS - 1)]


cdef inline uint32_t tag_of(uint64_t hash) noexcept nogil:
    return <uint32_t>(hash >> 32)


cdef inline uint64_t home_of(uint32_t tag, uint64_t slots_count) noexcept nogil:
    """A tag's home slot among slots_count (at most 2^32): the tag scaled to it (a multiply and a shift, where
    a modulo would divide)."""
    return (<uint64_t>tag * slots_count) >> 32


cdef inline ledger_slot_t* index_probe(const index_t* ix, const uint8_t* records, uint64_t lo, uint64_t hi,
                                       uint64_t hash) noexcept nogil:
    """The slot holding the id, or the empty slot where it would go."""
    cdef const shard_t* shard = shard_of(ix, hash)
    cdef uint32_t tag = tag_of(hash)
    cdef uint64_t i = home_of(tag, shard.slots_count)
    cdef const uint64_t* record
    while True:
        if shard.slots[i].pos1 == 0:
            return &shard.slots[i]
        if shard.slots[i].tag == tag:
            record = <const uint64_t*>(records + <uint64_t>(shard.slots[i].pos1 - 1) * 128)
            if record[0] == lo and record[1] == hi:
                return &shard.slots[i]
        i += 1
        if i == shard.slots_count:
            i = 0


cdef inline uint64_t index_find(const index_t* ix, const uint8_t* records, uint64_t lo, uint64_t hi) noexcept nogil:
    """The record's position + 1, or 0 when the id is absent."""
    return index_probe(ix, records, lo, hi, ledger_hash(lo, hi)).pos1


cdef inline ledger_slot_t* index_empty_slot(const index_t* ix, uint64_t hash) noexcept nogil:
    """The empty slot where an entry for this hash goes (no record compared: the caller knows it is new)."""
    cdef const shard_t* shard = shard_of(ix, hash)
    cdef uint64_t i = home_of(tag_of(hash), shard.slots_count)
    while shard.slots[i].pos1 != 0:
        i += 1
        if i == shard.slots_count:
            i = 0
    return &shard.slots[i]


cdef inline void index_put(index_t* ix, ledger_slot_t* slot, uint64_t hash, uint64_t pos1) noexcept nogil:
    """Fill the empty slot index_probe gave for this hash (after index_room)."""
    slot.tag = tag_of(hash)
    slot.pos1 = <uint32_t>pos1
    shard_of(ix, hash).count += 1


cdef void index_remove(index_t* ix, uint64_t hash, uint64_t pos1) noexcept nogil:
    """Remove the entry for `pos1`, whose id hashed to `hash` (no record is read)."""
    cdef shard_t* shard = shard_of(ix, hash)
    cdef uint64_t i = home_of(tag_of(hash), shard.slots_count)
    cdef uint64_t j, home
    while shard.slots[i].pos1 != pos1:
        i += 1
        if i == shard.slots_count:
            i = 0
    j = i
    while True:
        j += 1
        if j == shard.slots_count:
            j = 0
        if shard.slots[j].pos1 == 0:
            break
        home = home_of(shard.slots[j].tag, shard.slots_count)
        # The entry at j may move back to i unless its home lies cyclically in (i, j].
        if (i <= j and i < home <= j) or (i > j and (home > i or home <= j)):
            continue
        shard.slots[i] = shard.slots[j]
        i = j
    shard.slots[i].pos1 = 0
    shard.slots[i].tag = 0
    shard.count -= 1


cdef ledger_slot_t* slots_alloc(uint64_t count) noexcept nogil:
    if count * sizeof(ledger_slot_t) <= SHARD_SMALL_BYTES:
        return <ledger_slot_t*>calloc(count, sizeof(ledger_slot_t))
    return <ledger_slot_t*>ledger_table_alloc(count * sizeof(ledger_slot_t), 1)


cdef void slots_free(ledger_slot_t* slots, uint64_t count) noexcept nogil:
    if count * sizeof(ledger_slot_t) <= SHARD_SMALL_BYTES:
        free(slots)
    else:
        ledger_table_free(slots, count * sizeof(ledger_slot_t))


cdef int index_init(index_t* ix) noexcept nogil:
    """Every shard at its starting size; -1 without the memory for it."""
    cdef uint64_t k
    ix.shards = <shard_t*>calloc(INDEX_SHARDS, sizeof(shard_t))
    ix.slots_total = 0
    if ix.shards == NULL:
        return -1
    for k in range(INDEX_SHARDS):
        ix.shards[k].slots_count = SHARD_SLOTS_MIN + k * SHARD_SLOTS_MIN // INDEX_SHARDS
        ix.shards[k].slots = slots_alloc(ix.shards[k].slots_count)
        if ix.shards[k].slots == NULL:
            return -1
        ix.slots_total += ix.shards[k].slots_count
    return 0


cdef void index_free(index_t* ix) noexcept nogil:
    cdef uint64_t k
    if ix.shards == NULL:
        return
    for k in range(INDEX_SHARDS):
        if ix.shards[k].slots != NULL:
            slots_free(ix.shards[k].slots, ix.shards[k].slots_count)
    free(ix.shards)
    ix.shards = NULL


cdef inline int index_room(index_t* ix, uint64_t hash) noexcept nogil:
    """Room in the hash's shard for one more entry at a load of at most 3/4: the shard doubles, its entries
    rehashed, when it would pass it. -1 (nothing changed) without the memory for that."""
    cdef shard_t* shard = shard_of(ix, hash)
    if (shard.count + 1) * 4 <= shard.slots_count * 3:
        return 0
    return index_room_for(ix, shard, shard.count + 1)


cdef int index_room_for(index_t* ix, shard_t* shard, uint64_t count) noexcept nogil:
    """Double the shard (its entries rehashed) if `count` entries would pass a load of 3/4 in it."""
    cdef uint64_t grown, k, j
    cdef ledger_slot_t* slots
    if count * 4 <= shard.slots_count * 3:
        return 0
    grown = shard.slots_count * 2
    slots = slots_alloc(grown)
    if slots == NULL:
        return -1
    for k in range(shard.slots_count):
        if shard.slots[k].pos1 != 0:
            j = home_of(shard.slots[k].tag, grown)
            while slots[j].pos1 != 0:
                j += 1
                if j == grown:
                    j = 0
            slots[j] = shard.slots[k]
    slots_free(shard.slots, shard.slots_count)
    ix.slots_total += grown - shard.slots_count
    shard.slots = slots
    shard.slots_count = grown
    return 0


cdef int index_reserve(index_t* ix, uint64_t entries) noexcept nogil:
    """Grow every shard, ahead, to hold its share of `entries` more (and a margin) without growing again: a
    recovery that indexes many at once rehashes nothing while it does. -1 without the memory for it."""
    cdef uint64_t k, share = entries // INDEX_SHARDS + entries // INDEX_SHARDS // 8 + 16
    cdef shard_t* shard
    for k in range(INDEX_SHARDS):
        shard = &ix.shards[k]
        while (shard.count + share) * 4 > shard.slots_count * 3:
            # index_room grows the shard whose hash this is: one with shard k's low bits.
            if index_room_for(ix, shard, shard.slots_count * 3 // 4 + 1) != 0:
                return -1
    return 0


cdef uint64_t index_bytes(const index_t* ix) noexcept nogil:
    if ix.shards == NULL:  # not made yet: what it starts at
        return INDEX_SHARDS * (sizeof(shard_t) + (SHARD_SLOTS_MIN * 3 // 2) * sizeof(ledger_slot_t))
    return INDEX_SHARDS * sizeof(shard_t) + ix.slots_total * sizeof(ledger_slot_t)


cdef inline uint32_t transfer_exists(const ledger_transfer_t* t, const ledger_transfer_t* e) noexcept nogil:
    cdef bint inherits = (t.flags & TF_POST_OR_VOID) != 0
    if t.flags != e.flags:
        return T_EXISTS_WITH_DIFFERENT_FLAGS
    if t.pending_lo != e.pending_lo or t.pending_hi != e.pending_hi:
        return T_EXISTS_WITH_DIFFERENT_PENDING_ID
    if t.timeout != e.timeout:
        return T_EXISTS_WITH_DIFFERENT_TIMEOUT
    if (t.dr_lo != e.dr_lo or t.dr_hi != e.dr_hi) and not (inherits and id_is_zero(t.dr_lo, t.dr_hi)):
        return T_EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
    if (t.cr_lo != e.cr_lo or t.cr_hi != e.cr_hi) and not (inherits and id_is_zero(t.cr_lo, t.cr_hi)):
        return T_EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    if t.flags & TF_BALANCING:
        if t.amount < e.amount:
            return T_EXISTS_WITH_DIFFERENT_AMOUNT
    elif t.amount != e.amount and not (inherits and t.amount == 0):
        return T_EXISTS_WITH_DIFFERENT_AMOUNT
    if t.ud128_lo != e.ud128_lo or t.ud128_hi != e.ud128_hi:
        return T_EXISTS_WITH_DIFFERENT_USER_DATA_128
    if t.ud64 != e.ud64:
        return T_EXISTS_WITH_DIFFERENT_USER_DATA_64
    if t.ud32 != e.ud32:
        return T_EXISTS_WITH_DIFFERENT_USER_DATA_32
    if t.ledger != e.ledger and not (inherits and t.ledger == 0):
        return T_EXISTS_WITH_DIFFERENT_LEDGER
    if t.code != e.code and not (inherits and t.code == 0):
        return T_EXISTS_WITH_DIFFERENT_CODE
    return T_EXISTS


cdef inline uint32_t account_exists(const ledger_account_t* a, const ledger_account_t* e) noexcept nogil:
    if (a.flags & ~AF_CLOSED) != (e.flags & ~AF_CLOSED):
        return A_EXISTS_WITH_DIFFERENT_FLAGS
    if a.ud128_lo != e.ud128_lo or a.ud128_hi != e.ud128_hi:
        return A_EXISTS_WITH_DIFFERENT_USER_DATA_128
    if a.ud64 != e.ud64:
        return A_EXISTS_WITH_DIFFERENT_USER_DATA_64
    if a.ud32 != e.ud32:
        return A_EXISTS_WITH_DIFFERENT_USER_DATA_32
    if a.ledger != e.ledger:
        return A_EXISTS_WITH_DIFFERENT_LEDGER
    if a.code != e.code:
        return A_EXISTS_WITH_DIFFERENT_CODE
    return A_EXISTS


cdef inline void write_transfer_result(char* out, Py_ssize_t index, uint32_t result, uint64_t timestamp,
                                       uint64_t amount) noexcept nogil:
    cdef uint32_t* head = <uint32_t*>(out + index * 24)
    cdef uint64_t* tail = <uint64_t*>(out + index * 24 + 8)
    head[0] = result
    head[1] = 0
    tail[0] = timestamp
    tail[1] = amount


cdef inline void write_account_result(char* out, Py_ssize_t index, uint32_t result, uint64_t timestamp) noexcept nogil:
    cdef uint32_t* head = <uint32_t*>(out + index * 16)
    head[0] = result
    head[1] = 0
    (<uint64_t*>(out + index * 16 + 8))[0] = timestamp


cdef char* BYTE_FORMAT = b"B"


@cython.final
cdef class _RecordsView:
    """A read-only buffer over committed records of the engine (zero-copy journal entries)."""

    cdef NativeEngine owner
    cdef const char* start
    cdef Py_ssize_t size
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer* view, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("journal entries are read-only")
        self.shape[0] = self.size
        self.strides[0] = 1
        view.buf = <void*>self.start
        view.obj = self
        view.len = self.size
        view.readonly = 1
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = BYTE_FORMAT
        view.ndim = 1
        view.shape = self.shape if flags & PyBUF_ND else NULL
        view.strides = self.strides if flags & PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer* view):
        pass


cdef object records_view(NativeEngine owner, const void* start, Py_ssize_t size):
    cdef _RecordsView view = _RecordsView.__new__(_RecordsView)
    view.owner = owner
    view.start = <const char*>start
    view.size = size
    return memoryview(view)


@cython.final
cdef class NativeEngine:
    """The money state machine over C tables; same contract as ReferenceEngine."""

    implementation = "cython"

    cdef ledger_account_t* accounts
    cdef uint64_t accounts_count
    cdef uint64_t accounts_max
    cdef index_t account_index

    cdef uint8_t* status
    # Per transfer, 32 more bits of its id than its index slot's tag (ledger_fingerprint).
    cdef uint32_t* fingerprints
    cdef uint64_t transfers_count
    cdef uint64_t transfers_max
    cdef index_t transfer_index
    # The hot records: transfer `ordinal` is at ring[ordinal & ring_mask] while ordinal >= hot_first().
    cdef ledger_transfer_t* ring
    cdef uint64_t ring_slots
    cdef uint64_t ring_mask
    cdef uint64_t hot
    # Ordinals from here on are this call's own, hot whatever `hot` says (U64_MAX between calls).
    cdef uint64_t batch_first
    # Ordinals below this were indexed without their records (restore_index): never in the ring.
    cdef uint64_t ring_first
    # Records a replay or restore is taking from its caller's buffer, for the ordinals they stand for.
    cdef const ledger_transfer_t* replay_src
    cdef uint64_t replay_first
    cdef uint64_t replay_count
    # Open holds' records, by ordinal (hold_index: ledger_hash(ordinal, HOLD_SALT) -> slot + 1).
    cdef ledger_transfer_t* holds
    cdef uint64_t* hold_ordinals
    cdef uint32_t* holds_free
    cdef uint64_t holds_capacity
    cdef uint64_t holds_free_count
    cdef uint64_t holds_made
    cdef index_t hold_index
    # Holds released inside the linked chain being applied: forgotten when it commits.
    cdef uint64_t* chain_forget
    cdef uint64_t chain_forget_count
    # Old records read through the cold reader, by ordinal (direct-mapped: cold_keys[k] = ordinal + 1).
    cdef ledger_transfer_t* cold
    cdef uint64_t* cold_keys
    cdef object cold_reader
    cdef object cold_error
    cdef readonly uint64_t cold_reads
    # Bytes of each table filled in order that are faulted in (ledger_table_ready).
    cdef size_t accounts_ready, ring_ready, status_ready, fingerprints_ready, heap_ready

    cdef uint64_t pending_count
    cdef uint64_t pending_max
    cdef ledger_expiry_t* heap
    cdef uint64_t heap_count
    cdef uint64_t heap_capacity

    # The linked chain being applied: what to roll back, and holds to schedule on commit.
    cdef bint in_chain
    cdef undo_t* undo
    cdef uint64_t undo_count
    cdef uint64_t chain_transfers_count
    cdef uint64_t chain_accounts_count
    cdef uint64_t chain_pending_count
    cdef ledger_expiry_t* chain_expiries
    cdef uint64_t chain_expiries_count
    # Balance history of the batch being applied: one 64-byte entry per account with the
    # HISTORY flag after each transfer that touched it (at most two per event).
    cdef uint64_t* history
    cdef uint64_t history_count
    cdef uint64_t chain_history_count

    cdef uint64_t timestamp_last
    # Batches run without the GIL so other threads (I/O, the journal) can run
    # meanwhile; the engine itself has one writer, and this refuses a second.
    cdef bint busy
    # Per group: the hashes of each event's ids, computed once, and its
    # candidate debit and credit account, found by hash tag and confirmed by id
    # when the event is applied.
    cdef ledger_account_t* group_dr[GROUP_SIZE]
    cdef ledger_account_t* group_cr[GROUP_SIZE]
    cdef uint64_t group_id_hash[GROUP_SIZE]
    cdef uint64_t group_dr_hash[GROUP_SIZE]
    cdef uint64_t group_cr_hash[GROUP_SIZE]
    # Old records a group or a lookup will read, gathered to be read in one call of the cold reader.
    cdef uint64_t cold_wanted[COLD_WANTED_MAX]
    cdef object clock
    cdef bint verify_switch

    def __cinit__(self, config=None, *, clock, cold_reader=None):
        if config is None:
            config = EngineConfig()
        self.clock = clock
        self.verify_switch = config.verify
        self.accounts_max = config.accounts_max
        self.transfers_max = config.transfers_max
        self.pending_max = config.pending_transfers_max
        self.heap_capacity = 2 * self.pending_max
        self.cold_reader = cold_reader
        self.batch_first = U64_MAX
        if cold_reader is None:
            # Nothing to read old records back from: every record stays in memory.
            self.hot = U64_MAX
            self.ring_slots = self.transfers_max
        else:
            # The ring holds the hot window and a whole batch beyond it, so that a batch never overwrites a
            # record still hot, nor one of its own.
            self.hot = config.transfers_hot
            self.ring_slots = 1
            while self.ring_slots < self.hot + BATCH_EVENTS_MAX:
                self.ring_slots *= 2
            if self.ring_slots >= self.transfers_max:
                self.ring_slots = self.transfers_max
        self.ring_mask = self.ring_slots - 1 if self.ring_slots < self.transfers_max else U64_MAX
        # A linked chain may release holds it forgets only when it commits: up to a batch more than are open.
        self.holds_capacity = self.pending_max + BATCH_EVENTS_MAX
        needed = self.accounts_max * (sizeof(ledger_account_t) + 2 * sizeof(ledger_slot_t))
        available = available_memory_bytes()
        if available is not None and needed > available:
            # Accounts stay in memory: a limit the machine could never hold is a mistake, said at start.
            raise MemoryError(
                f"accounts_max={self.accounts_max} needs {needed >> 20} MiB when full, and accounts stay in "
                f"memory; {available >> 20} MiB is available"
            )
        self.accounts = <ledger_account_t*>ledger_table_alloc(self.accounts_max * sizeof(ledger_account_t), 1)
        if (index_init(&self.account_index) != 0 or index_init(&self.transfer_index) != 0
                or index_init(&self.hold_index) != 0):
            raise MemoryError("cannot allocate the engine's indexes")
        self.ring = <ledger_transfer_t*>ledger_table_alloc(self.ring_slots * sizeof(ledger_transfer_t), 0)
        self.status = <uint8_t*>ledger_table_alloc(self.transfers_max, 0)
        self.fingerprints = <uint32_t*>ledger_table_alloc(self.transfers_max * sizeof(uint32_t), 0)
        self.heap = <ledger_expiry_t*>ledger_table_alloc(self.heap_capacity * sizeof(ledger_expiry_t), 0)
        self.holds = <ledger_transfer_t*>ledger_table_alloc(self.holds_capacity * sizeof(ledger_transfer_t), 0)
        self.hold_ordinals = <uint64_t*>ledger_table_alloc(self.holds_capacity * sizeof(uint64_t), 0)
        self.holds_free = <uint32_t*>ledger_table_alloc(self.holds_capacity * sizeof(uint32_t), 0)
        # An event of a chain records at most three undo entries: its debit and
        # credit accounts, and the status of the hold it posts or voids.
        self.undo = <undo_t*>calloc(3 * BATCH_EVENTS_MAX, sizeof(undo_t))
        self.chain_expiries = <ledger_expiry_t*>calloc(BATCH_EVENTS_MAX, sizeof(ledger_expiry_t))
        self.chain_forget = <uint64_t*>calloc(BATCH_EVENTS_MAX, sizeof(uint64_t))
        self.history = <uint64_t*>calloc(2 * BATCH_EVENTS_MAX, 64)
        self.cold = <ledger_transfer_t*>calloc(COLD_SLOTS, sizeof(ledger_transfer_t))
        self.cold_keys = <uint64_t*>calloc(COLD_SLOTS, sizeof(uint64_t))
        if (self.accounts == NULL or self.ring == NULL or self.status == NULL or self.fingerprints == NULL
                or self.heap == NULL
                or self.holds == NULL or self.hold_ordinals == NULL or self.holds_free == NULL
                or self.undo == NULL or self.chain_expiries == NULL or self.chain_forget == NULL
                or self.history == NULL or self.cold == NULL or self.cold_keys == NULL):
            raise MemoryError(
                f"cannot allocate engine tables for {self.accounts_max} accounts, {self.transfers_max} transfers "
                f"and {self.pending_max} pending transfers"
            )

    def __dealloc__(self):
        ledger_table_free(self.accounts, self.accounts_max * sizeof(ledger_account_t))
        index_free(&self.account_index)
        ledger_table_free(self.ring, self.ring_slots * sizeof(ledger_transfer_t))
        ledger_table_free(self.status, self.transfers_max)
        ledger_table_free(self.fingerprints, self.transfers_max * sizeof(uint32_t))
        index_free(&self.transfer_index)
        index_free(&self.hold_index)
        ledger_table_free(self.heap, self.heap_capacity * sizeof(ledger_expiry_t))
        ledger_table_free(self.holds, self.holds_capacity * sizeof(ledger_transfer_t))
        ledger_table_free(self.hold_ordinals, self.holds_capacity * sizeof(uint64_t))
        ledger_table_free(self.holds_free, self.holds_capacity * sizeof(uint32_t))
        free(self.undo)
        free(self.chain_expiries)
        free(self.chain_forget)
        free(self.history)
        free(self.cold)
        free(self.cold_keys)

    cdef int enter(self) except -1:
        self.check_idle()
        self.busy = True
        return 0

    cdef int check_idle(self) except -1:
        if self.busy:
            raise RuntimeError("the engine is applying a batch in another thread: it takes one caller at a time")
        return 0

    # -- timestamps ------------------------------------------------------------

    cdef void make_ready(self, uint64_t accounts, uint64_t transfers) noexcept nogil:
        """Fault in the tables' memory for this many more accounts and transfers (and holds), ahead of use."""
        ledger_table_ready(self.accounts, self.accounts_max * sizeof(ledger_account_t), &self.accounts_ready,
                           (self.accounts_count + accounts) * sizeof(ledger_account_t))
        if transfers:
            ledger_table_ready(self.ring, self.ring_slots * sizeof(ledger_transfer_t), &self.ring_ready,
                               min(self.transfers_count + transfers, self.ring_slots) * sizeof(ledger_transfer_t))
            ledger_table_ready(self.status, self.transfers_max, &self.status_ready, self.transfers_count + transfers)
            ledger_table_ready(self.fingerprints, self.transfers_max * sizeof(uint32_t), &self.fingerprints_ready,
                               (self.transfers_count + transfers) * sizeof(uint32_t))
            ledger_table_ready(self.heap, self.heap_capacity * sizeof(ledger_expiry_t), &self.heap_ready,
                               (self.heap_count + transfers) * sizeof(ledger_expiry_t))

    # -- where a transfer's record is ------------------------------------------------

    cdef inline uint64_t hot_first(self) noexcept nogil:
        """The oldest ordinal whose record is in the ring."""
        cdef uint64_t first = self.transfers_count - self.hot if self.transfers_count > self.hot else 0
        if first > self.batch_first:
            first = self.batch_first
        return first if first > self.ring_first else self.ring_first

    cdef inline const ledger_transfer_t* record_at(self, uint64_t ordinal) noexcept nogil:
        """The record of transfer `ordinal` (< transfers_count), wherever it is kept. A pointer into the ring is
        good until the next transfer is stored; one into the cold cache until the next cold read."""
        if ordinal >= self.hot_first():
            return &self.ring[ordinal & self.ring_mask]
        return self.record_behind(ordinal)

    cdef const ledger_transfer_t* record_behind(self, uint64_t ordinal) noexcept nogil:
        """A record older than the ring holds: from the entries being replayed, the open holds, the cold cache,
        or else read through the cold reader."""
        cdef const ledger_transfer_t* hold
        cdef uint64_t k
        if self.replay_src != NULL and ordinal - self.replay_first < self.replay_count:
            return &self.replay_src[ordinal - self.replay_first]
        hold = self.hold_at(ordinal)
        if hold != NULL:
            return hold
        k = ordinal & (COLD_SLOTS - 1)
        if self.cold_keys[k] != ordinal + 1:
            with gil:
                self.read_cold([ordinal])
            if self.cold_keys[k] != ordinal + 1:
                return &ZERO_TRANSFER  # the reader failed: cold_error says why, and the call raises it
        return &self.cold[k]

    cdef int read_cold(self, list ordinals) noexcept:
        """Read these ordinals' records through the cold reader into the cold cache. A failure is kept in
        cold_error (the first one), for the call to raise once it may."""
        cdef uint64_t k
        cdef const uint8_t[::1] record
        try:
            if self.cold_reader is None:
                raise ColdRecordUnavailable("the engine has no cold reader")
            found = self.cold_reader(ordinals)
            self.cold_reads += len(ordinals)
            for ordinal in ordinals:
                data = found.get(ordinal)
                if data is None or len(data) != sizeof(ledger_transfer_t):
                    raise ColdRecordUnavailable(f"the record of transfer ordinal {ordinal} is not in the journal")
                record = data
                k = ordinal & (COLD_SLOTS - 1)
                memcpy(&self.cold[k], &record[0], sizeof(ledger_transfer_t))
                self.cold_keys[k] = ordinal + 1
        except BaseException as exc:
            if self.cold_error is None:
                self.cold_error = exc
        return 0

    cdef int check_cold(self) except -1:
        """Raise what went wrong reading old records during the call, if anything did."""
        cdef object error = self.cold_error
        if error is not None:
            self.cold_error = None
            if isinstance(error, ColdRecordUnavailable):
                raise error
            raise ColdRecordUnavailable(f"an old transfer's record could not be read: {error!r}") from error
        return 0

    cdef Py_ssize_t cold_candidates(self, uint64_t lo, uint64_t hi, uint64_t hash, uint64_t first,
                                    Py_ssize_t n) noexcept nogil:
        """Add to cold_wanted[n:] the ordinals of the old records that finding this id would read (its own, if
        it is old; another's only on a tag and fingerprint match); the new count. Past COLD_WANTED_MAX the rest
        are read when met."""
        cdef const shard_t* shard = shard_of(&self.transfer_index, hash)
        cdef uint32_t tag = tag_of(hash)
        cdef uint64_t j = home_of(tag, shard.slots_count)
        cdef uint64_t ordinal
        while shard.slots[j].pos1 != 0:
            ordinal = shard.slots[j].pos1 - 1
            if (shard.slots[j].tag == tag and ordinal < first and n < COLD_WANTED_MAX
                    and self.fingerprints[ordinal] == ledger_fingerprint(lo, hi)
                    and self.cold_keys[ordinal & (COLD_SLOTS - 1)] != ordinal + 1
                    and self.hold_at(ordinal) == NULL):
                self.cold_wanted[n] = ordinal
                n += 1
            j += 1
            if j == shard.slots_count:
                j = 0
        return n

    cdef void read_cold_wanted(self, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t k
        with gil:
            self.read_cold([self.cold_wanted[k] for k in range(n)])

    cdef int prefetch_cold(self, const uint64_t* id_words, Py_ssize_t count) except -1:
        """Read in one call the old records that finding these ids (pairs of words) will compare against. The
        ids go in groups: their index slots are prefetched, then walked."""
        cdef Py_ssize_t base, k, n = 0
        cdef uint64_t hash, first = self.hot_first()
        cdef const shard_t* shard
        if first == 0:
            return 0  # every record is in the ring
        for base in range(0, count, GROUP_SIZE):
            for k in range(min(GROUP_SIZE, count - base)):
                hash = ledger_hash(id_words[2 * (base + k)], id_words[2 * (base + k) + 1])
                self.group_id_hash[k] = hash
                shard = shard_of(&self.transfer_index, hash)
                ledger_prefetch(&shard.slots[home_of(tag_of(hash), shard.slots_count)])
            for k in range(min(GROUP_SIZE, count - base)):
                n = self.cold_candidates(id_words[2 * (base + k)], id_words[2 * (base + k) + 1],
                                         self.group_id_hash[k], first, n)
            if n >= COLD_WANTED_MAX // 2:
                self.read_cold_wanted(n)
                n = 0
        if n:
            self.read_cold_wanted(n)
        return 0

    cdef inline ledger_slot_t* transfer_probe(self, uint64_t lo, uint64_t hi, uint64_t hash) noexcept nogil:
        """The transfer index's slot holding the id, or the empty slot where it would go."""
        cdef const shard_t* shard = shard_of(&self.transfer_index, hash)
        cdef uint32_t tag = tag_of(hash)
        cdef uint64_t i = home_of(tag, shard.slots_count)
        cdef const ledger_transfer_t* record
        cdef uint32_t fingerprint = 0
        cdef bint fingerprinted = False
        while True:
            if shard.slots[i].pos1 == 0:
                return &shard.slots[i]
            if shard.slots[i].tag == tag:
                if not fingerprinted:
                    fingerprint = ledger_fingerprint(lo, hi)
                    fingerprinted = True
                if self.fingerprints[shard.slots[i].pos1 - 1] == fingerprint:
                    record = self.record_at(shard.slots[i].pos1 - 1)
                    if record.id_lo == lo and record.id_hi == hi:
                        return &shard.slots[i]
            i += 1
            if i == shard.slots_count:
                i = 0

    cdef inline uint64_t transfer_find(self, uint64_t lo, uint64_t hi) noexcept nogil:
        """The transfer's ordinal + 1, or 0 when the id is absent."""
        return self.transfer_probe(lo, hi, ledger_hash(lo, hi)).pos1

    cdef inline ledger_slot_t* hold_probe(self, uint64_t ordinal, uint64_t hash) noexcept nogil:
        cdef const shard_t* shard = shard_of(&self.hold_index, hash)
        cdef uint32_t tag = tag_of(hash)
        cdef uint64_t i = home_of(tag, shard.slots_count)
        while True:
            if shard.slots[i].pos1 == 0:
                return &shard.slots[i]
            if shard.slots[i].tag == tag and self.hold_ordinals[shard.slots[i].pos1 - 1] == ordinal:
                return &shard.slots[i]
            i += 1
            if i == shard.slots_count:
                i = 0

    cdef inline const ledger_transfer_t* hold_at(self, uint64_t ordinal) noexcept nogil:
        """The kept record of an open hold (or of one released by the chain being applied), or NULL."""
        cdef uint64_t pos1 = self.hold_probe(ordinal, ledger_hash(ordinal, HOLD_SALT)).pos1
        return &self.holds[pos1 - 1] if pos1 != 0 else NULL

    cdef int hold_keep(self, uint64_t ordinal, const ledger_transfer_t* record) noexcept nogil:
        """Keep an open hold's record for as long as it is open; -1 without the memory to."""
        cdef uint64_t hash = ledger_hash(ordinal, HOLD_SALT)
        cdef ledger_slot_t* slot
        cdef uint64_t h
        if index_room(&self.hold_index, hash) != 0:
            return -1
        slot = self.hold_probe(ordinal, hash)
        if slot.pos1 != 0:
            return 0
        if self.holds_free_count:
            self.holds_free_count -= 1
            h = self.holds_free[self.holds_free_count]
        elif self.holds_made < self.holds_capacity:
            h = self.holds_made
            self.holds_made += 1
        else:
            return -1
        memcpy(&self.holds[h], record, sizeof(ledger_transfer_t))
        self.hold_ordinals[h] = ordinal
        index_put(&self.hold_index, slot, hash, h + 1)
        return 0

    cdef void hold_forget(self, uint64_t ordinal) noexcept nogil:
        cdef uint64_t hash = ledger_hash(ordinal, HOLD_SALT)
        cdef uint64_t pos1 = self.hold_probe(ordinal, hash).pos1
        if pos1 == 0:
            return
        index_remove(&self.hold_index, hash, pos1)
        self.holds_free[self.holds_free_count] = <uint32_t>(pos1 - 1)
        self.holds_free_count += 1

    cdef object entries_of(self, uint64_t first, uint64_t count):
        """The records of ordinals [first, first + count), all in the ring, as one buffer: a view of the ring,
        or a copy where they wrap around its end."""
        cdef uint64_t at = first & self.ring_mask
        cdef uint64_t head
        if count == 0:
            return b""
        if self.ring_mask == U64_MAX or at + count <= self.ring_slots:
            return records_view(self, &self.ring[at], count * 128)
        head = self.ring_slots - at
        return (PyBytes_FromStringAndSize(<const char*>&self.ring[at], head * 128)
                + PyBytes_FromStringAndSize(<const char*>self.ring, (count - head) * 128))

    cdef uint64_t reserve_timestamps(self, Py_ssize_t count) except? 0:
        now = int(self.clock())
        first = max(now, self.timestamp_last + 1)
        if first + count - 1 > TIMESTAMP_MAX:
            raise ClockExhausted(f"timestamp {first + count - 1} would exceed TIMESTAMP_MAX={TIMESTAMP_MAX}")
        self.timestamp_last = first + count - 1
        return first

    # -- linked chains ---------------------------------------------------------

    cdef inline void chain_begin(self) noexcept nogil:
        self.in_chain = True
        self.undo_count = 0
        self.chain_transfers_count = self.transfers_count
        self.chain_accounts_count = self.accounts_count
        self.chain_pending_count = self.pending_count
        self.chain_expiries_count = 0
        self.chain_forget_count = 0
        self.chain_history_count = self.history_count

    cdef inline void touch(self, ledger_account_t* account) noexcept nogil:
        cdef undo_t* u
        if self.in_chain:
            u = &self.undo[self.undo_count]
            self.undo_count += 1
            u.kind = UNDO_ACCOUNT
            u.pos = account - self.accounts
            u.debits_pending = account.debits_pending
            u.debits_posted = account.debits_posted
            u.credits_pending = account.credits_pending
            u.credits_posted = account.credits_posted
            u.flags = account.flags

    cdef inline void set_status(self, uint64_t pos, uint8_t status) noexcept nogil:
        cdef undo_t* u
        if self.in_chain:
            u = &self.undo[self.undo_count]
            self.undo_count += 1
            u.kind = UNDO_STATUS
            u.pos = pos
            u.flags = self.status[pos]
        self.status[pos] = status

    cdef void chain_rollback(self) noexcept nogil:
        cdef undo_t* u
        cdef ledger_account_t* account
        cdef ledger_transfer_t* transfer
        cdef uint64_t i = self.undo_count
        while i > 0:
            i -= 1
            u = &self.undo[i]
            if u.kind == UNDO_ACCOUNT:
                account = &self.accounts[u.pos]
                account.debits_pending = u.debits_pending
                account.debits_posted = u.debits_posted
                account.credits_pending = u.credits_pending
                account.credits_posted = u.credits_posted
                account.flags = <uint16_t>u.flags
            else:
                self.status[u.pos] = <uint8_t>u.flags
        while self.transfers_count > self.chain_transfers_count:
            self.transfers_count -= 1
            transfer = &self.ring[self.transfers_count & self.ring_mask]
            index_remove(&self.transfer_index, ledger_hash(transfer.id_lo, transfer.id_hi), self.transfers_count + 1)
            self.hold_forget(self.transfers_count)
            self.status[self.transfers_count] = S_NONE
            memset(transfer, 0, sizeof(ledger_transfer_t))
        while self.accounts_count > self.chain_accounts_count:
            self.accounts_count -= 1
            account = &self.accounts[self.accounts_count]
            index_remove(&self.account_index, ledger_hash(account.id_lo, account.id_hi), self.accounts_count + 1)
            memset(account, 0, sizeof(ledger_account_t))
        self.pending_count = self.chain_pending_count
        self.history_count = self.chain_history_count
        self.chain_end()

    cdef void chain_commit(self) noexcept nogil:
        cdef uint64_t i
        for i in range(self.chain_expiries_count):
            self.heap_push(&self.chain_expiries[i])
        for i in range(self.chain_forget_count):
            self.hold_forget(self.chain_forget[i])
        self.chain_end()

    cdef inline void chain_end(self) noexcept nogil:
        self.in_chain = False
        self.undo_count = 0
        self.chain_expiries_count = 0
        self.chain_forget_count = 0

    # -- the expiry heap (ordered by expires_at, then the hold's timestamp) ------

    cdef inline bint heap_less(self, uint64_t a, uint64_t b) noexcept nogil:
        return (self.heap[a].expires_at < self.heap[b].expires_at
                or (self.heap[a].expires_at == self.heap[b].expires_at
                    and self.heap[a].timestamp < self.heap[b].timestamp))

    cdef void heap_sift_up(self, uint64_t i) noexcept nogil:
        cdef ledger_expiry_t entry
        cdef uint64_t parent
        while i > 0:
            parent = (i - 1) // 2
            if not self.heap_less(i, parent):
                break
            entry = self.heap[i]
            self.heap[i] = self.heap[parent]
            self.heap[parent] = entry
            i = parent

    cdef void heap_sift_down(self, uint64_t i) noexcept nogil:
        cdef ledger_expiry_t entry
        cdef uint64_t child, smallest
        while True:
            smallest = i
            child = 2 * i + 1
            if child < self.heap_count and self.heap_less(child, smallest):
                smallest = child
            if child + 1 < self.heap_count and self.heap_less(child + 1, smallest):
                smallest = child + 1
            if smallest == i:
                return
            entry = self.heap[i]
            self.heap[i] = self.heap[smallest]
            self.heap[smallest] = entry
            i = smallest

    cdef void heap_push(self, const ledger_expiry_t* entry) noexcept nogil:
        cdef uint64_t i, kept
        if self.heap_count == self.heap_capacity:
            # Drop entries of holds already posted, voided or expired; live holds
            # number at most pending_max, so at least half the heap comes free.
            kept = 0
            for i in range(self.heap_count):
                if self.status[self.heap[i].pos] == S_PENDING:
                    self.heap[kept] = self.heap[i]
                    kept += 1
            self.heap_count = kept
            i = kept // 2
            while i > 0:
                i -= 1
                self.heap_sift_down(i)
        self.heap[self.heap_count] = entry[0]
        self.heap_count += 1
        self.heap_sift_up(self.heap_count - 1)

    cdef void heap_pop(self) noexcept nogil:
        self.heap_count -= 1
        if self.heap_count > 0:
            self.heap[0] = self.heap[self.heap_count]
            self.heap_sift_down(0)

    cdef void schedule_expiry(self, const ledger_transfer_t* hold, uint64_t pos) noexcept nogil:
        cdef ledger_expiry_t entry
        entry.expires_at = hold.timestamp + <uint64_t>hold.timeout * NS_PER_S
        entry.timestamp = hold.timestamp
        entry.pos = pos
        if self.in_chain:
            self.chain_expiries[self.chain_expiries_count] = entry
            self.chain_expiries_count += 1
        else:
            self.heap_push(&entry)

    # -- holds -------------------------------------------------------------------

    cdef void release_hold(self, uint64_t pos, uint8_t status) noexcept nogil:
        cdef const ledger_transfer_t* hold = self.record_at(pos)
        cdef ledger_account_t* dr = &self.accounts[index_find(&self.account_index, <const uint8_t*>self.accounts, hold.dr_lo, hold.dr_hi) - 1]
        cdef ledger_account_t* cr = &self.accounts[index_find(&self.account_index, <const uint8_t*>self.accounts, hold.cr_lo, hold.cr_hi) - 1]
        self.touch(dr)
        self.touch(cr)
        dr.debits_pending -= hold.amount
        cr.credits_pending -= hold.amount
        if status != S_POSTED:
            if hold.flags & TF_CLOSING_DEBIT:
                dr.flags &= ~AF_CLOSED
            if hold.flags & TF_CLOSING_CREDIT:
                cr.flags &= ~AF_CLOSED
        self.set_status(pos, status)
        self.pending_count -= 1
        if self.in_chain:
            # Kept until the chain commits: a rollback reopens the hold.
            self.chain_forget[self.chain_forget_count] = pos
            self.chain_forget_count += 1
        else:
            self.hold_forget(pos)

    cdef bytes expire(self, uint64_t now):
        cdef uint64_t pos
        expired = bytearray()
        while self.heap_count > 0 and self.heap[0].expires_at <= now:
            pos = self.heap[0].pos
            self.heap_pop()
            if self.status[pos] != S_PENDING:
                continue
            expired += PyBytes_FromStringAndSize(<const char*>self.record_at(pos), 16)
            self.release_hold(pos, S_EXPIRED)
        return bytes(expired)

    # -- accounts ----------------------------------------------------------------

    cdef uint32_t account_prefix(self, const ledger_account_t* a, uint64_t* out_timestamp) noexcept nogil:
        cdef uint64_t pos1
        if a.timestamp != 0:
            return A_TIMESTAMP_MUST_BE_ZERO
        if (a.reserved != 0 or a.reserved_tail[0] != 0 or a.reserved_tail[1] != 0 or a.reserved_tail[2] != 0
                or a.reserved_tail[3] != 0):
            return A_RESERVED_FIELD
        if a.flags & ~AF_KNOWN:
            return A_RESERVED_FLAG
        if id_is_zero(a.id_lo, a.id_hi):
            return A_ID_MUST_NOT_BE_ZERO
        if id_is_max(a.id_lo, a.id_hi):
            return A_ID_MUST_NOT_BE_INT_MAX
        pos1 = index_find(&self.account_index, <const uint8_t*>self.accounts, a.id_lo, a.id_hi)
        if pos1 != 0:
            out_timestamp[0] = self.accounts[pos1 - 1].timestamp
            return account_exists(a, &self.accounts[pos1 - 1])
        return A_UNSPECIFIED

    cdef uint32_t create_account(self, const ledger_account_t* a, uint64_t timestamp,
                                 uint64_t* out_timestamp) noexcept nogil:
        cdef uint32_t result = self.account_prefix(a, out_timestamp)
        cdef uint64_t hash
        cdef ledger_slot_t* slot
        cdef ledger_account_t* stored
        if result != A_UNSPECIFIED:
            return result
        if a.flags & AF_DMNEC and a.flags & AF_CMNED:
            return A_FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if a.debits_pending != 0:
            return A_DEBITS_PENDING_MUST_BE_ZERO
        if a.debits_posted != 0:
            return A_DEBITS_POSTED_MUST_BE_ZERO
        if a.credits_pending != 0:
            return A_CREDITS_PENDING_MUST_BE_ZERO
        if a.credits_posted != 0:
            return A_CREDITS_POSTED_MUST_BE_ZERO
        if a.ledger == 0:
            return A_LEDGER_MUST_NOT_BE_ZERO
        if a.code == 0:
            return A_CODE_MUST_NOT_BE_ZERO
        if self.accounts_count >= self.accounts_max:
            return A_ACCOUNTS_FULL
        hash = ledger_hash(a.id_lo, a.id_hi)
        if index_room(&self.account_index, hash) != 0:
            return A_ACCOUNTS_FULL  # no memory to grow the index by: full, as at the limit
        slot = index_probe(&self.account_index, <const uint8_t*>self.accounts, a.id_lo, a.id_hi, hash)
        stored = &self.accounts[self.accounts_count]
        memcpy(stored, a, sizeof(ledger_account_t))
        stored.timestamp = timestamp
        self.accounts_count += 1
        index_put(&self.account_index, slot, hash, self.accounts_count)
        out_timestamp[0] = timestamp
        return A_OK

    def create_accounts(self, events):
        cdef Py_ssize_t count = check_batch(events, RECORD_SIZE, "accounts")
        cdef const uint8_t[::1] data
        cdef const ledger_account_t* src
        cdef uint64_t first = self.timestamp_last
        cdef uint64_t entries_start = self.accounts_count
        self.check_idle()
        if count:
            data = events
            src = <const ledger_account_t*>&data[0]
            first = self.reserve_timestamps(count)
            self.make_ready(count, 0)
        results = PyBytes_FromStringAndSize(NULL, count * 16)
        cdef char* out = PyBytes_AS_STRING(results)
        self.enter()
        try:
            with nogil:
                self.run_accounts(src, count, first, out)
        finally:
            self.busy = False
        self.check_invariants()
        return AccountsApplied(
            results=results,
            # A copy: account records change as transfers move money, entries must not.
            entries=PyBytes_FromStringAndSize(<const char*>&self.accounts[entries_start],
                                              (self.accounts_count - entries_start) * 128),
            timestamp_last=self.timestamp_last,
        )

    cdef void run_accounts(self, const ledger_account_t* src, Py_ssize_t count, uint64_t first,
                           char* out) noexcept nogil:
        cdef ledger_account_t a
        cdef Py_ssize_t i = 0, j, chain_start = -1, chain_end
        cdef bint chain_failed = False, linked, all_exist
        cdef uint32_t result
        cdef uint64_t timestamp
        while i < count:
            memcpy(&a, &src[i], sizeof(ledger_account_t))
            linked = (a.flags & AF_LINKED) != 0
            if chain_start < 0 and linked:
                chain_start = i
                self.chain_begin()
            if chain_failed:
                write_account_result(out, i, A_LINKED_EVENT_FAILED, 0)
            elif linked and i == count - 1:
                write_account_result(out, i, A_LINKED_EVENT_CHAIN_OPEN, 0)
                self.fail_account_chain(out, chain_start, i)
                chain_failed = True
            else:
                timestamp = 0
                result = self.create_account(&a, first + i, &timestamp)
                write_account_result(out, i, result, timestamp)
                if result != A_OK and chain_start >= 0:
                    chain_end = i
                    while chain_end < count and src[chain_end].flags & AF_LINKED:
                        chain_end += 1
                    all_exist = i == chain_start and result == A_EXISTS and chain_end < count
                    j = i + 1
                    while all_exist and j <= chain_end:
                        timestamp = 0
                        all_exist = self.account_prefix(&src[j], &timestamp) == A_EXISTS
                        j += 1
                    if all_exist:
                        for j in range(i + 1, chain_end + 1):
                            timestamp = 0
                            result = self.account_prefix(&src[j], &timestamp)
                            write_account_result(out, j, result, timestamp)
                        i = chain_end
                        linked = False
                    else:
                        self.fail_account_chain(out, chain_start, i)
                        chain_failed = True
            if not linked:
                if chain_start >= 0 and not chain_failed:
                    self.chain_commit()
                self.chain_end()
                chain_start = -1
                chain_failed = False
            i += 1
        self.chain_end()

    cdef void fail_account_chain(self, char* out, Py_ssize_t start, Py_ssize_t failed) noexcept nogil:
        cdef Py_ssize_t j
        self.chain_rollback()
        for j in range(start, failed):
            write_account_result(out, j, A_LINKED_EVENT_FAILED, 0)

    # -- transfers ---------------------------------------------------------------

    cdef inline uint32_t transfer_prefix(self, const ledger_transfer_t* t, uint64_t hash, ledger_slot_t** out_slot,
                                         uint64_t* out_timestamp, uint64_t* out_amount) noexcept nogil:
        """The ladder up to the idempotency check (`hash` is ledger_hash of t's id); UNSPECIFIED when it passes."""
        cdef uint64_t pos1
        cdef ledger_slot_t* slot
        cdef const ledger_transfer_t* e
        if t.timestamp != 0:
            return T_TIMESTAMP_MUST_BE_ZERO
        if t.reserved != 0:
            return T_RESERVED_FIELD
        if t.flags & ~TF_KNOWN:
            return T_RESERVED_FLAG
        if id_is_zero(t.id_lo, t.id_hi):
            return T_ID_MUST_NOT_BE_ZERO
        if id_is_max(t.id_lo, t.id_hi):
            return T_ID_MUST_NOT_BE_INT_MAX
        if index_room(&self.transfer_index, hash) != 0:
            return T_TRANSFERS_FULL  # no memory to grow the index by: full, as at the limit
        slot = self.transfer_probe(t.id_lo, t.id_hi, hash)
        out_slot[0] = slot
        pos1 = slot.pos1
        if pos1 != 0:
            e = self.record_at(pos1 - 1)
            out_timestamp[0] = e.timestamp
            out_amount[0] = e.amount
            return transfer_exists(t, e)
        return T_UNSPECIFIED

    cdef inline ledger_account_t* find_account(self, uint64_t lo, uint64_t hi) noexcept nogil:
        cdef uint64_t pos1 = index_find(&self.account_index, <const uint8_t*>self.accounts, lo, hi)
        return &self.accounts[pos1 - 1] if pos1 != 0 else NULL

    cdef inline uint64_t store_transfer(self, const ledger_transfer_t* record, ledger_slot_t* slot,
                                        uint64_t hash) noexcept nogil:
        cdef uint64_t pos = self.transfers_count
        ledger_stream_record(&self.ring[pos & self.ring_mask], record)
        self.fingerprints[pos] = ledger_fingerprint(record.id_lo, record.id_hi)
        self.transfers_count += 1
        index_put(&self.transfer_index, slot, hash, self.transfers_count)
        return pos

    cdef uint32_t create_transfer(self, ledger_transfer_t* t, uint64_t hash, uint64_t timestamp,
                                  ledger_account_t* dr_hint, ledger_account_t* cr_hint, uint64_t* out_timestamp,
                                  uint64_t* out_amount) noexcept nogil:
        cdef uint64_t amount, available, pos
        cdef ledger_slot_t* slot = NULL
        cdef uint32_t result = self.transfer_prefix(t, hash, &slot, out_timestamp, out_amount)
        cdef uint16_t flags = t.flags
        cdef bint pending
        cdef ledger_account_t* dr
        cdef ledger_account_t* cr
        if result != T_UNSPECIFIED:
            return result
        if ((flags & TF_PENDING and flags & TF_POST_OR_VOID)
                or (flags & TF_POST and flags & TF_VOID)
                or (flags & TF_POST_OR_VOID and flags & (TF_BALANCING | TF_CLOSING))):
            return T_FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if flags & TF_POST_OR_VOID:
            return self.post_or_void(t, timestamp, slot, hash, out_timestamp, out_amount)
        if id_is_zero(t.dr_lo, t.dr_hi):
            return T_DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if id_is_max(t.dr_lo, t.dr_hi):
            return T_DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
        if id_is_zero(t.cr_lo, t.cr_hi):
            return T_CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if id_is_max(t.cr_lo, t.cr_hi):
            return T_CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
        if t.dr_lo == t.cr_lo and t.dr_hi == t.cr_hi:
            return T_ACCOUNTS_MUST_BE_DIFFERENT
        if not id_is_zero(t.pending_lo, t.pending_hi):
            return T_PENDING_ID_MUST_BE_ZERO
        pending = (flags & TF_PENDING) != 0
        if not pending:
            if t.timeout != 0:
                return T_TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
            if flags & TF_CLOSING:
                return T_CLOSING_TRANSFER_MUST_BE_PENDING
        if t.amount == 0:
            return T_AMOUNT_MUST_NOT_BE_ZERO
        if t.amount > AMOUNT_MAX:
            return T_AMOUNT_EXCEEDS_MAX
        if t.ledger == 0:
            return T_LEDGER_MUST_NOT_BE_ZERO
        if t.code == 0:
            return T_CODE_MUST_NOT_BE_ZERO
        dr = dr_hint if dr_hint != NULL and dr_hint.id_lo == t.dr_lo and dr_hint.id_hi == t.dr_hi else self.find_account(t.dr_lo, t.dr_hi)
        if dr == NULL:
            return T_DEBIT_ACCOUNT_NOT_FOUND
        cr = cr_hint if cr_hint != NULL and cr_hint.id_lo == t.cr_lo and cr_hint.id_hi == t.cr_hi else self.find_account(t.cr_lo, t.cr_hi)
        if cr == NULL:
            return T_CREDIT_ACCOUNT_NOT_FOUND
        if dr.ledger != cr.ledger:
            return T_ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
        if t.ledger != dr.ledger:
            return T_TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
        if dr.flags & AF_CLOSED:
            return T_DEBIT_ACCOUNT_ALREADY_CLOSED
        if cr.flags & AF_CLOSED:
            return T_CREDIT_ACCOUNT_ALREADY_CLOSED
        amount = t.amount
        if flags & TF_BALANCING_DEBIT:
            available = dr.debits_posted + dr.debits_pending
            available = dr.credits_posted - available if dr.credits_posted > available else 0
            if available < amount:
                amount = available
            if amount == 0:
                return T_EXCEEDS_CREDITS
        if flags & TF_BALANCING_CREDIT:
            available = cr.credits_posted + cr.credits_pending
            available = cr.debits_posted - available if cr.debits_posted > available else 0
            if available < amount:
                amount = available
            if amount == 0:
                return T_EXCEEDS_DEBITS
        # Every balance and amount is at most AMOUNT_MAX < 2**63, so no sum below wraps.
        if pending:
            if dr.debits_pending + amount > AMOUNT_MAX:
                return T_OVERFLOWS_DEBITS_PENDING
            if cr.credits_pending + amount > AMOUNT_MAX:
                return T_OVERFLOWS_CREDITS_PENDING
        else:
            if dr.debits_posted + amount > AMOUNT_MAX:
                return T_OVERFLOWS_DEBITS_POSTED
            if cr.credits_posted + amount > AMOUNT_MAX:
                return T_OVERFLOWS_CREDITS_POSTED
        if dr.debits_pending + dr.debits_posted + amount > AMOUNT_MAX:
            return T_OVERFLOWS_DEBITS
        if cr.credits_pending + cr.credits_posted + amount > AMOUNT_MAX:
            return T_OVERFLOWS_CREDITS
        if pending and timestamp + <uint64_t>t.timeout * NS_PER_S > TIMESTAMP_MAX:
            return T_OVERFLOWS_TIMEOUT
        if dr.flags & AF_DMNEC and dr.debits_pending + dr.debits_posted + amount > dr.credits_posted:
            return T_EXCEEDS_CREDITS
        if cr.flags & AF_CMNED and cr.credits_pending + cr.credits_posted + amount > cr.debits_posted:
            return T_EXCEEDS_DEBITS
        if self.transfers_count >= self.transfers_max:
            return T_TRANSFERS_FULL
        if pending and self.pending_count >= self.pending_max:
            return T_PENDING_TRANSFERS_FULL
        if pending and index_room(&self.hold_index, ledger_hash(self.transfers_count, HOLD_SALT)) != 0:
            return T_PENDING_TRANSFERS_FULL  # no memory to grow the open holds' index by: full, as at the limit
        # `t` is the caller's scratch copy of the event: it becomes the stored record.
        t.amount = amount
        t.timestamp = timestamp
        pos = self.store_transfer(t, slot, hash)
        self.book_created(t, pos, dr, cr)
        out_timestamp[0] = timestamp
        out_amount[0] = amount
        return T_OK

    cdef inline void book_created(self, const ledger_transfer_t* t, uint64_t pos, ledger_account_t* dr,
                                  ledger_account_t* cr) noexcept nogil:
        self.touch(dr)
        self.touch(cr)
        if t.flags & TF_PENDING:
            dr.debits_pending += t.amount
            cr.credits_pending += t.amount
            if t.flags & TF_CLOSING_DEBIT:
                dr.flags |= AF_CLOSED
            if t.flags & TF_CLOSING_CREDIT:
                cr.flags |= AF_CLOSED
            self.status[pos] = S_PENDING
            self.pending_count += 1
            self.hold_keep(pos, t)  # room was made before the transfer was stored
            if t.timeout:
                self.schedule_expiry(t, pos)
        else:
            dr.debits_posted += t.amount
            cr.credits_posted += t.amount
        self.note_balances(t.timestamp, dr, cr)

    cdef inline void note_balances(self, uint64_t timestamp, const ledger_account_t* dr,
                                   const ledger_account_t* cr) noexcept nogil:
        if dr.flags & AF_HISTORY:
            self.note_balance(timestamp, dr)
        if cr.flags & AF_HISTORY:
            self.note_balance(timestamp, cr)

    cdef inline void note_balance(self, uint64_t timestamp, const ledger_account_t* a) noexcept nogil:
        cdef uint64_t* entry = &self.history[8 * self.history_count]
        self.history_count += 1
        entry[0] = a.id_lo
        entry[1] = a.id_hi
        entry[2] = timestamp
        entry[3] = a.debits_pending
        entry[4] = a.debits_posted
        entry[5] = a.credits_pending
        entry[6] = a.credits_posted
        entry[7] = 0

    cdef uint32_t post_or_void(self, ledger_transfer_t* t, uint64_t timestamp, ledger_slot_t* slot, uint64_t hash,
                               uint64_t* out_timestamp, uint64_t* out_amount) noexcept nogil:
        cdef uint64_t hold_pos1, amount, pos
        cdef const ledger_transfer_t* hold
        cdef ledger_account_t* dr
        cdef ledger_account_t* cr
        cdef bint post = (t.flags & TF_POST) != 0
        cdef uint8_t status
        if id_is_zero(t.pending_lo, t.pending_hi):
            return T_PENDING_ID_MUST_NOT_BE_ZERO
        if id_is_max(t.pending_lo, t.pending_hi):
            return T_PENDING_ID_MUST_NOT_BE_INT_MAX
        if t.pending_lo == t.id_lo and t.pending_hi == t.id_hi:
            return T_PENDING_ID_MUST_BE_DIFFERENT
        if t.timeout != 0:
            return T_TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if t.amount > AMOUNT_MAX:
            return T_AMOUNT_EXCEEDS_MAX
        hold_pos1 = self.transfer_find(t.pending_lo, t.pending_hi)
        if hold_pos1 == 0:
            return T_PENDING_TRANSFER_NOT_FOUND
        hold = self.record_at(hold_pos1 - 1)
        if not hold.flags & TF_PENDING:
            return T_PENDING_TRANSFER_NOT_PENDING
        if not id_is_zero(t.dr_lo, t.dr_hi) and (t.dr_lo != hold.dr_lo or t.dr_hi != hold.dr_hi):
            return T_PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
        if not id_is_zero(t.cr_lo, t.cr_hi) and (t.cr_lo != hold.cr_lo or t.cr_hi != hold.cr_hi):
            return T_PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
        if t.ledger != 0 and t.ledger != hold.ledger:
            return T_PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
        if t.code != 0 and t.code != hold.code:
            return T_PENDING_TRANSFER_HAS_DIFFERENT_CODE
        if post:
            amount = t.amount if t.amount != 0 else hold.amount
            if amount > hold.amount:
                return T_EXCEEDS_PENDING_TRANSFER_AMOUNT
        else:
            if t.amount != 0 and t.amount != hold.amount:
                return T_PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
            amount = hold.amount
        status = self.status[hold_pos1 - 1]
        if status == S_POSTED:
            return T_PENDING_TRANSFER_ALREADY_POSTED
        if status == S_VOIDED:
            return T_PENDING_TRANSFER_ALREADY_VOIDED
        if status == S_EXPIRED:
            return T_PENDING_TRANSFER_EXPIRED
        dr = self.find_account(hold.dr_lo, hold.dr_hi)
        cr = self.find_account(hold.cr_lo, hold.cr_hi)
        if post:
            if dr.flags & AF_CLOSED and not hold.flags & TF_CLOSING_DEBIT:
                return T_DEBIT_ACCOUNT_ALREADY_CLOSED
            if cr.flags & AF_CLOSED and not hold.flags & TF_CLOSING_CREDIT:
                return T_CREDIT_ACCOUNT_ALREADY_CLOSED
            if dr.debits_posted + amount > AMOUNT_MAX:
                return T_OVERFLOWS_DEBITS_POSTED
            if cr.credits_posted + amount > AMOUNT_MAX:
                return T_OVERFLOWS_CREDITS_POSTED
        if self.transfers_count >= self.transfers_max:
            return T_TRANSFERS_FULL
        t.dr_lo = hold.dr_lo
        t.dr_hi = hold.dr_hi
        t.cr_lo = hold.cr_lo
        t.cr_hi = hold.cr_hi
        t.ledger = hold.ledger
        t.code = hold.code
        t.amount = amount
        t.timestamp = timestamp
        pos = self.store_transfer(t, slot, hash)
        self.book_resolution(t, hold_pos1 - 1, dr, cr)
        out_timestamp[0] = timestamp
        out_amount[0] = amount
        return T_OK

    cdef inline void book_resolution(self, const ledger_transfer_t* t, uint64_t hold_pos, ledger_account_t* dr,
                                     ledger_account_t* cr) noexcept nogil:
        cdef bint post = (t.flags & TF_POST) != 0
        self.release_hold(hold_pos, S_POSTED if post else S_VOIDED)
        if post:
            dr.debits_posted += t.amount
            cr.credits_posted += t.amount
        self.note_balances(t.timestamp, dr, cr)

    def create_transfers(self, events):
        cdef Py_ssize_t count = check_batch(events, RECORD_SIZE, "transfers")
        cdef const uint8_t[::1] data
        cdef uint64_t first, entries_start = self.transfers_count
        self.check_idle()
        if count == 0:
            return TransfersApplied(results=b"", entries=b"", expired=b"", timestamp_first=self.timestamp_last,
                                    timestamp_last=self.timestamp_last)
        data = events
        first = self.reserve_timestamps(count)
        self.make_ready(0, count)
        expired = self.expire(first)
        entries_start = self.transfers_count
        self.history_count = 0
        results = PyBytes_FromStringAndSize(NULL, count * 24)
        cdef char* out = PyBytes_AS_STRING(results)
        self.enter()
        self.batch_first = entries_start
        try:
            with nogil:
                self.run_transfers(<const ledger_transfer_t*>&data[0], count, first, out)
                ledger_stream_fence()
        finally:
            self.busy = False
            self.batch_first = U64_MAX
        # A record that could not be read back leaves this batch's results unknown: the caller must stop.
        self.check_cold()
        self.check_invariants()
        return TransfersApplied(
            results=results,
            entries=self.entries_of(entries_start, self.transfers_count - entries_start),
            expired=expired,
            timestamp_first=first,
            timestamp_last=self.timestamp_last,
            balances=PyBytes_FromStringAndSize(<const char*>self.history, self.history_count * 64),
        )

    cdef inline ledger_account_t* account_candidate(self, uint64_t hash) noexcept nogil:
        """The account whose slot carries this hash's tag, or NULL if no slot of its cluster does."""
        cdef const shard_t* shard = shard_of(&self.account_index, hash)
        cdef uint32_t tag = tag_of(hash)
        cdef uint64_t i = home_of(tag, shard.slots_count)
        while shard.slots[i].pos1 != 0:
            if shard.slots[i].tag == tag:
                return &self.accounts[shard.slots[i].pos1 - 1]
            i += 1
            if i == shard.slots_count:
                i = 0
        return NULL

    cdef void prepare_group(self, const ledger_transfer_t* src, Py_ssize_t count) noexcept nogil:
        cdef Py_ssize_t k
        cdef uint64_t id_hash, dr_hash, cr_hash
        cdef const shard_t* shard
        for k in range(count):
            id_hash = ledger_hash(src[k].id_lo, src[k].id_hi)
            dr_hash = ledger_hash(src[k].dr_lo, src[k].dr_hi)
            cr_hash = ledger_hash(src[k].cr_lo, src[k].cr_hi)
            self.group_id_hash[k] = id_hash
            self.group_dr_hash[k] = dr_hash
            self.group_cr_hash[k] = cr_hash
            shard = shard_of(&self.transfer_index, id_hash)
            ledger_prefetch(&shard.slots[home_of(tag_of(id_hash), shard.slots_count)])
            shard = shard_of(&self.account_index, dr_hash)
            ledger_prefetch(&shard.slots[home_of(tag_of(dr_hash), shard.slots_count)])
            shard = shard_of(&self.account_index, cr_hash)
            ledger_prefetch(&shard.slots[home_of(tag_of(cr_hash), shard.slots_count)])
        for k in range(count):
            self.group_dr[k] = self.account_candidate(self.group_dr_hash[k])
            if self.group_dr[k] != NULL:
                ledger_prefetch(self.group_dr[k])
            self.group_cr[k] = self.account_candidate(self.group_cr_hash[k])
            if self.group_cr[k] != NULL:
                ledger_prefetch(self.group_cr[k])
        self.prepare_cold(src, count)

    cdef void prepare_cold(self, const ledger_transfer_t* src, Py_ssize_t count) noexcept nogil:
        """Read in one call the old records this group's retries, and its posts or voids of closed holds, will
        compare against (their slots were prefetched with the group's)."""
        cdef Py_ssize_t k, n = 0
        cdef uint64_t first = self.hot_first()
        if first == 0:
            return  # every record is in the ring
        for k in range(count):
            n = self.cold_candidates(src[k].id_lo, src[k].id_hi, self.group_id_hash[k], first, n)
            if src[k].flags & TF_POST_OR_VOID and not id_is_zero(src[k].pending_lo, src[k].pending_hi):
                n = self.cold_candidates(src[k].pending_lo, src[k].pending_hi,
                                         ledger_hash(src[k].pending_lo, src[k].pending_hi), first, n)
        if n:
            self.read_cold_wanted(n)

    cdef void run_transfers(self, const ledger_transfer_t* src, Py_ssize_t count, uint64_t first,
                            char* out) noexcept nogil:
        cdef ledger_transfer_t t
        cdef Py_ssize_t i = 0, j, chain_start = -1, chain_end
        cdef bint chain_failed = False, linked, all_exist
        cdef uint32_t result
        cdef uint64_t timestamp, amount, hash
        cdef ledger_slot_t* slot
        cdef Py_ssize_t group_start = 0, group_count = 0
        while i < count:
            if i >= group_start + group_count:
                group_start = i
                group_count = min(GROUP_SIZE, count - i)
                self.prepare_group(&src[group_start], group_count)
            ledger_copy_record(&t, &src[i])
            linked = (t.flags & TF_LINKED) != 0
            if chain_start < 0 and linked:
                chain_start = i
                self.chain_begin()
            if chain_failed:
                write_transfer_result(out, i, T_LINKED_EVENT_FAILED, 0, 0)
            elif linked and i == count - 1:
                write_transfer_result(out, i, T_LINKED_EVENT_CHAIN_OPEN, 0, 0)
                self.fail_transfer_chain(out, chain_start, i)
                chain_failed = True
            else:
                timestamp = 0
                amount = 0
                result = self.create_transfer(&t, self.group_id_hash[i - group_start], first + i,
                                              self.group_dr[i - group_start], self.group_cr[i - group_start],
                                              &timestamp, &amount)
                write_transfer_result(out, i, result, timestamp, amount)
                if result != T_OK and chain_start >= 0:
                    chain_end = i
                    while chain_end < count and src[chain_end].flags & TF_LINKED:
                        chain_end += 1
                    all_exist = i == chain_start and result == T_EXISTS and chain_end < count
                    j = i + 1
                    while all_exist and j <= chain_end:
                        hash = ledger_hash(src[j].id_lo, src[j].id_hi)
                        all_exist = self.transfer_prefix(&src[j], hash, &slot, &timestamp, &amount) == T_EXISTS
                        j += 1
                    if all_exist:
                        for j in range(i + 1, chain_end + 1):
                            timestamp = 0
                            amount = 0
                            hash = ledger_hash(src[j].id_lo, src[j].id_hi)
                            result = self.transfer_prefix(&src[j], hash, &slot, &timestamp, &amount)
                            write_transfer_result(out, j, result, timestamp, amount)
                        i = chain_end
                        linked = False
                    else:
                        self.fail_transfer_chain(out, chain_start, i)
                        chain_failed = True
            if not linked:
                if chain_start >= 0 and not chain_failed:
                    self.chain_commit()
                self.chain_end()
                chain_start = -1
                chain_failed = False
            i += 1
        self.chain_end()

    cdef void fail_transfer_chain(self, char* out, Py_ssize_t start, Py_ssize_t failed) noexcept nogil:
        cdef Py_ssize_t j
        self.chain_rollback()
        for j in range(start, failed):
            write_transfer_result(out, j, T_LINKED_EVENT_FAILED, 0, 0)

    def expire_pending_transfers(self):
        cdef uint64_t first = self.reserve_timestamps(1)
        self.check_idle()
        expired = self.expire(first)
        self.check_invariants()
        return TransfersApplied(results=b"", entries=b"", expired=expired, timestamp_first=first,
                                timestamp_last=first)

    # -- reads -------------------------------------------------------------------

    def lookup_accounts(self, ids):
        return self.lookup(ids, False)

    def lookup_transfers(self, ids):
        """Old transfers' records are read back through the cold reader, many in one call."""
        return self.lookup(ids, True)

    cdef bytes lookup(self, ids, bint transfers):
        """The records of the ids found, in the order asked, written into one reply."""
        cdef Py_ssize_t count = check_batch(ids, 16, "ids")
        cdef const uint8_t[::1] data
        cdef const uint64_t* id_words
        cdef Py_ssize_t i, found = 0
        cdef uint64_t pos1
        cdef const void* record
        self.check_idle()
        if count == 0:
            return b""
        data = ids
        id_words = <const uint64_t*>&data[0]
        if transfers:
            self.prefetch_cold(id_words, count)
        out = PyBytes_FromStringAndSize(NULL, count * 128)
        cdef char* dst = PyBytes_AS_STRING(out)
        for i in range(count):
            if transfers:
                pos1 = self.transfer_find(id_words[2 * i], id_words[2 * i + 1])
                record = self.record_at(pos1 - 1) if pos1 != 0 else NULL
            else:
                pos1 = index_find(&self.account_index, <const uint8_t*>self.accounts, id_words[2 * i],
                                  id_words[2 * i + 1])
                record = &self.accounts[pos1 - 1] if pos1 != 0 else NULL
            if record != NULL:
                memcpy(dst + found * 128, record, 128)
                found += 1
        self.check_cold()
        return out if found == count else out[:found * 128]

    def transfer_status(self, transfer_id):
        cdef uint64_t lo = transfer_id & U64_MAX
        cdef uint64_t hi = transfer_id >> 64
        cdef uint64_t pos1
        self.check_idle()
        pos1 = self.transfer_find(lo, hi)
        self.check_cold()
        return self.status[pos1 - 1] if pos1 != 0 else S_NONE

    def stats(self):
        return EngineStats(
            accounts_count=self.accounts_count,
            transfers_count=self.transfers_count,
            pending_transfers_count=self.pending_count,
            timestamp_last=self.timestamp_last,
        )

    def memory_bytes(self):
        """Bytes reserved for the tables at the configured capacity: address space, backed by memory only as
        records are written (the tables filled in order a chunk ahead of use, the rest page by page)."""
        return {
            "accounts": self.accounts_max * sizeof(ledger_account_t),
            "account_index": index_bytes(&self.account_index),
            "transfers": self.ring_slots * sizeof(ledger_transfer_t),
            "transfer_status": self.transfers_max,
            "transfer_fingerprints": self.transfers_max * sizeof(uint32_t),
            "transfer_index": index_bytes(&self.transfer_index),
            "open_holds": self.holds_capacity * (sizeof(ledger_transfer_t) + 12) + index_bytes(&self.hold_index),
            "expiry_heap": self.heap_capacity * sizeof(ledger_expiry_t),
            "cold_cache": COLD_SLOTS * (sizeof(ledger_transfer_t) + 8),
        }

    def memory_used(self):
        """Bytes of each table backed by memory now: the tables filled in order up to a chunk past their end,
        the indexes as they have grown, the open holds' table up to the most ever open at once."""
        return {
            "accounts": self.accounts_ready,
            "account_index": index_bytes(&self.account_index),
            "transfers": self.ring_ready,
            "transfer_status": self.status_ready,
            "transfer_fingerprints": self.fingerprints_ready,
            "transfer_index": index_bytes(&self.transfer_index),
            "open_holds": self.holds_made * (sizeof(ledger_transfer_t) + 12) + index_bytes(&self.hold_index),
            "expiry_heap": self.heap_ready,
            "cold_cache": COLD_SLOTS * (sizeof(ledger_transfer_t) + 8),
        }

    @property
    def transfers_hot(self):
        """How many of the newest transfers keep their records in memory (every one, without a cold reader)."""
        return None if self.hot == U64_MAX else self.hot

    # -- checkpoints and replay --------------------------------------------------

    def export_state(self):
        """The whole state; old transfers' records are read back through the cold reader (for tests and tools:
        at scale this reads the journal's every record)."""
        self.check_idle()
        return EngineState(
            accounts=PyBytes_FromStringAndSize(<const char*>self.accounts, self.accounts_count * 128),
            transfers=self.all_transfers(),
            transfer_status=PyBytes_FromStringAndSize(<const char*>self.status, self.transfers_count),
            timestamp_last=self.timestamp_last,
        )

    cdef bytes all_transfers(self):
        cdef uint64_t start, ordinal, end, first = self.hot_first()
        out = PyBytes_FromStringAndSize(NULL, self.transfers_count * 128)
        cdef char* dst = PyBytes_AS_STRING(out)
        for start in range(0, self.transfers_count, COLD_SLOTS // 2):
            end = min(start + COLD_SLOTS // 2, self.transfers_count)
            wanted = [ordinal for ordinal in range(start, min(end, first)) if self.hold_at(ordinal) == NULL]
            if wanted:
                self.read_cold(wanted)
            for ordinal in range(start, end):
                memcpy(dst + ordinal * 128, self.record_at(ordinal), 128)
        self.check_cold()
        return out

    def export_snapshot(self):
        self.check_idle()
        return EngineSnapshot(
            accounts=PyBytes_FromStringAndSize(<const char*>self.accounts, self.accounts_count * 128),
            transfer_status=PyBytes_FromStringAndSize(<const char*>self.status, self.transfers_count),
            timestamp_last=self.timestamp_last,
        )

    def import_state(self, state):
        cdef const uint8_t[::1] accounts
        cdef uint64_t accounts_count = len(state.accounts) // 128
        cdef uint64_t i
        self.check_idle()
        if self.accounts_count or self.transfers_count:
            raise StateMismatch("import_state needs an empty engine")
        if len(state.accounts) % 128:
            raise StateMismatch("state holds a partial record")
        if accounts_count > self.accounts_max:
            raise StateMismatch("state exceeds the configured capacity")
        if accounts_count:
            accounts = state.accounts
            self.make_ready(accounts_count, 0)
            memcpy(self.accounts, &accounts[0], accounts_count * 128)
        for i in range(accounts_count):
            self.index_account(i)
        self.accounts_count = accounts_count
        self.timestamp_last = state.timestamp_last
        self.restore_transfers(state.transfers, state.transfer_status)

    def restore_transfers(self, entries, transfer_status):
        cdef const uint8_t[::1] transfers
        cdef const uint8_t[::1] status
        cdef const ledger_transfer_t* src
        cdef uint64_t count = len(entries) // 128
        cdef uint64_t i, pos, fits
        self.check_idle()
        if len(entries) % 128:
            raise StateMismatch("state holds a partial record")
        if len(transfer_status) != count:
            raise StateMismatch("transfer_status must hold one byte per transfer")
        if count == 0:
            return
        transfers = entries
        status = transfer_status
        src = <const ledger_transfer_t*>&transfers[0]
        # Entries are taken one by one up to the one refused (recovery names that one's commit), so only
        # what fits the tables is copied.
        fits = min(count, self.transfers_max - self.transfers_count)
        self.make_ready(0, fits)
        memcpy(&self.status[self.transfers_count], &status[0], fits)
        self.replay_src = src
        self.replay_first = self.transfers_count
        self.replay_count = fits
        try:
            for i in range(count):
                if i == fits:
                    raise StateMismatch("state exceeds the configured capacity")
                pos = self.transfers_count
                ledger_copy_record(&self.ring[pos & self.ring_mask], &src[i])
                self.index_transfer(pos, &src[i])
                if self.status[pos] == S_PENDING:
                    if self.pending_count >= self.pending_max:
                        raise StateMismatch(f"state holds more than pending_transfers_max={self.pending_max} open holds")
                    self.pending_count += 1
                    self.hold_keep(pos, &src[i])  # without the memory, the hold is read back when it is needed
                    if src[i].timeout:
                        self.schedule_expiry(&src[i], pos)
                self.transfers_count += 1
        finally:
            self.replay_src = NULL
        self.check_cold()

    def restore_index(self, ids, transfer_status):
        """Append stored transfers by their ids alone (16 bytes each, in creation order) with their statuses,
        booking nothing: what a checkpoint's balances already hold. Their records stay in the journal; the open
        holds' are read back through the cold reader. The ids are trusted (the checkpoint's, checksummed): no
        record is compared, so a repeated id is not noticed here."""
        cdef const uint8_t[::1] id_bytes
        cdef const uint8_t[::1] status
        cdef const uint64_t* words
        cdef uint64_t count = len(ids) // 16
        cdef uint64_t i, first = self.transfers_count
        cdef int failed
        cdef const uint8_t[::1] record
        self.check_idle()
        if len(ids) % 16:
            raise StateMismatch("transfer ids hold a partial id")
        if len(transfer_status) != count:
            raise StateMismatch("transfer_status must hold one byte per transfer id")
        if self.cold_reader is None:
            raise StateMismatch("an engine without a cold reader keeps every record: restore_transfers instead")
        if count == 0:
            return
        if count > self.transfers_max - self.transfers_count:
            raise StateMismatch("state exceeds the configured capacity")
        id_bytes = ids
        status = transfer_status
        words = <const uint64_t*>&id_bytes[0]
        self.make_ready(0, count)
        memcpy(&self.status[first], &status[0], count)
        holds = []
        if index_reserve(&self.transfer_index, count) != 0:
            raise MemoryError("cannot grow the transfer index")
        with nogil:
            failed = self.index_ids(words, first, count)
        if failed:
            raise MemoryError("cannot grow the transfer index")
        for i in range(count):
            if self.status[first + i] == S_PENDING:
                holds.append(first + i)
        self.transfers_count = first + count
        self.ring_first = self.transfers_count
        for start in range(0, len(holds), COLD_WANTED_MAX):
            chunk = holds[start : start + COLD_WANTED_MAX]
            found = self.cold_reader(chunk)
            for ordinal in chunk:
                data = found.get(ordinal)
                i = ordinal - first
                if data is None or len(data) != 128 or bytes(data[:16]) != bytes(ids[16 * i : 16 * i + 16]):
                    raise StateMismatch(f"the record of open hold {ordinal} is not in the journal as indexed")
                if self.pending_count >= self.pending_max:
                    raise StateMismatch(f"state holds more than pending_transfers_max={self.pending_max} open holds")
                record = data
                self.pending_count += 1
                self.hold_keep(ordinal, <const ledger_transfer_t*>&record[0])
                if (<const ledger_transfer_t*>&record[0]).timeout:
                    self.schedule_expiry(<const ledger_transfer_t*>&record[0], ordinal)

    cdef int index_ids(self, const uint64_t* words, uint64_t first, uint64_t count) noexcept nogil:
        """Index transfers [first, first + count) by their ids alone, into shards already grown for them: a group
        of ids' home slots prefetched together, then each placed. -1 if a shard could not grow."""
        cdef uint64_t base, k, n, pos
        cdef uint64_t hashes[GROUP_SIZE]
        cdef const shard_t* shard
        for base in range(0, count, GROUP_SIZE):
            n = min(<uint64_t>GROUP_SIZE, count - base)
            for k in range(n):
                hashes[k] = ledger_hash(words[2 * (base + k)], words[2 * (base + k) + 1])
                shard = shard_of(&self.transfer_index, hashes[k])
                ledger_prefetch(&shard.slots[home_of(tag_of(hashes[k]), shard.slots_count)])
            for k in range(n):
                pos = first + base + k
                if index_room(&self.transfer_index, hashes[k]) != 0:  # grown ahead: this only checks
                    return -1
                self.fingerprints[pos] = ledger_fingerprint(words[2 * (base + k)], words[2 * (base + k) + 1])
                index_put(&self.transfer_index, index_empty_slot(&self.transfer_index, hashes[k]), hashes[k], pos + 1)
        return 0

    def verify(self):
        self.check_idle()
        self.check_invariants()

    cdef index_account(self, uint64_t pos):
        cdef ledger_account_t* a = &self.accounts[pos]
        cdef uint64_t hash = ledger_hash(a.id_lo, a.id_hi)
        cdef ledger_slot_t* slot
        if index_room(&self.account_index, hash) != 0:
            raise MemoryError("cannot grow the account index")
        slot = index_probe(&self.account_index, <const uint8_t*>self.accounts, a.id_lo, a.id_hi, hash)
        if slot.pos1 != 0:
            raise StateMismatch(f"account {id_of(a.id_lo, a.id_hi)} appears twice")
        index_put(&self.account_index, slot, hash, pos + 1)

    cdef index_transfer(self, uint64_t pos, const ledger_transfer_t* t):
        cdef uint64_t hash = ledger_hash(t.id_lo, t.id_hi)
        cdef ledger_slot_t* slot
        if index_room(&self.transfer_index, hash) != 0:
            raise MemoryError("cannot grow the transfer index")
        slot = self.transfer_probe(t.id_lo, t.id_hi, hash)
        if slot.pos1 != 0:
            raise StateMismatch(f"transfer {id_of(t.id_lo, t.id_hi)} appears twice")
        self.fingerprints[pos] = ledger_fingerprint(t.id_lo, t.id_hi)
        index_put(&self.transfer_index, slot, hash, pos + 1)

    def replay_accounts(self, entries, timestamp_last):
        cdef Py_ssize_t count = check_batch(entries, RECORD_SIZE, "account entries")
        cdef const uint8_t[::1] data
        cdef Py_ssize_t i
        self.check_idle()
        if count:
            data = entries
            if self.accounts_count + count > self.accounts_max:
                raise StateMismatch("replayed accounts exceed the configured capacity")
            self.make_ready(count, 0)
            for i in range(count):
                memcpy(&self.accounts[self.accounts_count], &data[i * 128], 128)
                self.index_account(self.accounts_count)
                self.accounts_count += 1
        self.timestamp_last = max(self.timestamp_last, timestamp_last)

    def replay_transfers(self, expired, entries, timestamp_first, timestamp_last):
        cdef Py_ssize_t count = check_batch(entries, RECORD_SIZE, "transfer entries")
        cdef const uint8_t[::1] data
        cdef Py_ssize_t i
        cdef uint64_t pos, pos1, hold_pos1
        cdef ledger_transfer_t* t
        cdef ledger_account_t* dr
        cdef ledger_account_t* cr
        self.check_idle()
        self.history_count = 0
        for hold_id in unpack_ids(expired):
            pos1 = self.transfer_find(hold_id & U64_MAX, hold_id >> 64)
            self.check_cold()
            if pos1 == 0 or self.status[pos1 - 1] != S_PENDING:
                raise StateMismatch(f"expired transfer {hold_id} is not a pending hold")
            self.release_hold(pos1 - 1, S_EXPIRED)
        if count:
            data = entries
            self.make_ready(0, count)
            self.replay_src = <const ledger_transfer_t*>&data[0]
            self.replay_first = self.transfers_count
            self.replay_count = count
        try:
            for i in range(count):
                if self.transfers_count >= self.transfers_max:
                    raise StateMismatch("replayed transfers exceed the configured capacity")
                pos = self.transfers_count
                t = &self.ring[pos & self.ring_mask]
                memcpy(t, &data[i * 128], 128)
                self.index_transfer(pos, t)
                if t.flags & TF_POST_OR_VOID:
                    hold_pos1 = self.transfer_find(t.pending_lo, t.pending_hi)
                    if hold_pos1 == 0 or self.status[hold_pos1 - 1] != S_PENDING:
                        index_remove(&self.transfer_index, ledger_hash(t.id_lo, t.id_hi), pos + 1)
                        raise StateMismatch(f"transfer {id_of(t.id_lo, t.id_hi)} resolves a transfer that is not pending")
                    self.transfers_count += 1
                    self.book_resolution(t, hold_pos1 - 1, self.find_account(t.dr_lo, t.dr_hi),
                                         self.find_account(t.cr_lo, t.cr_hi))
                else:
                    dr = self.find_account(t.dr_lo, t.dr_hi)
                    cr = self.find_account(t.cr_lo, t.cr_hi)
                    if t.flags & TF_PENDING and self.pending_count >= self.pending_max:
                        index_remove(&self.transfer_index, ledger_hash(t.id_lo, t.id_hi), pos + 1)
                        raise StateMismatch(f"replayed holds exceed pending_transfers_max={self.pending_max}")
                    if dr == NULL or cr == NULL:
                        index_remove(&self.transfer_index, ledger_hash(t.id_lo, t.id_hi), pos + 1)
                        raise StateMismatch(f"transfer {id_of(t.id_lo, t.id_hi)} names an account that does not exist")
                    self.transfers_count += 1
                    self.book_created(t, pos, dr, cr)
        finally:
            self.replay_src = NULL
        self.check_cold()
        self.timestamp_last = max(self.timestamp_last, timestamp_last)
        self.check_invariants()

    # -- invariants --------------------------------------------------------------

    cdef check_invariants(self):
        cdef uint64_t i
        cdef object debits_pending = 0, debits_posted = 0, credits_pending = 0, credits_posted = 0, held = 0
        cdef uint64_t live = 0
        cdef ledger_account_t* a
        if not self.verify_switch:
            return
        for i in range(self.accounts_count):
            a = &self.accounts[i]
            debits_pending += a.debits_pending
            debits_posted += a.debits_posted
            credits_pending += a.credits_pending
            credits_posted += a.credits_posted
            assert a.debits_pending + a.debits_posted <= AMOUNT_MAX
            assert a.credits_pending + a.credits_posted <= AMOUNT_MAX
            if a.flags & AF_DMNEC:
                assert a.debits_pending + a.debits_posted <= a.credits_posted
            if a.flags & AF_CMNED:
                assert a.credits_pending + a.credits_posted <= a.debits_posted
        assert debits_pending == credits_pending
        assert debits_posted == credits_posted
        for i in range(self.transfers_count):
            if self.status[i] == S_PENDING:
                held += self.record_at(i).amount
                live += 1
        assert held == debits_pending
        assert live == self.pending_count
        assert self.heap_count <= self.heap_capacity
