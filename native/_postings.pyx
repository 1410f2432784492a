# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Postings for the history index in C: the contract of ledger.journal._postings_py, with no Python object per posting.

A run is packed 32-byte postings (account_hi u64, account_lo u64, timestamp u64,
ref u64, where ref = journal ordinal << 1, plus 1 where the account is
credited), sorted by account, then timestamp. Same contract as the
pure-Python module; a test feeds both the same journals.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc, qsort
from libc.string cimport memcpy, memset

cdef extern from *:
    """
    typedef struct { uint64_t hi, lo, timestamp, ref; } ledger_posting_t;

    static int ledger_posting_cmp(const void* a, const void* b) {
        const ledger_posting_t* x = (const ledger_posting_t*)a;
        const ledger_posting_t* y = (const ledger_posting_t*)b;
        if (x->hi != y->hi) return x->hi < y->hi ? -1 : 1;
        if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
        if (x->timestamp != y->timestamp) return x->timestamp < y->timestamp ? -1 : 1;
        if (x->ref != y->ref) return x->ref < y->ref ? -1 : 1;
        return 0;
    }
    """
    ctypedef struct ledger_posting_t:
        uint64_t hi, lo, timestamp, ref
    int ledger_posting_cmp(const void* a, const void* b) noexcept nogil

implementation = "cython"


def sort_postings(transfers, uint64_t first_ordinal):
    """Two postings per 128-byte transfer record (debit and credit account), sorted.

    A commit's records come in timestamp order, so its postings are already in (timestamp, ref) order: a
    stable sort by account alone gives the full order, and a radix sort does it in a few passes over the
    postings (one per byte of the account ids that differs among them) instead of a comparison sort's
    log2(n) rounds of calls to a comparator. Records out of timestamp order, which a commit never holds,
    would still be sorted right, by the comparison sort.
    """
    cdef const unsigned char[::1] data = transfers
    cdef Py_ssize_t count = data.shape[0] // 128, i
    cdef const uint64_t* record
    cdef bint in_order = True
    cdef uint64_t timestamp_last = 0
    out = PyBytes_FromStringAndSize(NULL, 2 * count * 32)
    cdef ledger_posting_t* postings = <ledger_posting_t*>PyBytes_AS_STRING(out)
    cdef ledger_posting_t* scratch
    if count == 0:
        return out
    scratch = <ledger_posting_t*>malloc(2 * count * 32)
    if scratch == NULL:
        raise MemoryError()
    with nogil:
        for i in range(count):
            record = <const uint64_t*>&data[i * 128]
            if record[14] < timestamp_last:
                in_order = False
            timestamp_last = record[14]
            postings[2 * i].lo = record[2]
            postings[2 * i].hi = record[3]
            postings[2 * i].timestamp = record[14]
            postings[2 * i].ref = (first_ordinal + i) << 1
            postings[2 * i + 1].lo = record[4]
            postings[2 * i + 1].hi = record[5]
            postings[2 * i + 1].timestamp = record[14]
            postings[2 * i + 1].ref = ((first_ordinal + i) << 1) | 1
        if in_order:
            sort_by_account(postings, scratch, 2 * count)
        else:
            qsort(postings, 2 * count, 32, ledger_posting_cmp)
    free(scratch)
    return out


cdef void sort_by_account(ledger_posting_t* postings, ledger_posting_t* scratch, Py_ssize_t count) noexcept nogil:
    """Stable LSD radix sort of `postings` by (hi, lo), a byte at a time from lo's lowest; `scratch` holds
    as many. One pass counts every byte's values; a byte all postings share is skipped."""
    cdef Py_ssize_t* counts = <Py_ssize_t*>malloc(16 * 256 * sizeof(Py_ssize_t))  # [byte][value]
    cdef Py_ssize_t i, total, size
    cdef int byte, value
    cdef uint64_t key
    cdef ledger_posting_t* src = postings
    cdef ledger_posting_t* dst = scratch
    cdef ledger_posting_t* swap
    if counts == NULL:
        qsort(postings, count, 32, ledger_posting_cmp)
        return
    memset(counts, 0, 16 * 256 * sizeof(Py_ssize_t))
    for i in range(count):
        key = postings[i].lo
        for byte in range(8):
            counts[256 * byte + ((key >> (8 * byte)) & 0xFF)] += 1
        key = postings[i].hi
        for byte in range(8):
            counts[256 * (8 + byte) + ((key >> (8 * byte)) & 0xFF)] += 1
    for byte in range(16):
        if counts[256 * byte + ((_key(&src[0], byte) >> (8 * (byte & 7))) & 0xFF)] == count:
            continue  # every posting has the same value in this byte
        total = 0
        for value in range(256):  # the counts become each value's first place
            size = counts[256 * byte + value]
            counts[256 * byte + value] = total
            total += size
        for i in range(count):
            value = (_key(&src[i], byte) >> (8 * (byte & 7))) & 0xFF
            dst[counts[256 * byte + value]] = src[i]
            counts[256 * byte + value] += 1
        swap = src
        src = dst
        dst = swap
    if src != postings:
        memcpy(postings, src, count * 32)
    free(counts)


