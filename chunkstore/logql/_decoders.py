"""Byte-level decoders behind the ``| json``, ``| unpack`` and ``| logfmt`` stages.

Private to :mod:`chunkstore.logql.parsers` (split out to keep both files short).
Both decoders reproduce Loki's Go code rule for rule, because a result or an
``__error_details__`` message that differs by one byte is a different answer:

* jsonparser's lenient JSON grammar (github.com/grafana/jsonparser
  ``ObjectEach``, ``Get``, ``EachKey``, ``Unescape``).  Loki does not validate
  JSON: the library accepts some invalid documents (bytes after the closing
  brace, numbers such as ``-x``, ``{"a":1, }``) and rejects others with fixed
  messages.  Works on offsets into one buffer; never slices while skipping.
* Loki's logfmt decoder (pkg/logql/log/logfmt/decode.go, adapted from
  go-logfmt): key/value scanning, quoting, error positions and the recovery
  of non-strict mode, behind a regex fast path for well-formed lines.
"""

from __future__ import annotations

import re  # fixed internal patterns only

from chunkstore.logql.labels_builder import go_decode

__all__ = [
    "STRING", "NUMBER", "OBJECT", "ARRAY", "BOOLEAN", "NULL",
    "JSONScanError", "object_each", "unescape", "lookup_path",
    "logfmt_scan", "has_rune_error",
]

# --------------------------------------------------------------------------
# JSON (jsonparser)
# --------------------------------------------------------------------------

STRING, NUMBER, OBJECT, ARRAY, BOOLEAN, NULL = range(1, 7)

_MSG_OBJECT = "Value looks like object, but can't find closing '}' symbol"
_MSG_JSON = "Malformed JSON error"
_MSG_STRING = "Value is string, but can't find closing '\"' symbol"
_MSG_ARRAY = "Value is array, but can't find closing ']' symbol"
_MSG_UNKNOWN = "Unknown value type"
_MSG_ESCAPE = "Encountered an invalid escape sequence in a string"


class JSONScanError(Exception):
    """jsonparser rejected the input; ``str()`` is its message."""


_WS = re.compile(rb"[ \t\r\n]*")
_TOKEN_END = re.compile(rb"[^ \t\r\n,}\]]*")
_OBJECT_CHARS = re.compile(rb'["{}]')
_ARRAY_CHARS = re.compile(rb'["\[\]]')
_JSON_ESCAPES = {
    ord('"'): b'"', ord("\\"): b"\\", ord("/"): b"/", ord("b"): b"\b",
    ord("f"): b"\f", ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t",
}
_HEX4 = re.compile(rb"[0-9a-fA-F]{4}")


def _string_end(data: bytes, start: int, end: int) -> int:
    """Index just past the closing quote of a string whose content starts at ``start``, or -1.

    A quote closes the string when preceded by an even number of backslashes.
    """
    i = start
    while True:
        j = data.find(b'"', i, end)
        if j < 0:
            return -1
        k = j - 1
        while k >= start and data[k] == 0x5C:
            k -= 1
        if (j - 1 - k) % 2 == 0:
            return j + 1
        i = j + 1


def _block_end(data: bytes, pos: int, end: int) -> int:
    """Index just past the bracket closing the ``{``/``[`` at ``pos`` (strings skipped), or -1."""
    open_c = data[pos]
    pattern = _OBJECT_CHARS if open_c == 0x7B else _ARRAY_CHARS
    level = 0
    while True:
        m = pattern.search(data, pos, end)
        if m is None:
            return -1
        p = m.start()
        c = data[p]
        if c == 0x22:
            pos = _string_end(data, p + 1, end)
            if pos < 0:
                return -1
            continue
        if c == open_c:
            level += 1
        else:
            level -= 1
            if level == 0:
                return p + 1
        pos = p + 1


