"""LogQL parser stages: ``| json``, ``| logfmt``, ``| regexp``, ``| pattern``, ``| unpack``.

Each parser is a stage ``process(ts, line, lb) -> (line, keep)`` that adds
*parsed* labels to the :class:`LabelsBuilder`.  Parsers never drop a line
and never raise on input: malformed input sets ``__error__`` (and usually
``__error_details__``) and the line continues, as in Loki's
pkg/logql/log/parser.go.

Rules shared by all parsers (Loki's, checked against its tests):

* Keys are sanitized (``sanitizeLabelKey``): Go-whitespace trimmed, a leading
  digit gets a ``_`` prefix, every character outside ``[A-Za-z0-9_]`` becomes
  ``_`` (an invalid UTF-8 byte counts as one character).
* A key equal to a *stream* label or to a structured metadata label of the
  line becomes ``<key>_extracted`` (grafana/loki#19991); a key seen twice in
  one line keeps the first value (grafana/loki#19568); a key equal to a label
  parsed by an earlier stage overwrites it.
* Values are decoded as Go sees bytes; U+FFFD (an invalid byte or a literal
  replacement character) becomes a space, since Prometheus rejects it.

Parsers use the per-stream builder only; caches inside a parser hold
sanitized key spellings, never the stream-dependent ``_extracted`` decision.
"""

from __future__ import annotations

import json
import re  # fixed internal patterns only
from collections.abc import Sequence

from chunkstore.errors import QueryError
from chunkstore.logql._decoders import (
    BOOLEAN,
    NULL,
    NUMBER,
    OBJECT,
    STRING,
    JSONScanError,
    has_rune_error,
    logfmt_scan,
    lookup_path,
    object_each,
    unescape,
)
from chunkstore.logql.labels_builder import (
    ERR_JSON,
    ERR_LOGFMT,
    EXTRACTED_SUFFIX,
    LabelsBuilder,
    go_decode,
)
from chunkstore.logql.line_filters import (
    check_no_consecutive_captures,
    compile_re2,
    parse_pattern,
    re2_go_spans,
)
from chunkstore.logql.re2_groups import capture_names
from chunkstore.logql.units import GO_SPACE

__all__ = [
    "JSONParser",
    "LogfmtParser",
    "RegexpParser",
    "PatternParser",
    "UnpackParser",
    "sanitize_label_key",
]

_MAX_INTERNED = 1024  # Loki's MaxInternedStrings: bound on per-parser key caches
_INVALID_KEY_CHARS = re.compile(r"[^A-Za-z0-9_]")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def sanitize_label_key(key: str) -> str:
    """Loki's ``sanitizeLabelKey(key, true)``: trim, ``_`` before a leading digit, map invalid chars to ``_``."""
    if not key:
        return key
    key = key.strip(GO_SPACE)
    if not key:
        return key
    if "0" <= key[0] <= "9":
        key = "_" + key
    return _INVALID_KEY_CHARS.sub("_", key)


def _sanitize_nested(key: str, at_start: bool) -> str:
    """Loki's ``appendSanitized``: like sanitize_label_key, digit prefix only at the buffer start."""
    key = key.strip(GO_SPACE)
    if not key:
        return ""
    if at_start and "0" <= key[0] <= "9":
        return "_" + _INVALID_KEY_CHARS.sub("_", key)
    return _INVALID_KEY_CHARS.sub("_", key)


def _clean_value(data: bytes) -> str:
    """Bytes -> label value: Go decoding, U+FFFD replaced by a space."""
    s = go_decode(data)
    return s.replace("\ufffd", " ") if "\ufffd" in s else s


def _json_value(raw: bytes) -> str:
    """Loki's ``unescapeJSONString``: unescape, "" on a bad escape, U+FFFD -> space."""
    out = unescape(raw)
    return "" if out is None else _clean_value(out)


def json_string(data: bytes, start: int, stop: int) -> str:
    """Label value of the string value spanning ``data[start:stop]`` (quotes included)."""
    return _json_value(data[start + 1:stop - 1])


def _valid_label_name(name: str) -> bool:
    return bool(_LABEL_NAME.match(name))


class _KeyCache(dict):
    """Bounded memo of raw key -> sanitized key (Loki's internedStringSet)."""

    __slots__ = ()

    def put(self, key, value):
        if len(self) < _MAX_INTERNED:
            self[key] = value
        return value


