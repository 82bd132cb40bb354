"""Lexer of Go's ``text/template`` for LogQL templates (Go's ``text/template/parse/lex.go``).

The whole text is cut into tokens at once: text, ``{{``/``}}`` with their
trim markers (``{{- `` drops the whitespace before, `` -}}`` the whitespace
after), comments, and inside actions Go's literals, fields, variables,
identifiers and keywords. A lexical error ends the list with an ``ERROR``
token, which the parser reports when it reaches it, as Go does.
"""

from __future__ import annotations

from .template_gofmt import go_quote

__all__ = [
    "lex", "Tok", "ERROR", "EOF", "TEXT", "COMMENT", "LDELIM", "RDELIM", "SPACE", "BOOL", "CHAR",
    "CHARCONST", "COMPLEX", "ASSIGN", "DECLARE", "FIELD", "IDENT", "LPAREN", "NUMBER", "PIPE",
    "RAWSTRING", "RPAREN", "STRING", "VARIABLE", "KEYWORD", "DOT", "BLOCK", "BREAK", "CONTINUE",
    "DEFINE", "ELSE", "END", "IF", "NIL", "RANGE", "TEMPLATE", "WITH", "SPACES",
]

(ERROR, EOF, TEXT, COMMENT, LDELIM, RDELIM, SPACE, BOOL, CHAR, CHARCONST, COMPLEX, ASSIGN,
 DECLARE, FIELD, IDENT, LPAREN, NUMBER, PIPE, RAWSTRING, RPAREN, STRING, VARIABLE,
 KEYWORD, DOT, BLOCK, BREAK, CONTINUE, DEFINE, ELSE, END, IF, NIL, RANGE, TEMPLATE,
 WITH) = range(35)

_KEYWORDS = {".": DOT, "block": BLOCK, "break": BREAK, "continue": CONTINUE, "define": DEFINE,
             "else": ELSE, "end": END, "if": IF, "nil": NIL, "range": RANGE,
             "template": TEMPLATE, "with": WITH}
SPACES = " \t\r\n"
_TERMINATORS = " \t\r\n.,|:)("


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdecimal()


def _fmt_rune(c: str) -> str:
    """Go's ``%#U``."""
    return f"U+{ord(c):04X} '{c}'" if c.isprintable() else f"U+{ord(c):04X}"


class Tok:
    __slots__ = ("kind", "val", "pos", "line_pos")

    def __init__(self, kind: int, val: str, pos: int, line_pos: int = -1):
        # line_pos: where Go's lexer stood (for the line number) when it differs from pos
        self.kind, self.val, self.pos = kind, val, pos
        self.line_pos = pos if line_pos < 0 else line_pos

    def __str__(self) -> str:  # Go's item.String(), used in "unexpected X" messages
        if self.kind == EOF:
            return "EOF"
        if self.kind == ERROR:
            return self.val
        if self.kind > KEYWORD:
            return f"<{self.val}>"
        if len(self.val.encode("utf-8", "surrogatepass")) > 10:  # Go counts bytes here...
            return go_quote(self.val[:10]) + "..."  # ...and runes here
        return go_quote(self.val)