def _get_value(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """jsonparser ``Get`` with no keys: the value after optional whitespace as (start, stop, type)."""
    pos = _WS.match(data, pos, end).end()
    if pos >= end:
        raise JSONScanError(_MSG_JSON)
    c = data[pos]
    if c == 0x22:
        stop = _string_end(data, pos + 1, end)
        if stop < 0:
            raise JSONScanError(_MSG_STRING)
        return pos, stop, STRING
    if c == 0x5B or c == 0x7B:
        stop = _block_end(data, pos, end)
        if stop < 0:
            raise JSONScanError(_MSG_ARRAY if c == 0x5B else _MSG_OBJECT)
        return pos, stop, ARRAY if c == 0x5B else OBJECT
    stop = _TOKEN_END.match(data, pos, end).end()
    token = data[pos:stop]
    if c == 0x74 or c == 0x66:  # t f
        if token == b"true" or token == b"false":
            return pos, stop, BOOLEAN
    elif c == 0x75 or c == 0x6E:  # u n
        if token == b"null":
            return pos, stop, NULL
    elif 0x30 <= c <= 0x39 or c == 0x2D:  # digits and '-': not validated further
        return pos, stop, NUMBER
    raise JSONScanError(_MSG_UNKNOWN)


def object_each(data: bytes, pos: int, end: int, callback) -> None:
    """jsonparser ``ObjectEach`` over ``data[pos:end]``: ``callback(key, data, start, stop, type)``.

    ``key`` is the unescaped key bytes; string values span their quotes.
    Bytes after the closing brace are ignored.  Raises JSONScanError.
    """
    pos = _WS.match(data, pos, end).end()
    if pos >= end or data[pos] != 0x7B:
        raise JSONScanError(_MSG_OBJECT)
    pos = _WS.match(data, pos + 1, end).end()
    if pos >= end:
        raise JSONScanError(_MSG_JSON)
    if data[pos] == 0x7D:
        return
    last_comma = -1
    while pos < end:
        c = data[pos]
        if c == 0x7D:
            if last_comma != -1 and last_comma + 1 == pos:
                raise JSONScanError(_MSG_OBJECT)  # {"a":1,}
            return
        if c != 0x22:
            raise JSONScanError(_MSG_OBJECT)
        kend = _string_end(data, pos + 1, end)
        if kend < 0:
            raise JSONScanError(_MSG_JSON)
        key = data[pos + 1:kend - 1]
        if 0x5C in key:
            key = unescape(key)
            if key is None:
                raise JSONScanError(_MSG_ESCAPE)
        pos = _WS.match(data, kend, end).end()
        if pos >= end or data[pos] != 0x3A:
            raise JSONScanError(_MSG_JSON)
        start, stop, vtype = _get_value(data, pos + 1, end)
        callback(key, data, start, stop, vtype)
        pos = _WS.match(data, stop, end).end()
        if pos >= end:
            raise JSONScanError(_MSG_ARRAY)  # sic: jsonparser's message here
        c = data[pos]
        if c == 0x7D:
            return
        if c != 0x2C:
            raise JSONScanError(_MSG_OBJECT)
        last_comma = pos
        nxt = _WS.match(data, pos + 1, end).end()
        if nxt >= end:
            raise JSONScanError(_MSG_ARRAY)
        if nxt - (pos + 1) > 0:
            last_comma += nxt - (pos + 1) - 1  # jsonparser's arithmetic, quirks included
        pos = nxt
    raise JSONScanError(_MSG_OBJECT)


def unescape(raw: bytes) -> bytes | None:
    """jsonparser ``Unescape``: resolve JSON escapes; None for an invalid escape.

    A surrogate escape must be followed by a low surrogate (its ``\\\\u`` is not
    checked, as in jsonparser); an impossible combination encodes U+FFFD.
    """
    if 0x5C not in raw:
        return raw
    out = bytearray()
    i = 0
    n = len(raw)
    while True:
        j = raw.find(b"\\", i)
        if j < 0:
            out += raw[i:]
            return bytes(out)
        out += raw[i:j]
        if j + 1 >= n:
            return None
        e = raw[j + 1]
        simple = _JSON_ESCAPES.get(e)
        if simple is not None:
            out += simple
            i = j + 2
            continue
        if e != 0x75 or not _HEX4.match(raw, j + 2, j + 6):
            return None
        r = int(raw[j + 2:j + 6], 16)
        if 0xD800 <= r <= 0xDFFF:
            if not _HEX4.match(raw, j + 8, j + 12):
                return None
            r2 = int(raw[j + 8:j + 12], 16)
            if r2 < 0xDC00:
                return None
            r = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00)
            if r > 0x10FFFF or 0xD800 <= r <= 0xDFFF:
                r = 0xFFFD
            i = j + 12
        else:
            i = j + 6
        out += chr(r).encode("utf-8")