cdef inline uint64_t _key(const ledger_posting_t* posting, int byte) noexcept nogil:
    """The word of the account id that holds byte `byte` (0-7 in lo, 8-15 in hi)."""
    return posting.lo if byte < 8 else posting.hi


def merge_runs(runs):
    """One sorted run holding every posting of `runs` (each sorted): merged pairwise, O(n log k), without the GIL.

    The first round merges pairs of runs straight from where they are; later rounds go back and forth
    between the result and a scratch buffer (only needed past two runs)."""
    cdef Py_ssize_t count = len(runs), total = 0, i, width, a, b, c, size
    cdef const ledger_posting_t** sources = <const ledger_posting_t**>malloc((count + 1) * sizeof(void*))
    cdef Py_ssize_t* bounds = <Py_ssize_t*>malloc((count + 1) * sizeof(Py_ssize_t))
    cdef ledger_posting_t* src
    cdef ledger_posting_t* dst
    cdef ledger_posting_t* first
    cdef const unsigned char[::1] data
    if bounds == NULL or sources == NULL:
        free(bounds)
        free(sources)
        raise MemoryError()
    views = []  # the runs' buffers, held while their postings are read without the GIL
    try:
        for i in range(count):
            data = runs[i]
            views.append(data)
            size = data.shape[0] // 32
            sources[i] = <const ledger_posting_t*>&data[0] if size else NULL
            bounds[i] = total
            total += size
        bounds[count] = total
        out = PyBytes_FromStringAndSize(NULL, total * 32)
        scratch = PyBytes_FromStringAndSize(NULL, total * 32) if count > 2 else None
        first = <ledger_posting_t*>PyBytes_AS_STRING(out)
        with nogil:
            i = 0
            while i < count:  # the first round, from the runs into `out`
                a = bounds[i]
                b = bounds[min(i + 1, count)]
                c = bounds[min(i + 2, count)]
                merge_from(sources[i], b - a, sources[i + 1] if i + 1 < count else NULL, c - b, &first[a])
                i += 2
        if count > 2:
            src = first
            dst = <ledger_posting_t*>PyBytes_AS_STRING(scratch)
            with nogil:
                # Rounds of merging neighbouring runs: after each, runs of `width` inputs are sorted.
                width = 2
                while width < count:
                    i = 0
                    while i < count:
                        a = bounds[i]
                        b = bounds[min(i + width, count)]
                        c = bounds[min(i + 2 * width, count)]
                        merge_from(&src[a], b - a, &src[b], c - b, &dst[a])
                        i += 2 * width
                    src, dst = dst, src
                    width *= 2
            # The merged postings ended in whichever buffer the last round wrote.
            if src != first:
                return scratch
    finally:
        free(bounds)
        free(sources)
    return out


cdef void merge_from(const ledger_posting_t* x, Py_ssize_t x_count, const ledger_posting_t* y, Py_ssize_t y_count,
                     ledger_posting_t* out) noexcept nogil:
    """out = the merge of the sorted x and y (stable: x first on ties); either may be empty (or NULL)."""
    cdef Py_ssize_t i = 0, j = 0, k = 0
    while i < x_count and j < y_count:
        if ledger_posting_cmp(&y[j], &x[i]) < 0:
            out[k] = y[j]
            j += 1
        else:
            out[k] = x[i]
            i += 1
        k += 1
    if i < x_count:
        memcpy(&out[k], &x[i], (x_count - i) * 32)
    elif j < y_count:
        memcpy(&out[k], &y[j], (y_count - j) * 32)


