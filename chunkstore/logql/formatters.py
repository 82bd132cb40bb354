"""LogQL stages that rewrite labels or the line: drop, keep, decolorize, label_format, line_format.

Semantics from Loki's drop_labels.go, keep_labels.go and fmt.go:

* ``| drop a, b="v"``: a bare name deletes the label; ``name op "value"``
  deletes it only when the matcher matches (an absent label is ``""``).
  ``__error__``/``__error_details__`` are cleared this way too.
* ``| keep a, b="v"``: every other label is deleted; a ``name op "value"``
  item keeps ``name`` only when it matches.  ``__error__``,
  ``__error_details__`` and ``__preserve_error__`` always survive.
* ``| decolorize`` strips ANSI escape sequences with Loki's regexp.
* ``| label_format dst=src`` renames (copies then deletes ``src``; a missing
  ``src`` does nothing); ``dst="{{...}}"`` sets ``dst`` from a template.  All
  templates of one stage see the labels as they were when the *first*
  template ran (re-read while that set is empty, as Loki refills its map).
  Failures set ``__error__="TemplateFormatErr"`` and go on.
* ``| line_format "{{...}}"`` replaces the line; on failure the line is kept
  and ``TemplateFormatErr`` is set.  ``{{.name}}`` alone copies the label
  (empty line if absent) without running the template engine, as Loki does.
  Templates get the line decoded with one U+FFFD per invalid byte, so
  invalid UTF-8 does not survive a rewrite byte for byte (Go keeps it).

Templates come from :mod:`chunkstore.logql.template` (``Template(text)``,
``.execute(labels, line, ts_ns) -> str`` raising ``TemplateError``); it is
imported when a formatter is built, so the other stages do not depend on it.
"""

from __future__ import annotations

import re  # fixed internal patterns only
from typing import Sequence

import re2

from chunkstore.errors import QueryError
from chunkstore.logql.labels_builder import (
    ERR_TEMPLATE_FORMAT,
    ERROR_DETAILS_LABEL,
    ERROR_LABEL,
    PRESERVE_ERROR_LABEL,
    LabelsBuilder,
    go_decode,
)
from chunkstore.logql.label_filters import LabelMatcher

__all__ = ["DropLabels", "KeepLabels", "Decolorize", "LabelFormat", "LineFormat"]


def _matcher(name: str, spec) -> LabelMatcher | None:
    """Normalise an item's matcher: None, a LabelMatcher, an object with ``matches``, or ``(op, value)``."""
    if spec is None:
        return None
    if hasattr(spec, "matches"):
        return spec
    op, value = spec
    return LabelMatcher(name, op, value, prometheus=True)


