"""Per-block token filters: which blocks a needle query can skip unread.

Most log searches look for something rare: a request id, an error code, a
user.  When a block is cut, the C core tokenizes its lines and stores a
small Bloom filter of their tokens next to the block (FORMAT.md section 4,
chunk version 2; kernel in ``src_c/cs_tokens.h``).  A query's literal line
filters are turned into the keys a matching line *must* contain, and a
block whose filter lacks one of them is skipped without being read or
decompressed.  A false positive only costs a scan: results never depend on
the filters (``tests/test_tokenfilter.py`` checks exactly that).

The token rule, shared by blocks and needles: a token is a maximal run of
word bytes (``[0-9A-Za-z_]`` and every byte >= 0x80) inside one line,
ASCII-lowercased.  A block's keys are its tokens of at most ``PREFIX_LEN``
bytes and, for a longer token, its first and its last ``PREFIX_LEN`` bytes
(two keys instead of three: a long token is found by its two ends).  In a
needle, a run of word bytes with a non-word byte on both sides (inside the
needle) must be a whole token of the line (its key, or both end keys); a
run that reaches only the needle's end must be a token's prefix, one that
reaches only its start a token's suffix; the prefix or suffix is usable
when it is at least ``PREFIX_LEN`` bytes long (its first or last
``PREFIX_LEN`` bytes are then a key).  A run that touches both ends of the needle (a
needle without separators, like ``8f3a2c1d``) may sit anywhere inside a
token, so it gives no key and such a needle skips nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from chunkstore._kernels import tokens as _tokens
from chunkstore.errors import CorruptionError

__all__ = ["BITS_PER_KEY", "PREFIX_LEN", "block_filter", "needle_keys", "requirements",
           "block_may_match", "SkipGate",
           "chunk_filters"]

#: Bloom filter bits per distinct key: about 0.8% false positives (k = 7).
BITS_PER_KEY = 10
#: length of the token prefixes and suffixes stored as extra keys
PREFIX_LEN = 8

_RUN = re.compile(rb"[0-9A-Za-z_\x80-\xff]+")

#: what the planner hands the querier: every clause must keep at least one
#: alternative, and an alternative is the tuple of key hashes a line needs
Requirements = tuple[tuple[tuple[int, ...], ...], ...]


def block_filter(raw_block: bytes) -> bytes:
    """The token filter of one raw block (FORMAT.md section 2 layout); b"" means none."""
    return _tokens.block_filter(raw_block, BITS_PER_KEY, PREFIX_LEN)


def needle_keys(needle: bytes) -> tuple[int, ...]:
    """Hashes of the keys every line containing ``needle`` (ASCII case folded) holds.

    Empty when the needle guarantees nothing (no usable run).
    """
    lowered = bytes(needle).lower()
    keys = []
    n = len(lowered)
    for m in _RUN.finditer(lowered):
        run = m.group()
        left, right = m.start() > 0, m.end() < n  # bounded by a separator inside the needle
        if left and right:
            if len(run) <= PREFIX_LEN:
                keys.append(run)  # a whole short token
            else:
                keys += (run[:PREFIX_LEN], run[-PREFIX_LEN:])  # a long token's two keys
        elif left and len(run) >= PREFIX_LEN:
            keys.append(run[:PREFIX_LEN])  # the run starts a token: a prefix of it
        elif right and len(run) >= PREFIX_LEN:
            keys.append(run[-PREFIX_LEN:])  # the run ends a token: a suffix of it
    return tuple(sorted({_tokens.key_hash(k) for k in keys}))


def requirements(clauses: Sequence[tuple[tuple[bytes, ...], bool, bool]]) -> Requirements:
    """What the scanner clauses of a query demand of a block's filter.

    A positive clause ``(needles, False, ci)`` keeps a line containing any
    of its needles: a block may match only if, for some needle, all its
    keys may be in the filter.  A clause with a needle that gives no key
    demands nothing; negative clauses never do.
    """
    out = []
    for needles, negate, _ci in clauses:
        if negate or not needles:
            continue
        alts = [needle_keys(n) for n in needles]
        if any(not a for a in alts):
            continue
        out.append(tuple(alts))
    return tuple(out)


def block_may_match(token_filter, reqs: Requirements) -> bool:
    """False only when the block certainly has no line meeting ``reqs``."""
    if not reqs or not token_filter:
        return True
    may = _tokens.may_contain
    for alts in reqs:
        for keys in alts:
            if may(token_filter, keys):
                break
        else:
            return False
    return True


class SkipGate:
    """One query's use of the filters: consulted while they pay for themselves.

    Reading a chunk's filter section and probing it costs a little per
    block; for a needle that is in most blocks (a common word) nothing is
    skipped and that cost is pure loss.  Once ``WARMUP`` blocks were probed
    and at least 90% of them could match, the query stops consulting
    filters (results are the same either way).
    """

    WARMUP = 64
    __slots__ = ("reqs", "checked", "passed", "active")

    def __init__(self, reqs: Requirements):
        self.reqs = reqs
        self.checked = 0
        self.passed = 0
        self.active = bool(reqs)

    @classmethod
    def for_query(cls, store, clauses) -> SkipGate | None:
        """The gate of one query over ``store`` for its scanner ``clauses``; None when
        the clauses demand no token or the store's ``token_filters`` option is off."""
        if not store.options.token_filters:
            return None
        reqs = requirements(clauses)
        return cls(reqs) if reqs else None

    def may_match(self, token_filter) -> bool:
        """Probe one block's filter (always True once the gate is closed)."""
        if not self.active or not token_filter:
            return True
        ok = block_may_match(token_filter, self.reqs)
        self.checked += 1
        self.passed += ok
        if self.checked >= self.WARMUP and self.passed * 10 >= self.checked * 9:
            self.active = False
        return ok


def chunk_filters(reader, meta, gate: SkipGate | None):
    """The filters of a chunk's blocks for ``gate``, or None to scan every block.

    Filters are an optimisation: a damaged filter section (reported by
    ``verify()``) must not make undamaged blocks unreadable, so it is logged
    and the chunk is scanned in full.
    """
    if gate is None or not gate.active or meta.version < 2:
        return None
    try:
        return reader.read_filters(meta)
    except CorruptionError as exc:
        logging.getLogger("chunkstore.tokenfilter").warning(
            "token filters unusable, scanning the chunk: %s", exc)
        return None