cdef Py_ssize_t lower_bound(const ledger_posting_t* postings, Py_ssize_t count, uint64_t hi, uint64_t lo) noexcept nogil:
    cdef Py_ssize_t low = 0, high = count, middle
    while low < high:
        middle = (low + high) // 2
        if postings[middle].hi < hi or (postings[middle].hi == hi and postings[middle].lo < lo):
            low = middle + 1
        else:
            high = middle
    return low


def account_range(run, account_id):
    """(start, end): the postings of one account in a sorted run."""
    cdef const unsigned char[::1] data = run
    cdef Py_ssize_t count = data.shape[0] // 32, start
    cdef uint64_t lo = account_id & 0xFFFFFFFFFFFFFFFF, hi = account_id >> 64
    if count == 0:
        return 0, 0
    cdef const ledger_posting_t* postings = <const ledger_posting_t*>&data[0]
    start = lower_bound(postings, count, hi, lo)
    if lo == 0xFFFFFFFFFFFFFFFF:
        return start, lower_bound(postings, count, hi + 1, 0) if hi != 0xFFFFFFFFFFFFFFFF else count
    return start, lower_bound(postings, count, hi, lo + 1)


def entries(run, Py_ssize_t start, Py_ssize_t end):
    """Postings start..end as one row's entries: their timestamps, then their refs (u64 each)."""
    cdef const unsigned char[::1] data = run
    cdef Py_ssize_t count = end - start, i
    out = PyBytes_FromStringAndSize(NULL, count * 16)
    cdef uint64_t* words = <uint64_t*>PyBytes_AS_STRING(out)
    if count == 0:
        return out
    cdef const ledger_posting_t* postings = <const ledger_posting_t*>&data[start * 32]
    for i in range(count):
        words[i] = postings[i].timestamp
        words[count + i] = postings[i].ref
    return out


def groups(run):
    """(account_lo, account_hi, start, end) for every account in a sorted run, in order."""
    cdef const unsigned char[::1] data = run
    cdef Py_ssize_t count = data.shape[0] // 32, i, start = 0
    result = []
    if count == 0:
        return result
    cdef const ledger_posting_t* postings = <const ledger_posting_t*>&data[0]
    for i in range(1, count + 1):
        if i == count or postings[i].hi != postings[start].hi or postings[i].lo != postings[start].lo:
            result.append((postings[start].lo, postings[start].hi, start, i))
            start = i
    return result


cdef extern from *:
    """
    typedef struct { uint64_t hi, lo, index; } ledger_balance_key_t;

    static int ledger_balance_key_cmp(const void* a, const void* b) {
        const ledger_balance_key_t* x = (const ledger_balance_key_t*)a;
        const ledger_balance_key_t* y = (const ledger_balance_key_t*)b;
        if (x->hi != y->hi) return x->hi < y->hi ? -1 : 1;
        if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
        return x->index < y->index ? -1 : (x->index > y->index);
    }
    """
    ctypedef struct ledger_balance_key_t:
        uint64_t hi, lo, index
    int ledger_balance_key_cmp(const void* a, const void* b) noexcept nogil


