"""Type stub for ``chunkstore._hashing`` (compiled from ``src_c/_hashing.pyx``).

The pure-Python twin ``chunkstore._hashing_py`` has the same names and
behaviour (except ``HARDWARE_CRC32C``, which only the compiled module has).
"""

from typing_extensions import Buffer

__all__ = ["crc32c", "xxh64", "fingerprint_canonical", "HARDWARE_CRC32C"]

#: True when crc32c uses the CPU's SSE4.2 crc32 instruction.
HARDWARE_CRC32C: bool

def crc32c(data: Buffer, value: int = 0) -> int:
    """CRC-32C of ``data`` continuing from ``value`` (a previous result, in [0, 2**32))."""

def xxh64(data: Buffer, seed: int = 0) -> int:
    """XXH64 of ``data`` with an unsigned 64-bit ``seed``."""

def fingerprint_canonical(canonical: Buffer) -> int:
    """Stream fingerprint of canonical label bytes: ``xxh64(canonical, 0)``."""