class DropLabels:
    """``| drop name, name op "value", ...``.

    ``items`` are ``(name, matcher)`` pairs; ``matcher`` is None (drop the
    label), ``(op, value)`` with op ``= != =~ !~`` (Prometheus matcher
    semantics) or any object with ``matches(str) -> bool``.
    """

    __slots__ = ("items",)

    def __init__(self, items: Sequence[tuple[str, object]]):
        self.items = tuple((name, _matcher(name, spec)) for name, spec in items)

    def process(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:
        for name, matcher in self.items:
            if name == ERROR_LABEL:
                if matcher is None or matcher.matches(lb.err):
                    lb.reset_error()
            elif name == ERROR_DETAILS_LABEL:
                if matcher is None or matcher.matches(lb.err_details):
                    lb.reset_error_details()
            else:
                value = lb.get(name)
                if matcher is None:
                    if value is not None:
                        lb.delete(name)
                elif matcher.matches("" if value is None else value):
                    lb.delete(name)
        return line, True

    def __repr__(self) -> str:
        return f"DropLabels({self.items!r})"


_SPECIAL = frozenset((ERROR_LABEL, ERROR_DETAILS_LABEL, PRESERVE_ERROR_LABEL))


class KeepLabels:
    """``| keep name, name op "value", ...``: delete every label not kept (errors always stay).

    ``items`` as for :class:`DropLabels`.  An empty list keeps everything.
    """

    __slots__ = ("items", "_names", "_matchers")

    def __init__(self, items: Sequence[tuple[str, object]]):
        self.items = tuple((name, _matcher(name, spec)) for name, spec in items)
        self._names = frozenset(name for name, m in self.items if m is None)
        matchers: dict[str, list] = {}
        for name, m in self.items:
            if m is not None:
                matchers.setdefault(name, []).append(m)
        self._matchers = matchers

    def process(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:
        if not self.items:
            return line, True
        names, matchers = self._names, self._matchers
        for name, value in lb.labels().items():
            if name in _SPECIAL or name in names:
                continue
            ms = matchers.get(name)
            if ms is not None and any(m.matches(value) for m in ms):
                continue
            lb.delete(name)
        return line, True

    def __repr__(self) -> str:
        return f"KeepLabels({self.items!r})"


class Decolorize:
    """``| decolorize``: remove ANSI colour/control sequences (ESC or CSI 0x9B introduced).

    Uses Loki's pattern (from acarl005/stripansi); the CSI form is the
    UTF-8 encoded U+009B, as Go's regexp reads the line as UTF-8.
    """

    __slots__ = ()
    # RE2 keeps the scan linear whatever the line holds; "\u009b" is matched
    # as its UTF-8 encoding because the line is read as UTF-8.
    _ANSI = re2.compile(
        "[\x1b\u009b][\\[\\]()#;?]*(?:(?:(?:[a-zA-Z\\d]*(?:;[a-zA-Z\\d]*)*)?\x07)"
        "|(?:(?:\\d{1,4}(?:;\\d{0,4})*)?[\\dA-PRZcf-ntqry=><~]))"
    )

    @staticmethod
    def _empty(_match) -> bytes:
        return b""

    def process(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:
        if 0x1B not in line and b"\xc2\x9b" not in line:
            return line, True
        return self._ANSI.sub(self._empty, line), True

    def __repr__(self) -> str:
        return "Decolorize()"


def _message(exc: QueryError) -> str:
    """The error text without QueryError's "(at position N)" suffix (the position is kept apart)."""
    return getattr(exc, "message", None) or str(exc)


def _template_module():
    """Import the template engine lazily (it is written separately)."""
    from chunkstore.logql import template

    return template.Template, getattr(template, "TemplateError", Exception)


class LabelFormat:
    """``| label_format dst=src, dst2="{{.x}}"``.

    ``items`` are ``(dst, kind, text)`` with kind ``"rename"`` (``text`` is the
    source label) or ``"template"``.  Raises QueryError if a destination
    repeats, is ``__error__``, or a template does not compile.
    """

    __slots__ = ("items", "_ops", "_template_error")

    def __init__(self, items: Sequence[tuple[str, str, str]]):
        self.items = tuple(items)
        seen: set[str] = set()
        for dst, kind, _text in self.items:
            if dst == ERROR_LABEL:
                raise QueryError(f"{dst} cannot be formatted")
            if dst in seen:
                raise QueryError(f"multiple label name '{dst}' not allowed in a single format operation")
            if kind not in ("rename", "template"):
                raise QueryError(f"label_format: unknown kind {kind!r} for label '{dst}'")
            seen.add(dst)
        ops = []
        template_error = Exception
        if any(kind == "template" for _d, kind, _t in self.items):
            template_cls, template_error = _template_module()
        for dst, kind, text in self.items:
            if kind == "rename":
                ops.append((dst, text, None))
            else:
                try:
                    ops.append((dst, None, template_cls(text)))
                except QueryError as exc:
                    raise QueryError(f"invalid template for label '{dst}': {_message(exc)}",
                                     pos=exc.pos) from None
        self._ops = tuple(ops)
        self._template_error = template_error

    def process(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:
        snapshot = None
        line_text = None
        for dst, src, template in self._ops:
            if template is None:
                value = lb.get(src)
                if value is not None:
                    lb.set_parsed(dst, value)
                    lb.delete(src)
                continue
            if not snapshot:  # Loki refills its map while it is empty, so re-read until then
                snapshot = lb.labels()
            if line_text is None:
                line_text = go_decode(line)
            try:
                result = template.execute(snapshot, line_text, ts)
            except self._template_error as exc:
                lb.set_error(ERR_TEMPLATE_FORMAT, str(exc))
                continue
            lb.set_parsed(dst, result)
        return line, True

    def __repr__(self) -> str:
        return f"LabelFormat({self.items!r})"


_SIMPLE_KEY = re.compile(r"\{\{-?\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}\Z")


class LineFormat:
    """``| line_format "{{.status}} {{.msg}}"``: replace the line with the rendered template.

    Raises QueryError if the template does not compile; its ``pos`` is an
    offset into the template text (the caller adds the string's position).
    """

    __slots__ = ("text", "_template", "_template_error", "_simple_key")

    def __init__(self, text: str):
        self.text = text
        template_cls, self._template_error = _template_module()
        try:
            self._template = template_cls(text)
        except QueryError as exc:
            raise QueryError(f"invalid line template: {_message(exc)}", pos=exc.pos) from None
        m = _SIMPLE_KEY.match(text)
        # "{{- .x -}}" trims surrounding text only; alone it renders like "{{.x}}".
        self._simple_key = m.group(1) if m else None

    def process(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:
        key = self._simple_key
        if key is not None:
            value = lb.get(key)
            return (b"" if value is None else value.encode("utf-8", "surrogatepass")), True
        try:
            result = self._template.execute(lb.labels(), go_decode(line), ts)
        except self._template_error as exc:
            lb.set_error(ERR_TEMPLATE_FORMAT, str(exc))
            return line, True
        return result.encode("utf-8", "surrogatepass"), True

    def __repr__(self) -> str:
        return f"LineFormat({self.text!r})"
