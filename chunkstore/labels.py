"""Label sets: validation by Loki's rules, canonical bytes and fingerprints.

A stream is named by its label set.  :class:`Labels` is the immutable,
sorted, validated form; its canonical bytes (``docs/FORMAT.md`` section 1)
are what the WAL and chunk headers store and what the fingerprint hashes.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from chunkstore import _kernels
from chunkstore.errors import LabelError

__all__ = ["Labels", "LabelLimits", "fingerprint", "parse_labels_text"]

_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_SEP = b"\xff"


@dataclass(frozen=True)
class LabelLimits:
    """Limits applied to every new stream's label set (Loki's defaults).

    ``max_names``: labels per stream (default 15); ``max_name_length``: bytes
    per name (1024); ``max_value_length``: bytes per value (2048).  A value of
    0 or less disables that limit.
    """

    max_names: int = 15
    max_name_length: int = 1024
    max_value_length: int = 2048


DEFAULT_LIMITS = LabelLimits()


_MISSING = object()


def _intern(text: str) -> str:
    """``sys.intern`` for any str, subclasses included (as a plain str)."""
    return sys.intern(text if type(text) is str else str.__str__(text))


class Labels(Mapping[str, str]):
    """An immutable, validated label set, sorted by name.

    Empty values are dropped (as Loki does).  Equality and hashing use the
    canonical bytes, so two label sets are equal exactly when they name the
    same stream.  Construct with :meth:`from_input` to validate user input;
    the constructor trusts its (already sorted, validated) pairs.
    """

    # No per-instance dict: a store holds one Labels per stream (10,000s of
    # them), and a label set has at most a few dozen pairs, so lookups scan
    # the sorted pairs (180 bytes a stream saved, measured with tracemalloc).
    __slots__ = ("_pairs", "_canonical", "_fp")

    def __init__(self, pairs: tuple[tuple[str, str], ...], canonical: bytes | None = None):
        self._pairs = pairs
        if canonical is None:
            canonical = b"".join(
                n.encode() + _SEP + v.encode() + _SEP for n, v in pairs
            )
        self._canonical = canonical
        self._fp: int | None = None

    # -- construction -------------------------------------------------
    @classmethod
    def from_input(cls, labels, limits: LabelLimits = DEFAULT_LIMITS) -> Labels:
        """Validate ``labels`` (a mapping, pairs, a ``{k="v"}`` string or Labels).

        Raises :class:`LabelError` naming the offending label for: a name not
        matching ``[a-zA-Z_][a-zA-Z0-9_]*``, a reserved ``__name``, duplicate
        names, non-string values, limits exceeded, or an empty set.
        """
        if isinstance(labels, Labels):
            pairs_in: Iterable = labels._pairs
        elif isinstance(labels, str):
            pairs_in = parse_labels_text(labels)
        elif isinstance(labels, Mapping):
            pairs_in = labels.items()
        else:
            try:
                pairs_in = list(labels)
            except TypeError:
                raise LabelError(
                    f"labels: expected a mapping of str to str, got {type(labels).__name__}"
                ) from None
        seen: dict[str, str] = {}
        for item in pairs_in:
            try:
                name, value = item
            except (TypeError, ValueError):
                raise LabelError(f"labels: expected (name, value) pairs, got {item!r}") from None
            if not isinstance(name, str):
                raise LabelError(f"labels: label name must be str, got {name!r}", label=str(name))
            if not isinstance(value, str):
                raise LabelError(
                    f"labels: value of label {name!r} must be str, got {type(value).__name__}",
                    label=name,
                )
            if not _NAME_RE.match(name):
                raise LabelError(f"labels: invalid label name {name!r}", label=name)
            if name.startswith("__"):
                raise LabelError(
                    f"labels: label name {name!r} is reserved (names starting with '__')",
                    label=name,
                )
            if name in seen:
                raise LabelError(f"labels: duplicate label name {name!r}", label=name)
            seen[name] = value
        # Names and values are interned: a store holds one label set per
        # stream, and across streams most values repeat (app, env, namespace).
        pairs = tuple(sorted((_intern(n), _intern(v)) for n, v in seen.items() if v != ""))
        if not pairs:
            raise LabelError("labels: a stream needs at least one label with a non-empty value")
        if 0 < limits.max_names < len(pairs):
            raise LabelError(
                f"labels: stream has {len(pairs)} labels, more than max_names {limits.max_names}",
                label=pairs[limits.max_names][0],
            )
        for name, value in pairs:
            if 0 < limits.max_name_length < len(name.encode()):
                raise LabelError(
                    f"labels: label name {name[:40]!r}... is longer than "
                    f"max_name_length {limits.max_name_length}",
                    label=name,
                )
            try:
                encoded = value.encode()
            except UnicodeEncodeError:
                raise LabelError(f"labels: value of label {name!r} is not valid unicode",
                                 label=name) from None
            if 0 < limits.max_value_length < len(encoded):
                raise LabelError(
                    f"labels: value of label {name!r} is {len(encoded)} bytes, longer than "
                    f"max_value_length {limits.max_value_length}",
                    label=name,
                )
        return cls(pairs)

    @classmethod
    def from_canonical(cls, canonical: bytes) -> Labels:
        """Rebuild labels from their canonical bytes (WAL records, chunk headers).

        Raises ``ValueError`` when the bytes are not a canonical encoding.
        """
        parts = canonical.split(_SEP)
        if len(parts) % 2 != 1 or parts[-1] != b"":
            raise ValueError("labels: malformed canonical label bytes")
        pairs = tuple(
            (_intern(parts[i].decode()), _intern(parts[i + 1].decode()))
            for i in range(0, len(parts) - 1, 2)
        )
        return cls(pairs, canonical)

    # -- Mapping ------------------------------------------------------
    def __getitem__(self, name: str) -> str:
        value = self.get(name, _MISSING)
        if value is _MISSING:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (n for n, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __contains__(self, name: object) -> bool:
        return self.get(name, _MISSING) is not _MISSING

    def get(self, name, default=None):
        for n, v in self._pairs:
            if n == name:
                return v
        return default

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Labels):
            return self._canonical == other._canonical
        if isinstance(other, Mapping):
            return dict(self._pairs) == {k: v for k, v in other.items() if v != ""}
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._canonical)

    def __repr__(self) -> str:
        return f"Labels({self})"

    def __str__(self) -> str:
        return "{" + ", ".join(f'{n}="{_escape(v)}"' for n, v in self._pairs) + "}"

    # -- identity -----------------------------------------------------
    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        return self._pairs

    @property
    def canonical(self) -> bytes:
        """The canonical bytes of ``docs/FORMAT.md`` section 1."""
        return self._canonical

    @property
    def fingerprint(self) -> int:
        """XXH64 of the canonical bytes: stable across versions and platforms."""
        fp = self._fp
        if fp is None:
            fp = self._fp = _kernels.hashing.fingerprint_canonical(self._canonical)
        return fp

    def as_dict(self) -> dict[str, str]:
        return dict(self._pairs)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_PAIR_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|\})')


def parse_labels_text(text: str) -> list[tuple[str, str]]:
    """Parse a ``{name="value", ...}`` label set (equality only, Go escapes).

    Raises :class:`LabelError` on anything else; selectors with other
    operators belong to the LogQL parser.
    """
    s = text.strip()
    if not s.startswith("{") or not s.endswith("}"):
        raise LabelError(f"labels: expected {{name=\"value\", ...}}, got {text!r}")
    if s[1:-1].strip() == "":
        return []
    pos = 1
    out: list[tuple[str, str]] = []
    while pos < len(s):
        m = _PAIR_RE.match(s, pos)
        if not m:
            raise LabelError(f"labels: cannot parse label set {text!r} at position {pos}")
        raw = m.group(2)
        try:
            value = raw.encode("latin-1", "backslashreplace").decode("unicode_escape")
            value = value.encode("latin-1").decode("utf-8")
        except (UnicodeError, ValueError):
            value = raw.replace('\\"', '"').replace("\\\\", "\\")
        out.append((m.group(1), value))
        pos = m.end()
        if m.group(3) == "}":
            if s[pos:].strip():
                raise LabelError(f"labels: trailing text after label set {text!r}")
            break
    return out


def fingerprint(labels) -> int:
    """The stable 64-bit fingerprint of a label set (see ``docs/FORMAT.md``).

    Accepts anything :meth:`Labels.from_input` accepts; empty values are
    dropped before hashing, so ``{a="1", b=""}`` and ``{a="1"}`` agree.
    """
    return Labels.from_input(labels, LabelLimits(0, 0, 0)).fingerprint