def add_balances(dict table, balances):
    """Append a commit's balance entries (64 bytes each: account lo, hi, timestamp, the four balances, 8
    reserved) to their accounts' tails in `table`: (lo, hi) -> (timestamps, balances), bytearrays of u64
    little-endian, in the commit's order.

    The entries are grouped by account first (a commit's payments touch the same revenue and fee accounts
    again and again), so each account costs one lookup and one append of its entries."""
    cdef const unsigned char[::1] data = balances
    cdef Py_ssize_t count = data.shape[0] // 64, i, start, size, j
    cdef const uint64_t* entry
    cdef ledger_balance_key_t* keys
    cdef bytearray stamps, values
    cdef tuple tail
    cdef char* at
    if count == 0:
        return
    keys = <ledger_balance_key_t*>malloc(count * sizeof(ledger_balance_key_t))
    if keys == NULL:
        raise MemoryError()
    try:
        with nogil:
            for i in range(count):
                entry = <const uint64_t*>&data[i * 64]
                keys[i].lo = entry[0]
                keys[i].hi = entry[1]
                keys[i].index = i
            qsort(keys, count, sizeof(ledger_balance_key_t), ledger_balance_key_cmp)
        start = 0
        for i in range(1, count + 1):
            if i < count and keys[i].hi == keys[start].hi and keys[i].lo == keys[start].lo:
                continue
            key = (keys[start].lo, keys[start].hi)
            found = table.get(key)
            if found is None:
                tail = (bytearray(), bytearray())
                table[key] = tail
            else:
                tail = <tuple>found
            stamps = <bytearray>tail[0]
            values = <bytearray>tail[1]
            size = PyByteArray_GET_SIZE(stamps)
            PyByteArray_Resize(stamps, size + 8 * (i - start))
            at = PyByteArray_AS_STRING(stamps) + size
            for j in range(start, i):
                memcpy(at + 8 * (j - start), &data[keys[j].index * 64 + 16], 8)
            size = PyByteArray_GET_SIZE(values)
            PyByteArray_Resize(values, size + 32 * (i - start))
            at = PyByteArray_AS_STRING(values) + size
            for j in range(start, i):
                memcpy(at + 32 * (j - start), &data[keys[j].index * 64 + 24], 32)
            start = i
    finally:
        free(keys)


cdef inline unsigned char* _put_field(unsigned char* at, uint64_t value, int size) noexcept nogil:
    """A COPY BINARY field: its length (int4), then `value` big-endian in `size` bytes."""
    cdef int i
    at[0] = 0
    at[1] = 0
    at[2] = 0
    at[3] = size
    for i in range(size):
        at[4 + i] = (value >> (8 * (size - 1 - i))) & 0xFF
    return at + 4 + size


def copy_rows(run):
    """The run's accounts as rows of a history table in PostgreSQL's COPY BINARY (without its header and
    trailer), one per account: account_lo and account_hi (int8 holding the u64's bits), timestamp_first and
    timestamp_last (int8), entries_count (int4), entries (bytea: the timestamps, then the refs, u64
    little-endian each)."""
    cdef const unsigned char[::1] data = run
    cdef Py_ssize_t count = data.shape[0] // 32, i, j, start = 0, accounts = 0, size
    cdef const ledger_posting_t* postings
    cdef unsigned char* at
    if count == 0:
        return b""
    postings = <const ledger_posting_t*>&data[0]
    with nogil:
        for i in range(1, count + 1):
            if i == count or postings[i].hi != postings[i - 1].hi or postings[i].lo != postings[i - 1].lo:
                accounts += 1
    out = PyBytes_FromStringAndSize(NULL, accounts * ROW_HEAD_SIZE + count * 16)
    at = <unsigned char*>PyBytes_AS_STRING(out)
    with nogil:
        for i in range(1, count + 1):
            if i < count and postings[i].hi == postings[start].hi and postings[i].lo == postings[start].lo:
                continue
            size = i - start
            at[0] = 0
            at[1] = 6  # fields
            at = _put_field(at + 2, postings[start].lo, 8)
            at = _put_field(at, postings[start].hi, 8)
            at = _put_field(at, postings[start].timestamp, 8)
            at = _put_field(at, postings[i - 1].timestamp, 8)
            at = _put_field(at, size, 4)
            at[0] = (16 * size >> 24) & 0xFF
            at[1] = (16 * size >> 16) & 0xFF
            at[2] = (16 * size >> 8) & 0xFF
            at[3] = 16 * size & 0xFF
            # Row heads are 62 bytes, so the entries are not 8-byte aligned: each word goes by memcpy (one
            # unaligned store once compiled), never through a misaligned uint64_t pointer.
            for j in range(size):
                memcpy(at + 4 + 8 * j, &postings[start + j].timestamp, 8)
                memcpy(at + 4 + 8 * (size + j), &postings[start + j].ref, 8)
            at += 4 + 16 * size
            start = i
    return out


cdef enum:
    ROW_HEAD_SIZE = 2 + 4 * (4 + 8) + (4 + 4) + 4
