"""LogQL lexer: query text to a list of tokens with start positions.

Loki scans queries with Go's ``text/scanner`` plus a handful of rules of its
own, and a query's meaning depends on those rules (``5m`` is a duration,
``5MB`` a byte size, ``-5m`` a negative duration but ``- 5`` a minus and a
number, ``rate`` a function only when ``(`` follows). This module reproduces
them rule for rule:

* whitespace is space, tab, CR and LF; ``#`` comments run to the end of the
  line, and Go's ``//`` and ``/* */`` comments are skipped too (Loki's scanner
  runs in Go-token mode);
* identifiers are a letter or ``_`` followed by letters, digits and ``_``
  (Unicode letters included, as in Go);
* keywords (``by``, ``json``, ``or`` ...) are case-insensitive and reserved, so
  they cannot be label names; function names (``rate``, ``sum``, ``ip``,
  ``bytes`` ...) are keywords only when an opening parenthesis follows,
  possibly after ``by (...)``/``without (...)``, and plain identifiers
  otherwise (``| bytes > 1KB`` filters on a label called ``bytes``);
* numbers follow Go's literal syntax; digits followed without a space by
  duration units become a ``DURATION`` token (``1h30m``, ``1.5s``, ``-5m``)
  and by byte units a ``BYTES`` token (``20MB``), see :mod:`.durations`;
* ``[ ... ]`` is scanned as one ``RANGE`` token holding a Prometheus duration;
* strings are ``"..."`` with Go escapes or raw ```...```.

Lexing is eager, but an error does not raise here: it becomes an ``ERROR``
token at its position and ends the list. The parser raises when it reaches
that token, so a syntax error earlier in the query is reported first, as in
Loki where the scanner runs on demand.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

from . import durations

__all__ = ["Token", "tokenize", "KEYWORDS", "FUNCTIONS", "RANGE_OPS", "VECTOR_OPS", "CONVERSIONS"]

RANGE_OPS = frozenset(
    {
        "count_over_time",
        "rate",
        "rate_counter",
        "bytes_over_time",
        "bytes_rate",
        "avg_over_time",
        "sum_over_time",
        "min_over_time",
        "max_over_time",
        "stdvar_over_time",
        "stddev_over_time",
        "quantile_over_time",
        "first_over_time",
        "last_over_time",
        "absent_over_time",
    }
)
VECTOR_OPS = frozenset(
    {
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "stddev",
        "stdvar",
        "bottomk",
        "topk",
        "sort",
        "sort_desc",
        "approx_topk",
    }
)
CONVERSIONS = frozenset({"bytes", "duration", "duration_seconds"})

#: Names that are keywords only when followed by ``(`` (or ``by (``/``without (``).
FUNCTIONS = RANGE_OPS | VECTOR_OPS | CONVERSIONS | {"vector", "label_replace", "ip"}

#: Reserved words, matched case-insensitively; never usable as label names.
KEYWORDS = frozenset(
    {
        "by",
        "without",
        "bool",
        "offset",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "or",
        "and",
        "unless",
        "json",
        "regexp",
        "logfmt",
        "unpack",
        "pattern",
        "label_format",
        "line_format",
        "decolorize",
        "drop",
        "keep",
        "unwrap",
    }
)

_PARSER_FLAGS = frozenset({"--strict", "--keep-empty"})
_TWO_CHAR_OPS = frozenset({"|=", "|~", "|>", "!=", "!~", "!>", "=~", "==", ">=", "<="})
_ONE_CHAR_OPS = frozenset("{}(),=|><+-*/%^.")
_WHITESPACE = " \t\n\r"
_DURATION_RUNES = frozenset("numsshdwy\u00b5")
_BYTES_RUNES = frozenset("BikKMGTP")
_ASCII_IDENT = re.compile(r"[A-Za-z_]?[A-Za-z0-9_]*")
_PLAIN_STRING_RUN = re.compile(r'[^"\\\n\x00]*')
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
}


class Token(NamedTuple):
    """One lexical token.

    ``kind`` is an operator's text (``"|="``, ``"{"``), ``"IDENT"``,
    ``"STRING"``, ``"NUMBER"``, ``"DURATION"``, ``"BYTES"``, ``"RANGE"``,
    ``"FLAG"``, ``"KW"`` (``value`` is the lowercase keyword), ``"FUNC"``
    (``value`` is the lowercase function name), ``"EOF"`` or ``"ERROR"``
    (``value`` is the message). ``pos``/``end`` are 0-based character
    offsets into the query. ``value`` holds the decoded string, the float of
    a number (``None`` when Go's ParseFloat would reject it), nanoseconds of a
    duration or range, or bytes of a size.
    """

    kind: str
    pos: int
    end: int
    text: str
    value: object = None

    def is_kw(self, word: str) -> bool:
        return self.kind == "KW" and self.value == word

    def describe(self) -> str:
        """How error messages name this token: quoted text, or ``end of query``."""
        if self.kind == "EOF":
            return "end of query"
        text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return f'"{text}"'


def tokenize(query: str) -> list[Token]:
    """Split ``query`` into tokens, ending with an ``EOF`` or an ``ERROR`` token."""
    return _Lexer(query).run()


class _LexError(Exception):
    def __init__(self, message: str, pos: int):
        super().__init__(message)
        self.message = message
        self.pos = pos


def _is_ident_start(ch: str) -> bool:
    return ch == "_" or ch.isalpha()


def _is_ident_part(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdecimal()


def _is_number_rune(ch: str) -> bool:
    # Go's unicode.IsNumber: categories Nd, Nl, No.
    return "0" <= ch <= "9" or (ch > "\x7f" and unicodedata.category(ch)[0] == "N")


class _Lexer:
    def __init__(self, query: str):
        self.q = query
        self.n = len(query)
        self.tokens: list[Token] = []

    def run(self) -> list[Token]:
        i = 1 if self.q.startswith("\ufeff") else 0
        try:
            while True:
                i = self._skip_space_and_comments(i)
                if i >= self.n:
                    self.tokens.append(Token("EOF", self.n, self.n, ""))
                    break
                i = self._lex_one(i)
        except _LexError as err:
            self.tokens.append(
                Token("ERROR", err.pos, err.pos, self.q[err.pos : err.pos + 1], err.message)
            )
        return self.tokens

    def _skip_space_and_comments(self, i: int) -> int:
        q, n = self.q, self.n
        while i < n:
            ch = q[i]
            if ch in _WHITESPACE:
                i += 1
                continue
            if ch == "#" or q.startswith("//", i):
                end = q.find("\n", i)
                end = n if end < 0 else end
            elif q.startswith("/*", i):
                close = q.find("*/", i + 2)
                if close < 0:
                    raise _LexError("comment not terminated", i)
                end = close + 2
            else:
                break
            self._check_nul(i, end)
            i = end
        return i

    def _check_nul(self, start: int, end: int) -> None:
        nul = self.q.find("\x00", start, end)
        if nul >= 0:
            raise _LexError("invalid character NUL", nul)

    def _emit(self, kind: str, start: int, end: int, value: object = None) -> int:
        self.tokens.append(Token(kind, start, end, self.q[start:end], value))
        return end

    def _lex_one(self, i: int) -> int:
        q, n = self.q, self.n
        ch = q[i]
        nxt = q[i + 1] if i + 1 < n else ""
        if ch == '"':
            return self._lex_string(i)
        if ch == "`":
            end = q.find("`", i + 1)
            if end < 0:
                raise _LexError("literal not terminated", i)
            self._check_nul(i, end)
            return self._emit("STRING", i, end + 1, q[i + 1 : end])
        if "0" <= ch <= "9" or (ch == "." and "0" <= nxt <= "9"):
            return self._lex_number(i)
        if _is_ident_start(ch):
            return self._lex_identifier(i)
        if ch == "[":
            end = q.find("]", i + 1)
            if end < 0:
                raise _LexError("missing closing ']' in duration", i)
            try:
                value = durations.parse_prometheus_duration_ns(q[i + 1 : end])
            except ValueError as err:
                raise _LexError(str(err), i + 1) from None
            return self._emit("RANGE", i, end + 1, value)
        if ch == "-":
            return self._lex_minus(i)
        if ch + nxt in _TWO_CHAR_OPS:
            return self._emit(ch + nxt, i, i + 2)
        if ch in _ONE_CHAR_OPS:
            return self._emit(ch, i, i + 1)
        if ch == "\x00":
            raise _LexError("invalid character NUL", i)
        raise _LexError(f"syntax error: unexpected character {ch!r}", i)

    def _lex_string(self, start: int) -> int:
        """Scan a double-quoted string and decode Go escapes (strconv.Unquote rules)."""
        q, n = self.q, self.n
        out = bytearray()
        i = start + 1
        while True:
            # Copy the run of ordinary characters in one step: long strings
            # (up to the 128 KiB query limit) must not cost a loop per character.
            plain = _PLAIN_STRING_RUN.match(q, i).end()
            if plain > i:
                out += q[i:plain].encode("utf-8")
                i = plain
            if i >= n or q[i] == "\n":
                raise _LexError("literal not terminated", start)
            ch = q[i]
            if ch == '"':
                break
            if ch == "\x00":
                raise _LexError("invalid character NUL", i)
            esc = q[i + 1] if i + 1 < n else ""
            if esc in _ESCAPES:
                out += _ESCAPES[esc].encode()
                i += 2
            elif esc in "01234567" and esc:
                digits = q[i + 1 : i + 4]
                if len(digits) < 3 or any(d not in "01234567" for d in digits):
                    raise _LexError("invalid char escape", i)
                value = int(digits, 8)
                if value > 255:
                    raise _LexError(f"invalid syntax: octal escape \\{digits} is above \\377", i)
                out.append(value)
                i += 4
            elif esc in ("x", "u", "U") and esc:
                width = {"x": 2, "u": 4, "U": 8}[esc]
                digits = q[i + 2 : i + 2 + width]
                if len(digits) < width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                    raise _LexError("invalid char escape", i)
                value = int(digits, 16)
                if esc == "x":
                    out.append(value)
                elif value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                    raise _LexError(
                        f"invalid syntax: \\{esc}{digits} is not a valid Unicode code point", i
                    )
                else:
                    out += chr(value).encode("utf-8")
                i += 2 + width
            else:
                raise _LexError("invalid char escape", i)
        try:
            value = out.decode("utf-8")
        except UnicodeDecodeError:
            # Go keeps such bytes in the string; Python strings cannot hold
            # them without surrogate tricks that would leak into every
            # consumer, so a query producing invalid UTF-8 is refused.
            raise _LexError("string escapes produce invalid UTF-8", start) from None
        return self._emit("STRING", start, i + 1, value)

    def _lex_number(self, start: int) -> int:
        q, n = self.q, self.n
        i = start
        hexa = prefixed = False
        if q[i] == "0" and i + 1 < n and q[i + 1] in "xXoObB":
            hexa = q[i + 1] in "xX"
            prefixed = True
            i += 2
            digits = "0123456789abcdefABCDEF_" if hexa else "0123456789_"
            while i < n and q[i] in digits:
                i += 1
            if hexa and i < n and q[i] == ".":
                i += 1
                while i < n and q[i] in digits:
                    i += 1
        else:
            while i < n and q[i] in "0123456789_":
                i += 1
            if i < n and q[i] == ".":
                i += 1
                while i < n and q[i] in "0123456789_":
                    i += 1
        if i < n and q[i] in "eEpP":
            exp_at = i
            i += 1
            if i < n and q[i] in "+-":
                i += 1
            digits_at = i
            while i < n and q[i] in "0123456789_":
                i += 1
            if q[exp_at] in "pP" and not hexa:
                raise _LexError(f"{q[exp_at]!r} exponent requires hexadecimal mantissa", exp_at)
            if q[exp_at] in "eE" and prefixed:  # Go: 0x, 0o and 0b alike
                raise _LexError(f"{q[exp_at]!r} exponent requires decimal mantissa", exp_at)
            if not any(c in "0123456789" for c in q[digits_at:i]):
                raise _LexError("exponent has no digits", exp_at)
        text = q[start:i]
        self._check_number_syntax(text, start)
        end = self._try_unit_suffix(text, start, i)
        if end is not None:
            return end
        return self._emit("NUMBER", start, i, _go_parse_float(text))

    def _check_number_syntax(self, text: str, start: int) -> None:
        """The errors Go's scanner reports for malformed numeric literals."""
        lower = text.lower()
        prefix = lower[:2] if lower[:2] in ("0x", "0o", "0b") else ""
        if prefix:
            mantissa = lower[2:].split("p")[0] if prefix == "0x" else lower[2:]
            if all(c in "_." for c in mantissa):
                raise _LexError(f"{_literal_name(lower)} has no digits", start)
        if "_" in text and _invalid_separator(text) >= 0:
            raise _LexError("'_' must separate successive digits", start)
        if prefix == "0x" and "." in lower and "p" not in lower:
            raise _LexError("hexadecimal mantissa requires a 'p' exponent", start)
        if prefix in ("0o", "0b"):
            base = 8 if prefix == "0o" else 2
            bad = next((c for c in text[2:] if c != "_" and int(c) >= base), None)
            if bad is not None:
                raise _LexError(f"invalid digit '{bad}' in {_literal_name(lower)}", start)
        elif (
            not prefix
            and len(text) > 1
            and text[0] == "0"
            and "." not in lower
            and "e" not in lower
        ):
            # A leading 0 makes Go scan an octal integer (ParseFloat later
            # reads the same text as decimal, so 0755 is 755).
            bad = next((c for c in text if c in "89"), None)
            if bad is not None:
                raise _LexError(f"invalid digit '{bad}' in octal literal", start)

    def _try_unit_suffix(self, number_text: str, start: int, i: int) -> int | None:
        """Loki's tryScanDuration then tryScanBytes on the characters glued to a number."""
        q, n = self.q, self.n
        j = i
        while (
            j < n
            and not q[j].isspace()
            and (_is_number_rune(q[j]) or q[j] in _DURATION_RUNES or q[j] == ".")
        ):
            j += 1
        if j > i:
            try:
                value = durations.parse_duration_ns(number_text + q[i:j])
            except ValueError:
                pass
            else:
                return self._emit("DURATION", start, j, value)
        j = i
        while (
            j < n
            and not q[j].isspace()
            and (_is_number_rune(q[j]) or q[j] in _BYTES_RUNES or q[j] == ".")
        ):
            j += 1
        if j > i:
            try:
                value = durations.parse_bytes(number_text + q[i:j])
            except ValueError:
                pass
            else:
                return self._emit("BYTES", start, j, value)
        return None

    def _lex_minus(self, i: int) -> int:
        q, n = self.q, self.n
        if i + 1 < n and q[i + 1] == "-":
            j = i + 1
            while j < n and (q[j].isalpha() or q[j] == "-"):
                j += 1
            if q[i:j] in _PARSER_FLAGS:
                return self._emit("FLAG", i, j, q[i:j])
        j = i + 1
        while (
            j < n
            and not q[j].isspace()
            and (_is_number_rune(q[j]) or q[j] in _DURATION_RUNES or q[j] == ".")
        ):
            j += 1
        if j > i + 1:
            try:
                value = durations.parse_duration_ns(q[i:j])
            except ValueError:
                pass
            else:
                return self._emit("DURATION", i, j, value)
        return self._emit("-", i, i + 1)

    def _lex_identifier(self, start: int) -> int:
        q, n = self.q, self.n
        i = _ASCII_IDENT.match(q, start).end()
        while i < n and _is_ident_part(q[i]):  # only for non-ASCII letters and digits
            i += 1
        word = q[start:i].lower()
        if word in FUNCTIONS:
            if self._followed_by_call(i):
                return self._emit("FUNC", start, i, word)
            return self._emit("IDENT", start, i, q[start:i])
        if word in KEYWORDS:
            return self._emit("KW", start, i, word)
        return self._emit("IDENT", start, i, q[start:i])

    def _followed_by_call(self, i: int) -> bool:
        """Loki's isFunction: next comes ``(``, or ``by``/``without`` then ``(``."""
        q, n = self.q, self.n
        while i < n and q[i].isspace():
            i += 1
        if q.startswith("(", i):
            return True
        for word in ("by", "without"):
            if q[i : i + len(word)].lower() == word:
                j = i + len(word)
                while j < n and q[j].isspace():
                    j += 1
                return q.startswith("(", j)
        return False


def _literal_name(lower: str) -> str:
    return {"0x": "hexadecimal literal", "0o": "octal literal", "0b": "binary literal"}.get(
        lower[:2], "decimal literal"
    )


def _invalid_separator(text: str) -> int:
    """Index of the first misplaced ``_`` in a numeric literal, or -1 (Go's invalidSep)."""
    x1 = " "
    d = "."
    i = 0
    if len(text) >= 2 and text[0] == "0":
        x1 = text[1].lower()
        if x1 in "xob":
            d = "0"
            i = 2
    while i < len(text):
        p = d
        d = text[i]
        if d == "_":
            if p != "0":
                return i
        elif "0" <= d <= "9" or (x1 == "x" and d in "abcdefABCDEF"):
            d = "0"
        else:
            if p == "_":
                return i - 1
            d = "."
        i += 1
    return len(text) - 1 if d == "_" else -1


def _go_parse_float(text: str) -> float | None:
    """strconv.ParseFloat for a scanned literal; None when Go would return an error.

    Decimal and hexadecimal-with-exponent forms are accepted; ``0x10``,
    ``0o17`` and ``0b1`` are not (ParseFloat has no integer prefixes), and a
    value overflowing float64 is an error rather than infinity. A leading
    zero is decimal: ``0755`` is 755.
    """
    lower = text.lower()
    clean = text.replace("_", "")
    try:
        if lower.startswith("0x"):
            if "p" not in lower:
                return None
            value = float.fromhex(clean)
        elif lower.startswith(("0o", "0b")):
            return None
        else:
            value = float(clean)
    except (ValueError, OverflowError):
        return None
    if value in (float("inf"), float("-inf")):
        return None
    return value
