"""Lexer and parser of Go's ``text/template`` for LogQL templates.

A port of Go's ``text/template/parse``: the same token rules (trim markers
``{{-``/``-}}``, comments, Go number, string and character literals), the
same grammar and the same error messages, so a template Loki rejects is
rejected here with Loki's words, as a :class:`~chunkstore.errors.QueryError`
whose ``pos`` is the character offset of the problem. Names of functions
are checked against :data:`.template_funcs.FUNCTIONS`, as Go checks them at
parse time. Variables are resolved to slots of the frame an execution uses
(:mod:`chunkstore.logql.template` compiles the tree this module builds).
"""

from __future__ import annotations

from chunkstore.errors import QueryError

from .template_funcs import FUNCTIONS
from .template_gofmt import go_quote
from .template_lex import (
    ASSIGN,
    BLOCK,
    BOOL,
    BREAK,
    CHAR,
    CHARCONST,
    COMMENT,
    COMPLEX,
    CONTINUE,
    DECLARE,
    DEFINE,
    DOT,
    ELSE,
    END,
    EOF,
    ERROR,
    FIELD,
    IDENT,
    IF,
    LDELIM,
    LPAREN,
    NIL,
    NUMBER,
    PIPE,
    RANGE,
    RAWSTRING,
    RDELIM,
    RPAREN,
    SPACE,
    SPACES,
    STRING,
    TEMPLATE,
    TEXT,
    VARIABLE,
    WITH,
    Tok,
    lex,
)
from .template_values import bytes_to_str, parse_go_float, parse_go_int, parse_go_uint, utf8

__all__ = [
    "Parser", "Tree", "UNDEFINED_SLOT", "Node", "ListNode", "TextNode", "CommentNode", "PipeNode",
    "ActionNode", "CommandNode", "FieldNode", "VariableNode", "ChainNode", "IdentifierNode",
    "DotNode", "NilNode", "BoolNode", "StringNode", "NumberNode", "BranchNode", "KeywordNode",
    "TemplateNode",
]


# ----------------------------------------------------------------------------
# Parse tree (Go's text/template/parse/node.go); str() is Go's String(), used in errors


class Node:
    __slots__ = ("pos",)


class ListNode(Node):
    __slots__ = ("nodes",)

    def __init__(self, pos, nodes=None):
        self.pos, self.nodes = pos, nodes if nodes is not None else []

    def __str__(self):
        return "".join(map(str, self.nodes))


class TextNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos, text):
        self.pos, self.text = pos, text

    def __str__(self):
        return self.text


class CommentNode(TextNode):
    __slots__ = ()

    def __str__(self):
        return "{{" + self.text + "}}"


class PipeNode(Node):
    __slots__ = ("decl", "is_assign", "cmds")

    def __init__(self, pos):
        self.pos, self.decl, self.is_assign, self.cmds = pos, [], False, []

    def __str__(self):
        s = ""
        if self.decl:
            s = ", ".join(map(str, self.decl)) + (" = " if self.is_assign else " := ")
        return s + " | ".join(map(str, self.cmds))


class ActionNode(Node):
    __slots__ = ("pipe",)

    def __init__(self, pos, pipe):
        self.pos, self.pipe = pos, pipe

    def __str__(self):
        return "{{" + str(self.pipe) + "}}"


class CommandNode(Node):
    __slots__ = ("args",)

    def __init__(self, pos):
        self.pos, self.args = pos, []

    def __str__(self):
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


class FieldNode(Node):
    __slots__ = ("idents",)

    def __init__(self, pos, idents):
        self.pos, self.idents = pos, idents

    def __str__(self):
        return "".join("." + i for i in self.idents)


class VariableNode(Node):
    __slots__ = ("idents", "slot")

    def __init__(self, pos, idents, slot):
        self.pos, self.idents, self.slot = pos, idents, slot

    def __str__(self):
        return ".".join(self.idents)


