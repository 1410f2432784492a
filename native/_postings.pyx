# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Postings for the history index in C: the contract of ledger.journal._postings_py, with no Python object per posting.

A run is packed 32-byte postings (account_hi u64, account_lo u64, timestamp u64,
ref u64, where ref = journal ordinal << 1, plus 1 where the account is
credited), sorted by account, then timestamp. Same contract as the
pure-Python module; a test feeds both the same journals.
"""

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
    """One sorted run holding every posting of `runs` (each sorted): merged pairwise, O(n log k), without the GIL."""
    cdef Py_ssize_t count = len(runs), total = 0, offset = 0, i, width, a, b, c, size
    cdef ledger_posting_t* src
    cdef ledger_posting_t* dst
    cdef Py_ssize_t* bounds = <Py_ssize_t*>malloc((count + 1) * sizeof(Py_ssize_t))
    if bounds == NULL:
        raise MemoryError()
    cdef const unsigned char[::1] data
    try:
        for run in runs:
            total += len(run) // 32
        out = PyBytes_FromStringAndSize(NULL, total * 32)
        scratch = PyBytes_FromStringAndSize(NULL, total * 32)
        src = <ledger_posting_t*>PyBytes_AS_STRING(out)
        dst = <ledger_posting_t*>PyBytes_AS_STRING(scratch)
        for i in range(count):
            bounds[i] = offset
            data = runs[i]
            size = data.shape[0] // 32
            if size:
                memcpy(&src[offset], &data[0], size * 32)
            offset += size
        bounds[count] = total
        with nogil:
            # Rounds of merging neighbouring runs: after each, runs of `width` inputs are sorted.
            width = 1
            while width < count:
                i = 0
                while i < count:
                    a = bounds[i]
                    b = bounds[min(i + width, count)]
                    c = bounds[min(i + 2 * width, count)]
                    merge_two(src, a, b, c, dst)
                    i += 2 * width
                src, dst = dst, src
                width *= 2
    finally:
        free(bounds)
    # The merged postings ended in whichever buffer the last round wrote.
    return out if src == <ledger_posting_t*>PyBytes_AS_STRING(out) else scratch


cdef void merge_two(const ledger_posting_t* src, Py_ssize_t a, Py_ssize_t b, Py_ssize_t c,
                    ledger_posting_t* dst) noexcept nogil:
    """dst[a:c] = the merge of the sorted src[a:b] and src[b:c] (stable: src[a:b] first on ties)."""
    cdef Py_ssize_t i = a, j = b, k = a
    while i < b and j < c:
        if ledger_posting_cmp(&src[j], &src[i]) < 0:
            dst[k] = src[j]
            j += 1
        else:
            dst[k] = src[i]
            i += 1
        k += 1
    if i < b:
        memcpy(&dst[k], &src[i], (b - i) * 32)
    elif j < c:
        memcpy(&dst[k], &src[j], (c - j) * 32)


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