# --------------------------------------------------------------------------
# | json
# --------------------------------------------------------------------------

class _Obj(list):
    """A JSON object as the list of its (key, value) pairs, duplicates kept in order."""

    __slots__ = ()


def _no_constants(name: str):
    raise ValueError(name)  # NaN/Infinity are not JSON for Loki: use the exact scanner


_DECODER = json.JSONDecoder(
    object_pairs_hook=_Obj, parse_float=str, parse_int=str,
    parse_constant=_no_constants, strict=False,
)
_SURROGATE = re.compile("[\ud800-\udfff]")


_MISSING = object()
_NO_DOC = object()


def _decoded_lookup(node, path: list, depth: int):
    """EachKey on a decoded document: first match in document order, or _MISSING."""
    if depth == len(path):
        return node
    component = path[depth]
    if type(component) is int:
        if type(node) is list and component < len(node):
            return _decoded_lookup(node[component], path, depth + 1)
        return _MISSING
    if type(node) is _Obj:
        for key, value in node:
            if key == component:
                found = _decoded_lookup(value, path, depth + 1)
                if found is not _MISSING:
                    return found
    return _MISSING


class _Fallback(Exception):
    """The fast path cannot reproduce Loki for this line; run the exact scanner."""


class JSONParser:
    """``| json`` (``params`` None/empty) or ``| json label="expr", ...``.

    Without params every string, number and boolean property becomes a
    label; nested objects are flattened with ``_`` (``{"a":{"b":1}}`` ->
    ``a_b="1"``); arrays and nulls are skipped; numbers keep their JSON text
    (``1.0`` stays ``"1.0"``).  A line that is not a JSON object sets
    ``__error__="JSONParserErr"`` and ``__error_details__`` to the
    jsonparser message; labels found before the error are kept.

    With params each ``(label, expression)`` extracts one value: ``a.b``,
    ``a["b c"]``, ``list[0]`` and combinations.  Objects are returned as their
    raw JSON text, arrays as their text unescaped, null as ``""``; a missing
    path gives ``label=""``.  The line must start with ``{``, ``[`` or ``"``
    or it gets ``JSONParserErr`` without details.  Raises QueryError for a
    bad expression or label name.
    """

    __slots__ = ("params", "_paths", "_keys", "process")

    def __init__(self, params: Sequence[tuple[str, str]] | None = None):
        self.params = list(params) if params else []
        self._keys = _KeyCache()
        if self.params:
            self._paths = []
            for label, expression in self.params:
                path = _parse_json_expression(expression)
                if not _valid_label_name(label):
                    raise QueryError(f"invalid extracted label name '{label}'")
                self._paths.append((label, path))
            self.process = self._process_expressions
        else:
            self._paths = None
            self.process = self._process_all

    # -- without params --------------------------------------------------------

    def _process_all(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:
        # Fast path: the C json decoder when the line is a plain JSON object;
        # anything it rejects or might read differently goes to the exact scanner.
        try:
            try:
                doc = _DECODER.decode(go_decode(line))
            except (ValueError, RecursionError):
                raise _Fallback from None
            if type(doc) is not _Obj:
                raise _Fallback
            # Parsers only add parsed labels, so with no metadata/override to
            # evict, a plain dict store is what set_parsed would do.
            setter = lb.set_parsed if (lb.metadata or lb.stream_override) else lb.parsed.__setitem__
            clash = {**lb.stream, **lb.metadata} if lb.metadata else lb.stream
            self._flatten(doc, "", clash, setter, b"\\u" in line, set())
        except _Fallback:
            self._scan(line, lb)
        return line, True

    def _scan(self, line: bytes, lb: LabelsBuilder) -> None:
        """The exact jsonparser-grammar path (also used directly by differential tests)."""
        try:
            object_each(line, 0, len(line), self._scanner_callback(lb, "", set()))
        except JSONScanError as exc:
            lb.set_error(ERR_JSON, str(exc))
        except RecursionError:
            # Nesting deeper than Python's stack: Loki (Go) would go on; we give up on this line.
            lb.set_error(ERR_JSON, "Value looks like object, but can't find closing '}' symbol")

    def _flatten(self, pairs: _Obj, prefix: str, stream, setter, check: bool, seen: set) -> None:
        # ``check``: the line has \\u escapes, which may decode to lone surrogates
        # that jsonparser rejects or maps differently -> rerun with the scanner.
        # Pairs are handled in document order, so labels set before a fallback
        # are exactly those the scanner sets again.
        names = self._keys
        for key, value in pairs:
            if check and _SURROGATE.search(key):
                raise _Fallback
            t = type(value)
            if t is str or t is bool:
                if t is bool:
                    value = "true" if value else "false"
                elif check and _SURROGATE.search(value):
                    raise _Fallback
                elif "\ufffd" in value:
                    value = value.replace("\ufffd", " ")
                name = names.get((prefix, key))
                if name is None:
                    name = names.put((prefix, key), self._label_name(key, prefix))
                if name in stream:
                    name += EXTRACTED_SUFFIX
                if name in seen:
                    continue  # the first occurrence wins
                seen.add(name)
                setter(name, value)
            elif t is _Obj:
                self._flatten(value, self._next_prefix(key, prefix), stream, setter, check, seen)
            # arrays and nulls are skipped

    @staticmethod
    def _label_name(key: str, prefix: str) -> str:
        if not prefix:
            return sanitize_label_key(key)
        return prefix + "_" + _sanitize_nested(key, False)

    def _next_prefix(self, key: str, prefix: str) -> str:
        cached = self._keys.get((None, prefix, key))
        if cached is not None:
            return cached
        if prefix:
            nested = prefix + "_" + _sanitize_nested(key, False)
        else:
            nested = _sanitize_nested(key, True)
        return self._keys.put((None, prefix, key), nested)

    def _scanner_callback(self, lb: LabelsBuilder, prefix: str, seen: set):
        def callback(key: bytes, data: bytes, start: int, end: int, vtype: int) -> None:
            if vtype == STRING or vtype == NUMBER or vtype == BOOLEAN:
                key_text = go_decode(key)
                name = self._keys.get((prefix, key_text))
                if name is None:
                    name = self._keys.put((prefix, key_text), self._label_name(key_text, prefix))
                if name in lb.stream or name in lb.metadata:
                    name += EXTRACTED_SUFFIX
                if name in seen:
                    return  # the first occurrence wins
                seen.add(name)
                if vtype == STRING:
                    value = _json_value(data[start + 1:end - 1])
                elif vtype == NUMBER:
                    value = go_decode(data[start:end])
                else:
                    value = "true" if data[start:end] == b"true" else "false"
                lb.set_parsed(name, value)
            elif vtype == OBJECT:
                nested = self._next_prefix(go_decode(key), prefix)
                object_each(data, start, end, self._scanner_callback(lb, nested, seen))
        return callback

    # -- with params ---------------------------------------------------------

    def _process_expressions(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:
        if not line:
            return line, True
        if line[0] not in b'"{[':
            lb.set_error(ERR_JSON)
            return line, True
        try:
            doc = _DECODER.decode(go_decode(line))
            check = b"\\u" in line
        except (ValueError, RecursionError):
            doc = _NO_DOC  # not plain JSON: every path goes through the exact scanner
        matched = 0
        for label, path in self._paths:
            value = _MISSING
            if doc is not _NO_DOC:
                node = _decoded_lookup(doc, path, 0)
                t = type(node)
                if node is _MISSING:
                    continue
                if t is str and not (check and _SURROGATE.search(node)):
                    value = node.replace("\ufffd", " ") if "\ufffd" in node else node
                elif t is bool:
                    value = "true" if node else "false"
                elif node is None:
                    value = ""
            if value is _MISSING:  # objects and arrays need their raw text
                try:
                    found = lookup_path(line, path)
                except JSONScanError as exc:
                    lb.set_error(ERR_JSON, str(exc))
                    continue
                except RecursionError:
                    continue
                if found is None:
                    continue
                start, end, vtype = found
                if vtype == NULL:
                    value = ""
                elif vtype == OBJECT:
                    value = go_decode(line[start:end])
                elif vtype == STRING:
                    value = _json_value(line[start + 1:end - 1])
                else:  # numbers, booleans and arrays go through unescaping in Loki
                    value = _json_value(line[start:end])
            lb.set_parsed(lb.extracted_name(label), value)
            matched += 1
        if matched < len(self._paths):
            for label, _path in self._paths:
                if lb.get(label) is None:
                    lb.set_parsed(label, "")
        return line, True

    def __repr__(self) -> str:
        return f"JSONParser({self.params!r})"


_JSONEXPR_TOKEN = re.compile(
    r"""[ \t\n]*(?:(?P<lsb>\[)|(?P<rsb>\])|(?P<dot>\.)|(?P<field>[A-Za-z_][A-Za-z0-9_]*)
        |(?P<str>"[^"\]]*["\]]?)|(?P<int>[0-9][^ \t\n.\]]*(?P<float>\.)?))""",
    re.VERBOSE,
)


def _parse_json_expression(expr: str) -> list:
    """Parse a ``| json`` expression into path components (str keys, int indexes).

    Grammar (Loki's jsonexpr.y): ``field | ["key"] | [index]`` followed by any
    of ``["key"]``, ``[index]``, ``.field``.  Raises QueryError.
    """
    def fail(msg: str):
        raise QueryError(f"cannot parse expression [{expr}]: syntax error: {msg}")

    tokens = []
    pos = 0
    stripped_end = len(expr.rstrip(" \t\n"))
    while pos < stripped_end:
        m = _JSONEXPR_TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            rest = expr[pos:].lstrip(" \t\n")
            fail(f"unexpected char {rest[:1]}")
        if m.group("int") is not None:
            text = m.group("int")
            if m.group("float") is not None:
                fail("cannot use float as array index")
            if not text.isdigit():
                fail(f"non-integer value: {next(c for c in text if not c.isdigit())}")
            tokens.append(("INDEX", int(text)))
        elif m.group("str") is not None:
            text = m.group("str")[1:]
            if text.endswith(('"', "]")):
                text = text[:-1]
            tokens.append(("STRING", text))
        elif m.group("field") is not None:
            tokens.append(("FIELD", m.group("field")))
        else:
            tokens.append(("LSB" if m.group("lsb") else "RSB" if m.group("rsb") else "DOT", None))
        pos = m.end()

    path: list = []
    i = 0
    n = len(tokens)

    def expect(kind: str, what: str):
        nonlocal i
        if i >= n:
            fail(f"unexpected $end, expecting {what}")
        if tokens[i][0] != kind:
            fail(f"unexpected {tokens[i][0]}, expecting {what}")
        i += 1
        return tokens[i - 1][1]

    # goyacc's wording: expected tokens are listed except where $end is acceptable.
    if n == 0:
        fail("unexpected $end, expecting LSB or FIELD")
    first = True
    while i < n:
        kind = tokens[i][0]
        if kind == "FIELD" and first:
            path.append(tokens[i][1])
            i += 1
        elif kind == "LSB":
            i += 1
            if i < n and tokens[i][0] == "INDEX":
                path.append(tokens[i][1])
                i += 1
            elif i < n and tokens[i][0] == "STRING":
                path.append(tokens[i][1])
                i += 1
            else:
                fail("unexpected $end" if i >= n else f"unexpected {tokens[i][0]}, expecting STRING or INDEX")
            expect("RSB", "RSB")
        elif kind == "DOT" and not first:
            i += 1
            path.append(expect("FIELD", "FIELD"))
        else:
            fail(f"unexpected {kind}, expecting LSB or FIELD" if first else f"unexpected {kind}")
        first = False
    return path


# --------------------------------------------------------------------------
# | logfmt
# --------------------------------------------------------------------------

_LOGFMT_EXPR = re.compile(r"[ \t\n]*([A-Za-z_][A-Za-z0-9_]*)[ \t\n]*\Z")


class LogfmtParser:
    """``| logfmt [--strict] [--keep-empty] [label="key", ...]``.

    Without params every ``key=value`` becomes a label.  Keys without a value
    (``key`` or ``key=``) are skipped unless ``keep_empty``.  Quoted values
    support ``\\" \\\\ \\/ \\' \\b \\f \\n \\r \\t \\uXXXX``.  Non-strict mode
    skips invalid pairs and never sets an error; ``strict`` stops at the first
    invalid pair and sets ``__error__="LogfmtParserErr"`` with
    ``logfmt syntax error at pos N : ...`` (labels before it are kept).

    With params (``(label, key)`` pairs, key an identifier) only those keys
    are extracted, renamed to ``label``; a missing key yields ``label=""``
    and empty values are always kept.  Raises QueryError for a bad key or
    label name.
    """

    __slots__ = ("strict", "keep_empty", "params", "_keys", "_ids", "_renames", "process")

    def __init__(self, strict: bool = False, keep_empty: bool = False,
                 params: Sequence[tuple[str, str]] | None = None):
        self.strict = bool(strict)
        self.keep_empty = bool(keep_empty)
        self.params = list(params) if params else []
        self._keys = _KeyCache()
        if self.params:
            self._ids = []
            self._renames = {}
            for label, expression in self.params:
                m = _LOGFMT_EXPR.match(expression)
                if m is None:
                    raise QueryError(f"cannot parse expression [{expression}]: syntax error: unexpected KEY")
                if not _valid_label_name(label):
                    raise QueryError(f"invalid extracted label name '{label}'")
                self._ids.append(label)
                # Loki maps a key to the first label naming it (its map order is random).
                self._renames.setdefault(m.group(1), label)
            self.process = self._process_expressions
        else:
            self.process = self._process_all

    def _key(self, raw: bytes) -> str:
        cached = self._keys.get(raw)
        if cached is None:
            cached = self._keys.put(raw, sanitize_label_key(go_decode(raw)))
        return cached

    def _process_all(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:
        pairs, err = logfmt_scan(line, self.strict)
        stream = {**lb.stream, **lb.metadata} if lb.metadata else lb.stream
        keep_empty = self.keep_empty
        seen = set()
        for raw_key, raw_value in pairs:
            key = self._key(raw_key)
            if not key:
                continue
            if not raw_value:
                if not keep_empty:
                    continue
                value = ""
            else:
                value = raw_value.decode("ascii") if raw_value.isascii() else _clean_value(raw_value)
            name = key + EXTRACTED_SUFFIX if key in stream else key
            if name in seen:
                continue  # the first occurrence wins
            seen.add(name)
            lb.set_parsed(name, value)
        if err is not None:
            lb.set_error(ERR_LOGFMT, err)
        return line, True

    def _process_expressions(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:
        ids = self._ids
        for label in ids:
            if not lb.base_has(label):
                lb.set_parsed(label, "")
        pairs, err = logfmt_scan(line, self.strict)
        for raw_key, raw_value in pairs:
            key = self._key(raw_key)
            if not key:
                continue
            if raw_value is None or has_rune_error(raw_value):
                value = ""
            else:
                value = go_decode(raw_value)
            key = self._renames.get(key, key)
            if key in ids:
                lb.set_parsed(lb.extracted_name(key), value)
        if err is not None:
            lb.set_error(ERR_LOGFMT, err)
        return line, True

    def __repr__(self) -> str:
        return f"LogfmtParser(strict={self.strict}, keep_empty={self.keep_empty}, params={self.params!r})"


# --------------------------------------------------------------------------
# | regexp
# --------------------------------------------------------------------------

class RegexpParser:
    """``| regexp "re"``: each named group of the first match becomes a label.

    RE2 syntax (``(?P<name>...)`` or ``(?<name>...)``), unanchored search.
    A group that did not take part in the match yields ``""``; a line that
    does not match adds nothing and sets no error.  Raises QueryError when the
    pattern is invalid, has no named group, or a name is not a label name.
    """

    __slots__ = ("pattern", "_rx", "_groups")

    def __init__(self, pattern: str):
        self.pattern = pattern
        self._rx = compile_re2(pattern, "regexp parser")
        if self._rx.groups == 0:
            raise QueryError("at least one named capture must be supplied")
        seen: set[str] = set()
        for name in capture_names(pattern):
            if not _valid_label_name(name):
                raise QueryError(f"invalid extracted label name '{name}'")
            if name in seen:
                raise QueryError(f"duplicate extracted label name '{name}'")
            seen.add(name)
        groups = []
        for name, index in sorted(self._rx.groupindex.items(), key=lambda kv: kv[1]):
            if not _valid_label_name(name):
                raise QueryError(f"invalid extracted label name '{name}'")
            groups.append((index, sanitize_label_key(name)))
        if not groups:
            raise QueryError("at least one named capture must be supplied")
        self._groups = tuple(groups)

    def process(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:
        spans, subject = re2_go_spans(self._rx, line)
        if spans is None:
            return line, True
        stream = lb.stream
        meta = lb.metadata
        for index, name in self._groups:
            s, e = spans[index]
            value = "" if s < 0 else go_decode(subject[s:e])
            lb.set_parsed(name + EXTRACTED_SUFFIX if name in stream or name in meta else name,
                          value)
        return line, True

    def __repr__(self) -> str:
        return f"RegexpParser({self.pattern!r})"


# --------------------------------------------------------------------------
# | pattern
# --------------------------------------------------------------------------

class PatternParser:
    """``| pattern "<ip> - <_> \\"<method> <uri> <_>\\""``.

    Matching is Loki's left-to-right, shortest: a leading literal must start
    the line; each capture extends to the *first* occurrence of the next
    literal; a trailing capture takes the rest.  If a literal is missing the
    current capture takes the rest of the line and later captures are not
    set (partial match); an empty line matches nothing.  Raises QueryError if
    the pattern has no named capture, two adjacent captures, or a repeated name.
    """

    __slots__ = ("pattern", "_nodes", "_names")

    def __init__(self, pattern: str):
        self.pattern = pattern
        nodes = parse_pattern(pattern)
        names = [n for n in nodes if isinstance(n, str) and n != "_"]
        if not names:
            raise QueryError("at least one capture is required")
        check_no_consecutive_captures(nodes)
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise QueryError(f"duplicate capture name ({name}): invalid expression")
            seen.add(name)
        self._nodes = tuple(nodes)
        self._names = tuple(names)

    def matches(self, line: bytes) -> list[tuple[str, bytes]]:
        """(name, value) pairs Loki's matcher extracts from ``line`` (possibly a prefix of the names)."""
        out: list[tuple[str, bytes]] = []
        nodes = self._nodes
        if not line or not nodes:
            return out
        i = 0
        pos = 0
        if isinstance(nodes[0], bytes):
            if not line.startswith(nodes[0]):
                return out
            pos = len(nodes[0])
            i = 1
        if i >= len(nodes):
            return out
        while i < len(nodes):
            capture = nodes[i]
            if i + 1 >= len(nodes):
                if capture != "_":
                    out.append((capture, line[pos:]))
                return out
            literal = nodes[i + 1]
            i += 2
            j = line.find(literal, pos)
            if j < 0:
                if capture != "_":
                    out.append((capture, line[pos:]))
                return out
            if capture != "_":
                out.append((capture, line[pos:j]))
            pos = j + len(literal)
        return out

    def process(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:
        stream = lb.stream
        meta = lb.metadata
        for name, value in self.matches(line):
            lb.set_parsed(name + EXTRACTED_SUFFIX if name in stream or name in meta else name,
                          go_decode(value))
        return line, True

    def __repr__(self) -> str:
        return f"PatternParser({self.pattern!r})"


# --------------------------------------------------------------------------
# | unpack
# --------------------------------------------------------------------------

_PACKED_ENTRY_KEY = b"_entry"
_NOT_AN_OBJECT = "expecting json object(6), but it is not"


class UnpackParser:
    """``| unpack``: undo Promtail's ``pack`` stage.

    The line must be a JSON object: its top-level *string* properties become
    labels and ``_entry`` (unescaped) replaces the line.  Without ``_entry``
    nothing changes.  Other value types are ignored.  A line not starting
    with ``{`` or malformed JSON sets ``JSONParserErr`` and leaves line and
    labels unchanged.  Clash checks use the raw key (then it is sanitized),
    as Loki does.
    """

    __slots__ = ()

    def process(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:
        if not line:
            return line, True
        if line[0] != 0x7B:  # '{'
            lb.set_error(ERR_JSON, _NOT_AN_OBJECT)
            return line, True
        found: list[tuple[str, str]] = []
        entry: list[bytes] = []
        stream = lb.stream

        def callback(key: bytes, data: bytes, start: int, end: int, vtype: int) -> None:
            if vtype != STRING:
                return
            if key == _PACKED_ENTRY_KEY:
                unescaped = unescape(data[start + 1:end - 1])
                if unescaped is None:
                    raise JSONScanError("Encountered an invalid escape sequence in a string")
                entry.append(unescaped)
                return
            field = go_decode(key)
            if field in stream or field in lb.metadata:
                field += EXTRACTED_SUFFIX
            found.append((sanitize_label_key(field), json_string(data, start, end)))

        try:
            object_each(line, 0, len(line), callback)
        except JSONScanError as exc:
            lb.set_error(ERR_JSON, str(exc))
            return line, True
        if not entry:
            return line, True
        for name, value in found:
            lb.set_parsed(name, value)
        return entry[-1], True

    def __repr__(self) -> str:
        return "UnpackParser()"