class ChainNode(Node):
    __slots__ = ("node", "fields")

    def __init__(self, pos, node, fields):
        self.pos, self.node, self.fields = pos, node, fields

    def __str__(self):
        s = str(self.node)
        if isinstance(self.node, PipeNode):
            s = "(" + s + ")"
        return s + "".join("." + f for f in self.fields)


class IdentifierNode(Node):
    __slots__ = ("name",)

    def __init__(self, pos, name):
        self.pos, self.name = pos, name

    def __str__(self):
        return self.name


class DotNode(Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "."


class NilNode(DotNode):
    __slots__ = ()

    def __str__(self):
        return "nil"


class BoolNode(Node):
    __slots__ = ("value",)

    def __init__(self, pos, value):
        self.pos, self.value = pos, value

    def __str__(self):
        return "true" if self.value else "false"


class StringNode(Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos, quoted, text):
        self.pos, self.quoted, self.text = pos, quoted, text

    def __str__(self):
        return self.quoted


class NumberNode(Node):
    __slots__ = ("text", "is_int", "is_uint", "is_float", "is_complex", "int64", "uint64",
                 "float64", "complex128")

    def __init__(self, pos, text):
        self.pos, self.text = pos, text
        self.is_int = self.is_uint = self.is_float = self.is_complex = False
        self.int64 = self.uint64 = 0
        self.float64 = 0.0
        self.complex128 = 0j

    def __str__(self):
        return self.text


class BranchNode(Node):
    """``if``, ``with`` or ``range``."""

    __slots__ = ("kind", "pipe", "list", "else_list")

    def __init__(self, kind, pos, pipe, lst, else_list):
        self.kind, self.pos, self.pipe, self.list, self.else_list = kind, pos, pipe, lst, else_list

    def __str__(self):
        s = "{{" + self.kind + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            s += "{{else}}" + str(self.else_list)
        return s + "{{end}}"


class KeywordNode(Node):
    """``{{break}}``, ``{{continue}}``, and the parser's ``{{end}}`` and ``{{else}}``."""

    __slots__ = ("word",)

    def __init__(self, word, pos):
        self.word, self.pos = word, pos

    def __str__(self):
        return "{{" + self.word + "}}"


class TemplateNode(Node):
    __slots__ = ("name", "pipe")

    def __init__(self, pos, name, pipe):
        self.pos, self.name, self.pipe = pos, name, pipe

    def __str__(self):
        if self.pipe is None:
            return "{{template " + go_quote(self.name) + "}}"
        return "{{template " + go_quote(self.name) + " " + str(self.pipe) + "}}"


def _is_end(n) -> bool:
    return type(n) is KeywordNode and n.word == "end"


def _is_else(n) -> bool:
    return type(n) is KeywordNode and n.word == "else"


def _is_empty_tree(n) -> bool:
    if type(n) is ListNode:
        return all(_is_empty_tree(x) for x in n.nodes)
    if type(n) is TextNode:
        return not n.text.strip(SPACES)
    return type(n) is CommentNode


# --- literals (Go's strconv.Unquote, strconv.UnquoteChar and parse.newNumber)


class _SyntaxErr(Exception):
    pass


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\"}


def _unquote_char(s: str, i: int, quote: str) -> tuple[int | bytes, int]:
    """One (possibly escaped) character of a Go literal: (rune or raw byte, next index)."""
    c = s[i]
    if c == quote and quote in "'\"":
        raise _SyntaxErr
    if c != "\\":
        return ord(c), i + 1
    if i + 1 >= len(s):
        raise _SyntaxErr
    c = s[i + 1]
    if c in _SIMPLE_ESCAPES:
        return ord(_SIMPLE_ESCAPES[c]), i + 2
    if c in "'\"":
        if c != quote:
            raise _SyntaxErr
        return ord(c), i + 2
    if c in "xuU":
        width = {"x": 2, "u": 4, "U": 8}[c]
        h = s[i + 2:i + 2 + width]
        if len(h) < width or not all(ch in "0123456789abcdefABCDEF" for ch in h):
            raise _SyntaxErr
        v = int(h, 16)
        if c == "x":
            return (bytes([v]) if quote == '"' else v), i + 2 + width
        if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
            raise _SyntaxErr
        return v, i + 2 + width
    if "0" <= c <= "7":
        o = s[i + 1:i + 4]
        if len(o) < 3 or not all("0" <= ch <= "7" for ch in o) or int(o, 8) > 255:
            raise _SyntaxErr
        v = int(o, 8)
        return (bytes([v]) if quote == '"' else v), i + 4
    raise _SyntaxErr


def _unquote(q: str) -> str:
    """Go's ``strconv.Unquote`` of a string token."""
    if q[0] == "`":
        return q[1:-1].replace("\r", "")
    body = q[1:-1]
    if "\\" not in body:
        if '"' in body:
            raise _SyntaxErr
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        v, i = _unquote_char(body, i, '"')
        out += v if type(v) is bytes else utf8(chr(v))
    return bytes_to_str(bytes(out))


def _new_number(tok: Tok) -> NumberNode:
    text = tok.val
    node = NumberNode(tok.pos, text)
    if tok.kind == CHARCONST:
        try:
            r, i = _unquote_char(text, 1, "'")
        except (_SyntaxErr, IndexError):
            raise _SyntaxErr from None
        if text[i:] != "'":
            raise _SyntaxErr(f"malformed character constant: {text}")
        node.is_int = node.is_uint = node.is_float = True
        node.int64 = node.uint64 = r
        node.float64 = float(r)
        return node
    if tok.kind == COMPLEX or text.endswith("i"):
        try:
            if tok.kind == COMPLEX:
                c = complex(text.replace("_", "")[:-1] + "j")
            else:
                c = complex(0, parse_go_float(text[:-1]))
        except ValueError:
            raise _SyntaxErr(f"illegal number syntax: {go_quote(text)}") from None
        node.is_complex, node.complex128 = True, c
        if c.imag == 0:
            node.is_float, node.float64 = True, c.real
            if c.real.is_integer():
                node.is_int = node.is_uint = -(1 << 63) <= c.real < (1 << 63)
                node.int64 = node.uint64 = int(c.real)
        return node
    try:
        node.uint64, node.is_uint = parse_go_uint(text), True
    except ValueError:
        pass
    try:
        node.int64, node.is_int = parse_go_int(text), True
        if node.int64 == 0:
            node.is_uint = True
    except ValueError:
        pass
    if node.is_int or node.is_uint:
        node.is_float, node.float64 = True, float(node.int64 if node.is_int else node.uint64)
    else:
        try:
            f = parse_go_float(text)
        except ValueError:
            f = None
        if f is not None:
            if not any(c in text for c in ".eEpP"):
                raise _SyntaxErr(f"integer overflow: {go_quote(text)}")
            node.is_float, node.float64 = True, f
            if f == f and abs(f) != float("inf") and f.is_integer():
                i = int(f)
                if -(1 << 63) <= i < (1 << 63):
                    node.is_int, node.int64 = True, i
                if 0 <= i < (1 << 64):
                    node.is_uint, node.uint64 = True, i
    if not (node.is_int or node.is_uint or node.is_float):
        raise _SyntaxErr(f"illegal number syntax: {go_quote(text)}")
    return node


# ----------------------------------------------------------------------------
# Parser (Go's text/template/parse/parse.go). Variables are resolved here to slots
# of the per-execution frame: slot 0 holds the execution state, slot 1 is "$".

_OPERAND_START = frozenset((BOOL, CHARCONST, COMPLEX, DOT, FIELD, IDENT, NUMBER, NIL, RAWSTRING,
                            STRING, VARIABLE, LPAREN))
UNDEFINED_SLOT = -1


class Tree:
    """A parsed template body and the number of frame slots it needs."""

    __slots__ = ("name", "root", "nslots", "pos", "run")

    def __init__(self, name, root, nslots, pos):
        self.name, self.root, self.nslots, self.pos, self.run = name, root, nslots, pos, None


class Parser:
    def __init__(self, text: str, name: str):
        self.text = text
        self.name = name
        self.toks = lex(text)
        self.i = 0
        self.seen = 0  # furthest token read: Go reports the line of that one
        self.vars: list[tuple[str, int]] = [("$", 1)]
        self.pending: list[str] = []  # names declared by pipelines still being parsed
        self.nslots = 2
        self.range_depth = 0
        self.action_pos = -1
        self.trees: dict[str, Tree] = {}

    # --- errors

    def error(self, msg: str, pos: int, line_pos: int = -1):
        if line_pos < 0:
            line_pos = self.toks[self.seen].line_pos
        line = self.text.count("\n", 0, line_pos) + 1
        raise QueryError(f"template: {self.name}:{line}: {msg}", pos)

    def unexpected(self, tok: Tok, context: str):
        if tok.kind == ERROR:
            self.lex_error(tok)
        self.error(f"unexpected {tok} in {context}", tok.pos)

    def lex_error(self, tok: Tok):
        msg = tok.val
        if self.action_pos >= 0:
            action_line = self.text.count("\n", 0, self.action_pos) + 1
            if action_line != self.text.count("\n", 0, tok.line_pos) + 1:
                extra = f" in action started at {self.name}:{action_line}"
                msg += extra[len(" in action"):] if msg.endswith(" action") else extra
        self.error(msg, tok.pos, tok.line_pos)

    # --- token stream

    def next(self) -> Tok:
        tok = self.toks[self.i]
        if self.i > self.seen:
            self.seen = self.i
        if tok.kind == ERROR:
            self.lex_error(tok)
        self.i += 1
        return tok

    def backup(self) -> None:
        self.i -= 1

    def peek(self) -> Tok:
        if self.i > self.seen:
            self.seen = self.i
        return self.toks[self.i]

    def next_non_space(self) -> Tok:
        while self.toks[self.i].kind == SPACE:
            self.i += 1
        return self.next()

    def peek_non_space(self) -> Tok:
        while self.toks[self.i].kind == SPACE:
            self.i += 1
        return self.peek()

    def expect(self, kind: int, context: str) -> Tok:
        tok = self.next_non_space()
        if tok.kind != kind:
            self.unexpected(tok, context)
        return tok

    # --- structure

    def parse(self) -> dict[str, Tree]:
        root = ListNode(self.peek().pos)
        while self.peek().kind != EOF:
            if self.peek().kind == LDELIM:
                mark = self.i
                self.action_pos = self.next().pos
                if self.next_non_space().kind == DEFINE:
                    self.parse_definition()
                    self.action_pos = -1
                    continue
                self.action_pos = -1
                self.i = mark
            n = self.text_or_action()
            if _is_end(n) or _is_else(n):
                self.error(f"unexpected {n}", n.pos)
            root.nodes.append(n)
        self.add_tree(self.name, root, self.nslots, 0)
        return self.trees

    def add_tree(self, name: str, root: ListNode, nslots: int, pos: int) -> None:
        old = self.trees.get(name)
        if old is None or _is_empty_tree(old.root):
            self.trees[name] = Tree(name, root, nslots, pos)
        elif not _is_empty_tree(root):
            self.error(f"template: multiple definition of template {go_quote(name)}", pos)

    def new_scope(self):
        saved = (self.vars, self.pending, self.nslots, self.range_depth)
        self.vars, self.pending, self.nslots, self.range_depth = [("$", 1)], [], 2, 0
        return saved

    def parse_definition(self) -> None:
        context = "define clause"
        tok = self.next_non_space()
        if tok.kind not in (STRING, RAWSTRING):
            self.unexpected(tok, context)
        name = self.unquote(tok)
        self.expect(RDELIM, context)
        saved = self.new_scope()
        body, end = self.item_list()
        if not _is_end(end):
            self.error(f"unexpected {end} in {context}", end.pos)
        self.add_tree(name, body, self.nslots, tok.pos)
        self.vars, self.pending, self.nslots, self.range_depth = saved

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().kind != EOF:
            n = self.text_or_action()
            if _is_end(n) or _is_else(n):
                return lst, n
            lst.nodes.append(n)
        self.error("unexpected EOF", len(self.text))

    def text_or_action(self) -> Node:
        tok = self.next_non_space()
        if tok.kind == TEXT:
            return TextNode(tok.pos, tok.val)
        if tok.kind == LDELIM:
            outer, self.action_pos = self.action_pos, tok.pos
            try:
                return self.action()
            finally:
                self.action_pos = outer
        if tok.kind == COMMENT:
            return CommentNode(tok.pos, tok.val)
        self.unexpected(tok, "input")

    def action(self) -> Node:
        tok = self.next_non_space()
        k = tok.kind
        if k == BLOCK:
            return self.block_control()
        if k in (BREAK, CONTINUE):
            word = tok.val
            nxt = self.next_non_space()
            if nxt.kind != RDELIM:
                self.unexpected(nxt, "{{" + word + "}}")
            if self.range_depth == 0:
                self.error("{{" + word + "}} outside {{range}}", tok.pos)
            return KeywordNode(word, tok.pos)
        if k == ELSE:
            if self.peek_non_space().kind != IF:  # "{{else if": leave the "if" for control()
                self.expect(RDELIM, "else")
            return KeywordNode("else", tok.pos)
        if k == END:
            self.expect(RDELIM, "end")
            return KeywordNode("end", tok.pos)
        if k in (IF, RANGE, WITH):
            return self.control(tok.val)
        if k == TEMPLATE:
            context = "template clause"
            name_tok = self.next_non_space()
            name = self.template_name(name_tok, context)
            pipe = None
            if self.next_non_space().kind != RDELIM:
                self.backup()
                pipe = self.pipeline(context, RDELIM)
            return TemplateNode(name_tok.pos, name, pipe)
        self.backup()
        return ActionNode(self.peek().pos, self.pipeline("command", RDELIM))

    def template_name(self, tok: Tok, context: str) -> str:
        if tok.kind not in (STRING, RAWSTRING):
            self.unexpected(tok, context)
        return self.unquote(tok)

    def block_control(self) -> Node:
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context, RDELIM)
        saved = self.new_scope()
        body, end = self.item_list()
        if not _is_end(end):
            self.error(f"unexpected {end} in {context}", end.pos)
        self.add_tree(name, body, self.nslots, tok.pos)
        self.vars, self.pending, self.nslots, self.range_depth = saved
        return TemplateNode(tok.pos, name, pipe)

    def control(self, kind: str) -> BranchNode:
        depth = len(self.vars)
        pipe = self.pipeline(kind, RDELIM)
        if kind == "range":
            self.range_depth += 1
        lst, nxt = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_list = None
        if _is_else(nxt):
            if kind == "if" and self.peek().kind == IF:
                self.next()
                else_list = ListNode(nxt.pos, [self.control("if")])
            else:
                else_list, nxt = self.item_list()
                if not _is_end(nxt):
                    self.error(f"expected end; found {nxt}", nxt.pos)
        del self.vars[depth:]
        return BranchNode(kind, pipe.pos, pipe, lst, else_list)

    # --- pipelines

    def declare(self, tok: Tok, is_assign: bool) -> VariableNode:
        if is_assign:
            slot = next((s for n, s in reversed(self.vars) if n == tok.val), UNDEFINED_SLOT)
        else:
            slot = self.nslots
            self.nslots += 1
        return VariableNode(tok.pos, [tok.val], slot)

    def pipeline(self, context: str, end: int) -> PipeNode:
        pipe = PipeNode(self.peek_non_space().pos)
        while self.peek_non_space().kind == VARIABLE:
            mark = self.i
            v = self.next()
            after = self.peek()
            nxt = self.peek_non_space()
            if nxt.kind in (ASSIGN, DECLARE):
                pipe.is_assign = nxt.kind == ASSIGN
                self.next_non_space()
                pipe.decl.append(self.declare(v, pipe.is_assign))
            elif nxt.kind == CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(self.declare(v, False))
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in (VARIABLE, RDELIM, RPAREN):
                        continue
                    self.error("range can only initialize variables", self.peek_non_space().pos)
                self.error(f"too many declarations in {context}", v.pos)
            else:
                self.i = mark if after.kind != SPACE else mark
            break
        names = [d.idents[0] for d in pipe.decl]
        self.pending.extend(names)
        while True:
            tok = self.next_non_space()
            if tok.kind == end:
                if not pipe.cmds:
                    self.error(f"missing value for {context}", tok.pos)
                for i, c in enumerate(pipe.cmds[1:]):
                    if type(c.args[0]) in (BoolNode, DotNode, NilNode, NumberNode, StringNode):
                        self.error(f"non executable command in pipeline stage {i + 2}", c.pos)
                break
            if tok.kind in _OPERAND_START:
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)
        del self.pending[len(self.pending) - len(names):]
        self.vars.extend((d.idents[0], d.slot) for d in pipe.decl)
        return pipe

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.kind == SPACE:
                continue
            if tok.kind in (RDELIM, RPAREN):
                self.backup()
            elif tok.kind != PIPE:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.error("empty command", cmd.pos)
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None or self.peek().kind != FIELD:
            return node
        pos = self.peek().pos
        fields = []
        while self.peek().kind == FIELD:
            fields.append(self.next().val[1:])
        if type(node) is FieldNode:
            return FieldNode(pos, node.idents + fields)
        if type(node) is VariableNode:
            return VariableNode(pos, node.idents + fields, node.slot)
        if type(node) in (BoolNode, StringNode, NumberNode, NilNode, DotNode):
            self.error(f"unexpected . after term {go_quote(str(node))}", pos)
        return ChainNode(pos, node, fields)

    def term(self) -> Node | None:
        tok = self.next_non_space()
        k = tok.kind
        if k == IDENT:
            if tok.val not in FUNCTIONS:
                self.error(f"function {go_quote(tok.val)} not defined", tok.pos)
            return IdentifierNode(tok.pos, tok.val)
        if k == DOT:
            return DotNode(tok.pos)
        if k == NIL:
            return NilNode(tok.pos)
        if k == VARIABLE:
            for name, slot in reversed(self.vars):
                if name == tok.val:
                    return VariableNode(tok.pos, [tok.val], slot)
            if tok.val in self.pending:  # Go accepts it here and fails when it runs
                return VariableNode(tok.pos, [tok.val], UNDEFINED_SLOT)
            self.error(f"undefined variable {go_quote(tok.val)}", tok.pos)
        if k == FIELD:
            return FieldNode(tok.pos, [tok.val[1:]])
        if k == BOOL:
            return BoolNode(tok.pos, tok.val == "true")
        if k in (CHARCONST, COMPLEX, NUMBER):
            try:
                return _new_number(tok)
            except _SyntaxErr as exc:
                self.error(str(exc) or "invalid syntax", tok.pos)
        if k == LPAREN:
            return self.pipeline("parenthesized pipeline", RPAREN)
        if k in (STRING, RAWSTRING):
            return StringNode(tok.pos, tok.val, self.unquote(tok))
        self.backup()
        return None

    def unquote(self, tok: Tok) -> str:
        try:
            return _unquote(tok.val)
        except (_SyntaxErr, IndexError):
            self.error("invalid syntax", tok.pos)
