"""Run a LogQL log pipeline (``{sel} | stage | stage ...``) over entries.

A :class:`Pipeline` holds the stages of one query; :meth:`Pipeline.for_stream`
returns a :class:`StreamPipeline` bound to one stream's labels, cached per
label set as Loki's ``pipeline.ForStream`` does, with its own
:class:`LabelsBuilder` reset for every line.  Stages are shared between
streams and keep no per-line state, so one Pipeline serves a whole query
(single-threaded: a StreamPipeline is not thread-safe).

Entry protocol: ``process(ts_ns, line_bytes, metadata)`` returns ``None`` when
a stage dropped the line, else ``(line_bytes, labels_dict)``.  Structured
metadata is added before the first stage exactly like Loki: names are
normalised (Prometheus/OTLP ``NormalizeLabel``), a name equal to a stream
label gets ``_extracted``, and ``__error__``/``__error_details__`` entries set
the error fields.
"""

from __future__ import annotations

import re  # fixed internal pattern only
from typing import Iterable, Mapping, Sequence, Union

from chunkstore.logql.labels_builder import LabelsBuilder

__all__ = ["Pipeline", "StreamPipeline", "normalize_metadata_name"]

Metadata = Union[Mapping[str, str], Iterable[tuple[str, str]], None]

_NORMALIZED: dict[str, str] = {}
_SIMPLE_NAME = re.compile(r"[A-Za-z0-9_]*\Z")  # already normal: '_' maps to itself


def normalize_metadata_name(name: str) -> str:
    """OTLP/Prometheus ``NormalizeLabel``, applied by Loki to structured metadata names.

    Every character that is not a Unicode letter or decimal digit becomes
    ``_``; a name starting with an ASCII digit gets ``key_`` in front, one
    starting with a single ``_`` gets ``key`` (``__x`` is left alone).
    """
    cached = _NORMALIZED.get(name)
    if cached is not None:
        return cached
    out = name
    if name:
        if not _SIMPLE_NAME.match(name):
            out = "".join(c if (c.isalpha() or c.isdecimal()) else "_" for c in name)
        if "0" <= out[0] <= "9":
            out = "key_" + out
        elif out[0] == "_" and not out.startswith("__"):
            out = "key" + out
    if len(_NORMALIZED) < 4096:
        _NORMALIZED[name] = out
    return out


def _metadata_items(metadata: Metadata):
    items = metadata.items() if isinstance(metadata, Mapping) else metadata
    return [(normalize_metadata_name(k), v) for k, v in items]


class StreamPipeline:
    """The stages of a query bound to one stream's labels.

    ``process`` allocates only the result dict (and what stages create); the
    builder is reused.  Stage callables are resolved once at construction.
    """

    __slots__ = ("stream_labels", "builder", "_procs")

    def __init__(self, stages: Sequence, stream_labels: Mapping[str, str]):
        self.stream_labels = dict(stream_labels)
        self.builder = LabelsBuilder(self.stream_labels)
        self._procs = tuple(stage.process for stage in stages)

    def process(self, ts: int, line: bytes, metadata: Metadata = None) -> tuple[bytes, dict[str, str]] | None:
        """Run every stage on one entry; None if dropped, else ``(line, labels)``."""
        lb = self.builder
        lb.reset()
        if metadata:
            lb.add_metadata(_metadata_items(metadata))
        for proc in self._procs:
            line, keep = proc(ts, line, lb)
            if not keep:
                return None
        return line, lb.labels()

    def __repr__(self) -> str:
        return f"StreamPipeline({self.stream_labels!r}, stages={len(self._procs)})"


class Pipeline:
    """A query's log pipeline: an ordered list of stage objects.

    Each stage has ``process(ts, line, lb) -> (line, keep)``: the filters,
    parsers and formatters of this package (or any object following that
    protocol).  ``for_stream`` caches one StreamPipeline per distinct label
    set for the pipeline's lifetime (a query); :meth:`reset` empties it.
    """

    __slots__ = ("stages", "_streams")

    def __init__(self, stages: Sequence):
        self.stages = tuple(stages)
        for stage in self.stages:
            if not callable(getattr(stage, "process", None)):
                raise TypeError(f"pipeline: stage {stage!r} has no process(ts, line, lb) method")
        self._streams: dict[frozenset, StreamPipeline] = {}

    def for_stream(self, stream_labels: Mapping[str, str]) -> StreamPipeline:
        """The (cached) StreamPipeline for a stream label set."""
        key = frozenset(stream_labels.items())
        sp = self._streams.get(key)
        if sp is None:
            sp = self._streams[key] = StreamPipeline(self.stages, stream_labels)
        return sp

    def process(self, ts: int, line: bytes, stream_labels: Mapping[str, str],
                metadata: Metadata = None) -> tuple[bytes, dict[str, str]] | None:
        """Convenience: ``for_stream(stream_labels).process(ts, line, metadata)``.

        Hashes the label set on every call; loops over one stream should hold
        on to :meth:`for_stream`'s result instead.
        """
        return self.for_stream(stream_labels).process(ts, line, metadata)

    def reset(self) -> None:
        """Forget the per-stream cache."""
        self._streams.clear()

    def __len__(self) -> int:
        return len(self.stages)

    def __repr__(self) -> str:
        return f"Pipeline({list(self.stages)!r})"