def _lookup(data: bytes, pos: int, end: int, path: list, depth: int):
    pos = _WS.match(data, pos, end).end()
    if depth == len(path):
        return _get_value(data, pos, end)
    if pos >= end:
        return None
    component = path[depth]
    if isinstance(component, int):
        if data[pos] != 0x5B:
            return None
        start = _element(data, pos, end, component)
        return None if start is None else _lookup(data, start, end, path, depth + 1)
    if data[pos] != 0x7B:
        return None
    # Every member with the wanted key is tried in document order: EachKey
    # matches a key by its whole ancestor chain, so a later duplicate parent
    # can hold the value the first one lacks.
    pos = _WS.match(data, pos + 1, end).end()
    while pos < end and data[pos] == 0x22:
        kend = _string_end(data, pos + 1, end)
        if kend < 0:
            return None
        key = unescape(data[pos + 1:kend - 1])
        if key is None:
            return None
        pos = _WS.match(data, kend, end).end()
        if pos >= end or data[pos] != 0x3A:
            return None
        vpos = _WS.match(data, pos + 1, end).end()
        if go_decode(key) == component:
            found = _lookup(data, vpos, end, path, depth + 1)
            if found is not None:
                return found
        try:
            _s, stop, _t = _get_value(data, vpos, end)
        except JSONScanError:
            return None
        pos = _WS.match(data, stop, end).end()
        if pos >= end or data[pos] != 0x2C:
            return None
        pos = _WS.match(data, pos + 1, end).end()
    return None


def _element(data: bytes, pos: int, end: int, index: int):
    """Start of element ``index`` of the array at ``pos``; None if absent or malformed."""
    pos = _WS.match(data, pos + 1, end).end()
    if pos >= end or data[pos] == 0x5D:
        return None
    current = 0
    while pos < end:
        if current == index:
            return pos
        try:
            _s, stop, _t = _get_value(data, pos, end)
        except JSONScanError:
            return None
        pos = _WS.match(data, stop, end).end()
        if pos >= end or data[pos] != 0x2C:
            return None
        pos = _WS.match(data, pos + 1, end).end()
        current += 1
    return None


def lookup_path(data: bytes, path: list):
    """Follow ``path`` (str keys, int indexes) as Loki's ``jsonparser.EachKey``: ``(start, stop, type)`` or None.

    The first match in document order wins.  A malformed document yields
    None (EachKey stops silently); a malformed *found* value raises JSONScanError.
    """
    return _lookup(data, 0, len(data), path, 0)


# --------------------------------------------------------------------------
# logfmt (Loki's decoder)
# --------------------------------------------------------------------------

_LF_NOT_SPACE = re.compile(rb"[^\x00-\x20]")
_LF_KEY_STOP = re.compile(rb'[="\x00-\x20]')
_LF_SPACE = re.compile(rb"[\x00-\x20]")
_LF_QUOTE_STOP = re.compile(rb'["\\]')
_LF_SIMPLE_ESCAPES = {
    ord('"'): b'"', ord("\\"): b"\\", ord("/"): b"/", ord("'"): b"'",
    ord("b"): b"\b", ord("f"): b"\f", ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t",
}


def _logfmt_unquote(s: bytes) -> bytes | None:
    """The logfmt decoder's ``unquoteBytes`` for a quoted value with escapes (quotes excluded)."""
    out = bytearray()
    i = 0
    n = len(s)
    while i < n:
        j = s.find(b"\\", i)
        if j < 0:
            out += s[i:]
            break
        out += s[i:j]
        if j + 1 >= n:
            return None
        e = s[j + 1]
        simple = _LF_SIMPLE_ESCAPES.get(e)
        if simple is not None:
            out += simple
            i = j + 2
            continue
        if e != ord("u") or not _HEX4.match(s, j + 2, j + 6):
            return None
        r = int(s[j + 2:j + 6], 16)
        i = j + 6
        if 0xD800 <= r < 0xE000:
            if (0xD800 <= r < 0xDC00 and s[i:i + 2] == b"\\u" and _HEX4.match(s, i + 2, i + 6)
                    and 0xDC00 <= int(s[i + 2:i + 6], 16) < 0xE000):
                r = 0x10000 + ((r - 0xD800) << 10) + (int(s[i + 2:i + 6], 16) - 0xDC00)
                i += 6
            else:
                r = 0xFFFD
        out += chr(r).encode("utf-8")
    # non-ASCII input is coerced to valid UTF-8 in Go; go_decode does the same later
    return bytes(out)


# One well-formed pair: optional whitespace, key, then ``=`` with a quoted or
# bare value.  The classes are disjoint, so each match is linear.
_LF_PAIR = re.compile(rb'[\x00-\x20]*([^="\x00-\x20]+)(?:=(?:"((?:[^"\\]|\\.)*)"|([^="\x00-\x20]*)))?', re.S)
_LF_TAIL = re.compile(rb"[\x00-\x20]*\Z")


