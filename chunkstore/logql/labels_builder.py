"""The per-line label state every LogQL pipeline stage reads and writes.

This is Loki's ``LabelsBuilder`` (pkg/logql/log/labels.go).  A line starts with
its stream labels; structured metadata is added before the first stage;
parsers add *parsed* labels; ``drop``/``keep``/``label_format`` delete and
rename; any stage may set ``__error__``/``__error_details__``.  One builder is
created per stream and :meth:`LabelsBuilder.reset` between lines, so the hot
path allocates nothing when a line passes through untouched.

Rules kept from Loki, because query results depend on them:

* Precedence: parsed > structured metadata > stream.  A name lives in at most
  one "added" category: setting a parsed label removes a metadata label of the
  same name; setting metadata is a no-op when a parsed label exists.
* Clashes: a parser key equal to a stream label or to a structured metadata
  label of the line becomes ``<key>_extracted`` (``extracted_name``; Loki's
  precedence stream > metadata > parsed, grafana/loki#19991); a key equal to
  a label parsed by an earlier stage simply overwrites it.  The decision is made
  per stream and line (Loki once cached it per query across streams, a bug
  fixed in grafana/loki#19984).
* ``__error__`` and ``__error_details__`` are not ordinary labels: ``get`` does
  not see them, they are appended to :meth:`labels` only when non-empty, and
  only ``drop``/label filters on ``__error__`` touch them.
* Labels with empty values are *kept* in :meth:`labels` (``| json`` on
  ``{"a":""}`` yields ``a=""``): Loki's v1 engine returns them, and its newer
  engine was changed to match (grafana/loki#19717, #21351).

This module also holds the two UTF-8 helpers every stage needs to see bytes
the way Go does (one U+FFFD per invalid byte).
"""

from __future__ import annotations

import codecs
from typing import Iterable, Mapping

__all__ = [
    "LabelsBuilder",
    "STREAM",
    "METADATA",
    "PARSED",
    "ERROR_LABEL",
    "ERROR_DETAILS_LABEL",
    "PRESERVE_ERROR_LABEL",
    "EXTRACTED_SUFFIX",
    "ERR_JSON",
    "ERR_LOGFMT",
    "ERR_LABEL_FILTER",
    "ERR_TEMPLATE_FORMAT",
    "go_decode",
    "go_utf8",
]

# Label categories, in increasing precedence.
STREAM = "stream"
METADATA = "metadata"
PARSED = "parsed"

ERROR_LABEL = "__error__"
ERROR_DETAILS_LABEL = "__error_details__"
PRESERVE_ERROR_LABEL = "__preserve_error__"
EXTRACTED_SUFFIX = "_extracted"

# __error__ values, as Loki's logqlmodel spells them.
ERR_JSON = "JSONParserErr"
ERR_LOGFMT = "LogfmtParserErr"
ERR_LABEL_FILTER = "LabelFilterErr"
ERR_TEMPLATE_FORMAT = "TemplateFormatErr"


# --------------------------------------------------------------------------
# Go's view of bytes
# --------------------------------------------------------------------------

def _go_replace(exc: UnicodeError):
    """Codec error handler: one U+FFFD per invalid byte, as Go's range loop yields.

    Python's ``"replace"`` emits one U+FFFD per *maximal invalid subpart*
    (``b"\\xe2\\x82"`` -> one), Go one per byte (-> two); label values and
    sanitized keys would differ in length without this.
    """
    if isinstance(exc, UnicodeDecodeError):
        return "\ufffd" * (exc.end - exc.start), exc.end
    raise exc


_GO_ERRORS = "chunkstore-go-replace"
codecs.register_error(_GO_ERRORS, _go_replace)


def go_decode(data: bytes) -> str:
    """Decode bytes as Go's ``string(b)`` is seen rune by rune.

    Every invalid byte becomes one U+FFFD.  ASCII input takes a fast path.
    """
    if data.isascii():
        return data.decode("ascii")
    return data.decode("utf-8", _GO_ERRORS)


def go_utf8(data: bytes) -> bytes:
    """Return ``data`` with each invalid UTF-8 byte replaced by U+FFFD's encoding.

    Go's regexp engine reads an invalid byte as the rune U+FFFD, RE2 in UTF-8
    mode refuses to match it at all; matching the repaired bytes gives Go's
    answer.  Returns ``data`` itself (no copy) when it is already valid.
    """
    if data.isascii():
        return data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", _GO_ERRORS).encode("utf-8")
    return data


# --------------------------------------------------------------------------
# LabelsBuilder
# --------------------------------------------------------------------------

