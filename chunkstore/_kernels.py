"""Choose the compiled Cython core or its pure-Python twins, in one place.

Every kernel exists twice with the same names, signatures and exceptions:
``chunkstore._hashing`` / ``_block`` / ``_scan`` / ``_tokens`` (compiled from
``src_c/``) and ``chunkstore._hashing_py`` / ``_block_py`` / ``_scan_py`` /
``_tokens_py``.  The rest of the
package imports kernels only from here.

Environment switches (read once, at import):

``CHUNKSTORE_PUREPYTHON=1``
    use the pure-Python twins even when the compiled modules exist;
``CHUNKSTORE_REQUIRE_EXT=1``
    a missing compiled module is an ``ImportError`` instead of a silent
    fallback, so CI can never test the slow path by accident.
"""

from __future__ import annotations

import os


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


PURE_REQUESTED = _flag("CHUNKSTORE_PUREPYTHON")
REQUIRE_EXT = _flag("CHUNKSTORE_REQUIRE_EXT")

if PURE_REQUESTED and REQUIRE_EXT:
    raise ImportError(
        "chunkstore: CHUNKSTORE_PUREPYTHON and CHUNKSTORE_REQUIRE_EXT are both set"
    )

ACCELERATED = False
if not PURE_REQUESTED:
    try:
        from chunkstore import _block as block  # type: ignore[attr-defined]
        from chunkstore import _hashing as hashing  # type: ignore[attr-defined]
        from chunkstore import _scan as scan  # type: ignore[attr-defined]
        from chunkstore import _tokens as tokens  # type: ignore[attr-defined]

        ACCELERATED = True
    except ImportError:
        if REQUIRE_EXT:
            raise
if not ACCELERATED:
    from chunkstore import _block_py as block
    from chunkstore import _hashing_py as hashing
    from chunkstore import _scan_py as scan
    from chunkstore import _tokens_py as tokens

crc32c = hashing.crc32c
xxh64 = hashing.xxh64

__all__ = ["ACCELERATED", "block", "hashing", "scan", "tokens", "crc32c", "xxh64"]