def _logfmt_fast(line: bytes):
    """Pairs of a line with no logfmt error, or None to let the exact decoder decide.

    Accepting only error-free lines makes strict and non-strict results
    identical, so this can stand in for :func:`logfmt_scan` whenever it answers.
    """
    pairs = []
    pos = 0
    n = len(line)
    match = _LF_PAIR.match
    while pos < n:
        m = match(line, pos)
        if m is None:
            return pairs if _LF_TAIL.match(line, pos) else None
        key, quoted, plain = m.group(1, 2, 3)
        if not key.isascii() and has_rune_error(key):
            return None
        if quoted is not None:
            if 0x5C in quoted:
                quoted = _logfmt_unquote(quoted)
                if quoted is None:
                    return None
            pairs.append((key, quoted or None))
        else:
            pairs.append((key, plain or None))
        pos = m.end()
    return pairs


def logfmt_scan(line: bytes, strict: bool):
    """Decode logfmt like Loki's decoder; return ``(pairs, error)``.

    ``pairs`` is a list of ``(key_bytes, value_bytes_or_None)``; ``error`` the
    message of the first failure in strict mode (scanning stops there) or
    None.  Non-strict mode skips an invalid pair up to the next whitespace.
    """
    fast = _logfmt_fast(line)
    if fast is not None:
        return fast, None
    return _logfmt_exact(line, strict)


def _logfmt_exact(line: bytes, strict: bool):
    """Loki's decoder step by step, errors and recovery included (see :func:`logfmt_scan`)."""
    pairs = []
    n = len(line)
    pos = 0
    err = None
    while pos < n:
        m = _LF_NOT_SPACE.search(line, pos)
        if m is None:
            break
        start = m.start()
        stop = _LF_KEY_STOP.search(line, start)
        kend = stop.start() if stop is not None else n
        c = line[kend] if kend < n else None
        failed = None
        key = line[start:kend] if kend > start else None
        if c == 0x22:  # '"' inside a key
            failed = (kend + 1, "unexpected '\"'")
        elif c == 0x3D and key is None:  # '=' with no key
            failed = (kend + 1, "unexpected '='")
        elif key is not None and not key.isascii() and has_rune_error(key):
            failed = (kend + 1, "invalid key")
        if failed is not None:
            err = "logfmt syntax error at pos %d : %s" % failed
            if strict:
                return pairs, err
            if c == 0x3D or c == 0x22:  # skip_value
                sp = _LF_SPACE.search(line, kend)
                pos = sp.start() if sp is not None else n
            else:
                pos = kend
            continue
        if c != 0x3D:  # key alone, at whitespace or end of line
            pairs.append((key, None))
            pos = kend
            continue
        vpos = kend + 1
        if vpos >= n or line[vpos] <= 0x20:
            pairs.append((key, None))
            pos = vpos
            continue
        if line[vpos] == 0x22:  # quoted value
            p = vpos + 1
            has_esc = False
            close = -1
            while True:
                q = _LF_QUOTE_STOP.search(line, p)
                if q is None:
                    break
                if line[q.start()] == 0x5C:
                    has_esc = True
                    p = q.start() + 2
                    continue
                close = q.start()
                break
            if close < 0:
                err = "logfmt syntax error at pos %d : unterminated quoted value" % (n + 1)
                if strict:
                    return pairs, err
                pos = n
                continue
            pos = close + 1
            inner = line[vpos + 1:close]
            if has_esc:
                value = _logfmt_unquote(inner)
                if value is None:
                    err = "logfmt syntax error at pos %d : invalid quoted value" % (pos + 1)
                    if strict:
                        return pairs, err
                    continue
            else:
                value = inner or None
            pairs.append((key, value))
            continue
        stop = _LF_KEY_STOP.search(line, vpos)
        vend = stop.start() if stop is not None else n
        if vend < n and line[vend] in b'="':
            err = "logfmt syntax error at pos %d : unexpected %s" % (
                vend + 1, "'='" if line[vend] == 0x3D else "'\"'")
            if strict:
                return pairs, err
            sp = _LF_SPACE.search(line, vend)
            pos = sp.start() if sp is not None else n
            continue
        pairs.append((key, line[vpos:vend]))
        pos = vend
    return pairs, (err if strict else None)


def has_rune_error(data: bytes) -> bool:
    """Go's ``bytes.ContainsRune(data, utf8.RuneError)``: invalid UTF-8 or a literal U+FFFD."""
    if b"\xef\xbf\xbd" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