class LabelsBuilder:
    """Mutable label set of one log line, reused for every line of a stream.

    ``stream`` is the stream's label set (never mutated).  Stages call
    :meth:`get`, :meth:`set` / :meth:`set_parsed`, :meth:`delete` and the error
    methods; the pipeline calls :meth:`reset` before each line and
    :meth:`labels` after the last stage.  Get/set are O(1) dict operations.
    """

    __slots__ = (
        "stream", "metadata", "parsed", "stream_override", "deleted",
        "err", "err_details",
    )

    def __init__(self, stream: Mapping[str, str] | None = None):
        self.stream: dict[str, str] = dict(stream) if stream else {}
        self.metadata: dict[str, str] = {}
        self.parsed: dict[str, str] = {}
        # Stream-category values set by a stage (Loki's add[StreamLabel]):
        # they replace the value of an existing stream label only.
        self.stream_override: dict[str, str] = {}
        self.deleted: set[str] = set()
        self.err = ""
        self.err_details = ""

    # -- per-line lifecycle -------------------------------------------------

    def reset(self) -> None:
        """Forget everything added since the last reset (stream labels stay)."""
        if self.metadata:
            self.metadata.clear()
        if self.parsed:
            self.parsed.clear()
        if self.stream_override:
            self.stream_override.clear()
        if self.deleted:
            self.deleted.clear()
        self.err = ""
        self.err_details = ""

    def is_unchanged(self) -> bool:
        """True while the label set still equals the stream labels (no error either)."""
        return not (self.parsed or self.metadata or self.stream_override
                    or self.deleted or self.err or self.err_details)

    # -- reads ----------------------------------------------------------------

    def get(self, name: str) -> str | None:
        """Value of ``name`` by precedence parsed > metadata > stream, or None.

        ``__error__`` is not a label here; use :attr:`err`.
        """
        v = self.parsed.get(name)
        if v is not None:
            return v
        v = self.metadata.get(name)
        if v is not None:
            return v
        v = self.stream_override.get(name)
        if v is not None:
            return v
        if name in self.deleted:
            return None
        return self.stream.get(name)

    def base_has(self, name: str) -> bool:
        """Whether the *stream* labels contain ``name`` (even if since deleted).

        This is the clash test parsers use for the ``_extracted`` suffix.
        """
        return name in self.stream

    def extracted_name(self, key: str) -> str:
        """``key`` or ``key + "_extracted"`` when a stream label or this line's metadata has it.

        Loki's precedence is stream > structured metadata > parsed: a parsed
        label never replaces either (grafana/loki#19991).
        """
        return key + EXTRACTED_SUFFIX if key in self.stream or key in self.metadata else key

    # -- writes ---------------------------------------------------------------

    def set_parsed(self, name: str, value: str) -> None:
        """Set a parsed label (the highest precedence); the parsers' fast path."""
        if self.metadata:
            self.metadata.pop(name, None)
        if self.stream_override:
            self.stream_override.pop(name, None)
        self.parsed[name] = value

    def set(self, category: str, name: str, value: str) -> None:
        """Set ``name`` in ``category`` (STREAM, METADATA or PARSED) with Loki's precedence.

        A lower-precedence set is a no-op when a higher category holds the
        name; a higher one evicts the name from lower categories.  A deleted
        name comes back when set again.  Raises ValueError for an unknown category.
        """
        if category == PARSED:
            self.set_parsed(name, value)
        elif category == METADATA:
            self.stream_override.pop(name, None)
            if name not in self.parsed:
                self.metadata[name] = value
        elif category == STREAM:
            if name not in self.metadata and name not in self.parsed:
                self.stream_override[name] = value
        else:
            raise ValueError(f"labels builder: unknown label category {category!r}")

    def add_metadata(self, items: Iterable[tuple[str, str]]) -> None:
        """Add structured metadata the way Loki's ``Add`` does before the first stage.

        A name equal to a stream label gets the ``_extracted`` suffix;
        ``__error__``/``__error_details__`` entries set the error fields.
        """
        stream = self.stream
        for name, value in items:
            if name in stream:
                name = name + EXTRACTED_SUFFIX
            if name == ERROR_LABEL:
                self.err = value
            elif name == ERROR_DETAILS_LABEL:
                self.err_details = value
            else:
                self.set(METADATA, name, value)

    def delete(self, name: str) -> None:
        """Remove ``name`` from every category (a later set brings it back)."""
        self.parsed.pop(name, None)
        self.metadata.pop(name, None)
        self.stream_override.pop(name, None)
        self.deleted.add(name)

    # -- errors -----------------------------------------------------------------

    def has_error(self) -> bool:
        """Whether ``__error__`` is set."""
        return self.err != ""

    def set_error(self, err: str, details: str | None = None) -> None:
        """Set ``__error__`` (and ``__error_details__`` when ``details`` is given)."""
        self.err = err
        if details is not None:
            self.err_details = details

    def reset_error(self) -> None:
        """Clear ``__error__`` (details are kept, as Loki's ``ResetError`` does)."""
        self.err = ""

    def reset_error_details(self) -> None:
        """Clear ``__error_details__``."""
        self.err_details = ""

    # -- result -----------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        """The line's final label set as a new dict.

        Stream labels minus deleted ones and minus names overridden by
        metadata or parsed labels, then metadata, then parsed labels, then
        ``__error__``/``__error_details__`` when non-empty.  Empty values are
        kept (see the module docstring).  Keys come in that insertion order;
        Loki sorts label sets by name, so sort when presenting them.
        """
        parsed, metadata, override, deleted = self.parsed, self.metadata, self.stream_override, self.deleted
        if not (parsed or metadata or override or deleted):
            out = dict(self.stream)
        else:
            out = {}
            for k, v in self.stream.items():
                if k in deleted or k in metadata or k in parsed:
                    continue
                out[k] = override.get(k, v)
            if metadata:
                for k, v in metadata.items():
                    if k not in parsed:
                        out[k] = v
            if parsed:
                out.update(parsed)
        if self.err:
            out[ERROR_LABEL] = self.err
        if self.err_details:
            out[ERROR_DETAILS_LABEL] = self.err_details
        return out

    def _check(self) -> None:
        """Assert the invariants (for stress tests): each name in at most one added category."""
        assert not (self.parsed.keys() & self.metadata.keys()), "parsed and metadata overlap"
        assert not (self.parsed.keys() & self.stream_override.keys()), "parsed and stream overlap"
        assert not (self.metadata.keys() & self.stream_override.keys()), "metadata and stream overlap"
        for v in (*self.parsed.values(), *self.metadata.values(), *self.stream_override.values()):
            assert isinstance(v, str), f"non-str label value {v!r}"

    def __repr__(self) -> str:
        return f"LabelsBuilder({self.labels()!r})"