class _Lexer:
    def __init__(self, text: str):
        self.text = text
        self.n = len(text)
        self.toks: list[Tok] = []

    def emit(self, kind: int, start: int, end: int) -> None:
        self.toks.append(Tok(kind, self.text[start:end], start))

    def error(self, msg: str, pos: int, line_pos: int = -1) -> list[Tok]:
        self.toks.append(Tok(ERROR, msg, pos, line_pos))
        return self.toks

    def at_right_delim(self, pos: int) -> int:
        """0 if no ``}}`` at ``pos``, 1 for ``}}``, 2 for `` -}}``."""
        t = self.text
        if t.startswith("}}", pos):
            return 1
        if pos < self.n and t[pos] in SPACES and t.startswith("-}}", pos + 1):
            return 2
        return 0

    def at_terminator(self, pos: int) -> bool:
        return pos >= self.n or self.text[pos] in _TERMINATORS or self.text.startswith("}}", pos)

    def skip_spaces(self, pos: int) -> int:
        while pos < self.n and self.text[pos] in SPACES:
            pos += 1
        return pos

    def run(self) -> list[Tok]:
        t, n = self.text, self.n
        pos = 0
        while True:
            x = t.find("{{", pos)
            if x < 0:
                if pos < n:
                    self.emit(TEXT, pos, n)
                self.toks.append(Tok(EOF, "", n))
                return self.toks
            after = x + 2
            trim = after + 1 < n and t[after] == "-" and t[after + 1] in SPACES
            end = len(t[pos:x].rstrip(SPACES)) + pos if trim else x
            if end > pos:
                self.emit(TEXT, pos, end)
            if trim:
                after += 2
            if t.startswith("/*", after):
                close = t.find("*/", after + 2)
                if close < 0:
                    return self.error("unclosed comment", x)
                q = close + 2
                delim = self.at_right_delim(q)
                if not delim:
                    return self.error("comment ends before closing delimiter", x)
                self.emit(COMMENT, after, q)
                pos = q + 2 if delim == 1 else self.skip_spaces(q + 4)
                continue
            self.toks.append(Tok(LDELIM, "{{", x))
            pos = self.inside_action(after, x)
            if pos < 0:
                return self.toks

    def inside_action(self, pos: int, start: int) -> int:
        """Lex one action from ``pos``; the position after its ``}}``, or -1 after an error."""
        t, n = self.text, self.n
        paren = 0
        while True:
            delim = self.at_right_delim(pos)
            if delim:
                if paren:
                    self.error("unclosed left paren", pos)
                    return -1
                if delim == 2:
                    pos += 2
                self.toks.append(Tok(RDELIM, "}}", pos))
                return pos + 2 if delim == 1 else self.skip_spaces(pos + 2)
            if pos >= n:
                self.error("unclosed action", start, n)
                return -1
            c = t[pos]
            if c in SPACES:
                j = self.skip_spaces(pos)
                if t.startswith("-}}", j):
                    j -= 1  # the last space belongs to " -}}"
                if j > pos:
                    self.emit(SPACE, pos, j)
                pos = j
            elif c == "=":
                self.emit(ASSIGN, pos, pos + 1)
                pos += 1
            elif c == ":":
                if t[pos + 1:pos + 2] != "=":
                    self.error("expected :=", pos)
                    return -1
                self.emit(DECLARE, pos, pos + 2)
                pos += 2
            elif c == "|":
                self.emit(PIPE, pos, pos + 1)
                pos += 1
            elif c in "\"'":
                j = pos + 1
                while True:
                    ch = t[j] if j < n else "\n"
                    if ch == "\\":
                        if j + 1 < n and t[j + 1] != "\n":
                            j += 2
                            continue
                        ch = "\n"
                    if ch == "\n":
                        what = "quoted string" if c == '"' else "character constant"
                        self.error(f"unterminated {what}", pos)
                        return -1
                    j += 1
                    if ch == c:
                        break
                self.emit(STRING if c == '"' else CHARCONST, pos, j)
                pos = j
            elif c == "`":
                j = t.find("`", pos + 1)
                if j < 0:
                    self.error("unterminated raw quoted string", pos)
                    return -1
                self.emit(RAWSTRING, pos, j + 1)
                pos = j + 1
            elif c == "$" or (c == "." and pos + 1 < n and not "0" <= t[pos + 1] <= "9"):
                pos = self.field_or_variable(pos, VARIABLE if c == "$" else FIELD)
                if pos < 0:
                    return -1
            elif c in "+-." or "0" <= c <= "9":
                pos = self.number(pos)
                if pos < 0:
                    return -1
            elif _is_alnum(c):
                j = pos
                while j < n and _is_alnum(t[j]):
                    j += 1
                if not self.at_terminator(j):
                    self.error(f"bad character {_fmt_rune(t[j])}", j)
                    return -1
                word = t[pos:j]
                kind = _KEYWORDS.get(word)
                if kind is None:
                    kind = BOOL if word in ("true", "false") else IDENT
                self.emit(kind, pos, j)
                pos = j
            elif c == "(":
                self.emit(LPAREN, pos, pos + 1)
                paren += 1
                pos += 1
            elif c == ")":
                self.emit(RPAREN, pos, pos + 1)
                paren -= 1
                if paren < 0:
                    self.error(f"unexpected right paren {_fmt_rune(c)}", pos)
                    return -1
                pos += 1
            elif c < "\x80" and c.isprintable():
                self.emit(CHAR, pos, pos + 1)
                pos += 1
            else:
                self.error(f"unrecognized character in action: {_fmt_rune(c)}", pos)
                return -1

    def field_or_variable(self, pos: int, kind: int) -> int:
        t = self.text
        j = pos + 1
        if self.at_terminator(j):
            self.emit(VARIABLE if kind == VARIABLE else DOT, pos, j)
            return j
        while j < self.n and _is_alnum(t[j]):
            j += 1
        if not self.at_terminator(j):
            self.error(f"bad character {_fmt_rune(t[j])}", j)
            return -1
        self.emit(kind, pos, j)
        return j

    def scan_number(self, pos: int) -> tuple[bool, int]:
        t, n = self.text, self.n

        def run(pos: int, chars: str) -> int:
            while pos < n and t[pos] in chars:
                pos += 1
            return pos

        if pos < n and t[pos] in "+-":
            pos += 1
        digits = "0123456789_"
        if pos < n and t[pos] == "0":
            pos += 1
            if pos < n and t[pos] in "xX":
                pos, digits = pos + 1, "0123456789abcdefABCDEF_"
            elif pos < n and t[pos] in "oO":
                pos, digits = pos + 1, "01234567_"
            elif pos < n and t[pos] in "bB":
                pos, digits = pos + 1, "01_"
        pos = run(pos, digits)
        if pos < n and t[pos] == ".":
            pos = run(pos + 1, digits)
        exponent = "eE" if len(digits) == 11 else "pP" if len(digits) == 23 else ""
        if pos < n and t[pos] in exponent:
            pos += 1
            if pos < n and t[pos] in "+-":
                pos += 1
            pos = run(pos, "0123456789_")
        if pos < n and t[pos] == "i":
            pos += 1
        if pos < n and _is_alnum(t[pos]):
            return False, pos + 1
        return True, pos

    def number(self, start: int) -> int:
        ok, pos = self.scan_number(start)
        if ok and pos < self.n and self.text[pos] in "+-":
            ok, pos = self.scan_number(pos)  # complex: 1+2i
            if ok and self.text[pos - 1] != "i":
                ok = False
            kind = COMPLEX
        else:
            kind = NUMBER
        if not ok:
            self.error(f"bad number syntax: {go_quote(self.text[start:pos])}", start)
            return -1
        self.emit(kind, start, pos)
        return pos




def lex(text: str) -> list[Tok]:
    """The tokens of ``text``, ending with ``EOF`` or, after a lexical error, ``ERROR``."""
    return _Lexer(text).run()
