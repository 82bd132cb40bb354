"""Go's ``text/template`` for LogQL ``line_format`` and ``label_format``.

Loki renders ``| line_format "{{.status}} {{.msg}}"`` and ``| label_format
x="{{.y}}"`` with Go's ``text/template`` (option ``missingkey=zero``) and the
functions of :mod:`.template_funcs`. :class:`Template` reproduces that: it
lexes and parses like Go's ``text/template/parse`` (same grammar, same error
messages), then compiles the tree once into nested closures so that
:meth:`Template.execute`, called once per log line, does no parsing and no
dispatch on node types. Execution keeps its state (the variables) in a list
made per call, so one compiled template may run on many threads at once.

Supported: text, actions with trim markers (``{{-`` and ``-}}``), comments,
pipelines, parenthesised pipelines, fields (``.label``, ``.a.b``), ``.``,
``$``, variables (``$x := ...``, ``$x = ...``), ``if``/``else if``/``else``,
``with``, ``range`` (with ``else``, ``break``, ``continue``; over lists, maps
and, as in Go 1.22+, integers), ``define``/``template``/``block``, string
(interpreted and raw), character, number (Go syntax, including hex, octal,
binary, underscores, complex), bool and nil literals. Labels are a Go
``map[string]string``: a missing label is ``""``.

A template that fails while running raises :class:`TemplateError` carrying
Go's message (``template: line:1:9: executing "line" at <now>: wrong number
of args for now: want 0 got 1``); Loki then keeps the line and sets
``__error__=TemplateFormatErr``. Syntax errors, including calls to functions
Loki does not define, raise :class:`~chunkstore.errors.QueryError` with the
character offset of the problem.
"""

from __future__ import annotations

from collections.abc import Mapping

from chunkstore.errors import ChunkstoreError

from .template_builtins import is_true
from .template_funcs import FUNCTIONS, TIME_METHODS
from .template_gofmt import go_quote, print_value
from .template_parse import (
    UNDEFINED_SLOT,
    ActionNode,
    BoolNode,
    BranchNode,
    ChainNode,
    CommandNode,
    CommentNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    KeywordNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    Parser,
    PipeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
)
from .template_time import GoTime
from .template_values import NIL_IFACE, FuncError, JsonMap, go_type_name, is_go_int, utf8

__all__ = ["Template", "TemplateError"]

_MAX_TEMPLATE_DEPTH = 100000  # Go's maxExecDepth


class TemplateError(ChunkstoreError, ValueError):
    """A template failed while executing; the message is the one Go's ``text/template`` gives."""


# ----------------------------------------------------------------------------
# Compiler: every node becomes a closure. Emitters are run(fr, dot, out) and append
# text to ``out``; evaluators are ev(fr, dot) -> value; commands are
# cmd(fr, dot, final) -> value, ``final`` being the previous pipeline stage's value.


class _ExecError(Exception):
    """A runtime failure at ``node``; becomes a TemplateError with Go's location prefix."""

    def __init__(self, msg: str, node: Node):
        super().__init__(msg)
        self.msg, self.node, self.tmpl_name = msg, node, None


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    """What one execution carries besides variables: the entry and the named templates."""

    __slots__ = ("line", "ts_ns", "trees", "depth")

    def __init__(self, line, ts_ns, trees):
        self.line, self.ts_ns, self.trees, self.depth = line, ts_ns, trees, 0


_MISSING = object()  # no previous pipeline stage
_LITERALS = (BoolNode, DotNode, NilNode, NumberNode, StringNode)
_KIND_TYPES = {"string": str, "int": int, "float64": float, "bool": bool, "time.Time": GoTime}


def _last_at(node: Node) -> Node:
    """The node Go's executor last visited after evaluating ``node``: its errors' context."""
    t = type(node)
    if t is ChainNode:
        return _last_at(node.node)
    if t is not PipeNode or not node.cmds:
        return node
    args = node.cmds[-1].args
    first = args[0]
    if type(first) is IdentifierNode and len(args) > 1:
        return _last_at(args[-1])
    return _last_at(first) if type(first) in (ChainNode, PipeNode) else first


def _raiser(msg: str, node: Node):
    def fail(*_args):
        raise _ExecError(msg, node)

    return fail


def _const_ev(v):
    return lambda fr, dot: v


def _validate(v, kind: str, node: Node):
    """Go's ``validateType``: a value passed where a parameter of ``kind`` is expected."""
    if kind == "any" or kind == "value":
        return None if v is NIL_IFACE else v
    if type(v) is _KIND_TYPES[kind]:
        return v
    if v is None:
        raise _ExecError(f"invalid value; expected {kind}", node)
    raise _ExecError(f"wrong type for value; expected {kind}; got {go_type_name(v)}", node)


def _ideal_constant(node: NumberNode):
    """Go's ``idealConstant``: the value of a number literal with no type context."""
    text = node.text
    if node.is_complex:
        return node.complex128
    hex_int = (len(text) > 2 and text[0] == "0" and text[1] in "xX"
               and not any(c in text for c in "pP"))
    if node.is_float and not hex_int and text[0] != "'" and any(c in text for c in ".eEpP"):
        return node.float64
    if node.is_int:
        return node.int64
    raise _ExecError(f"{text} overflows int", node)


def _literal_value(node: Node, kind: str):
    """A literal argument for a parameter of ``kind`` (Go's evalArg on constants)."""
    t = type(node)
    if t is NilNode:
        if kind == "any" or kind == "value":
            return None
        raise _ExecError(f"cannot assign nil to {kind}", node)
    if kind in ("any", "value"):
        if t is BoolNode:
            return node.value
        if t is StringNode:
            return node.text
        return _ideal_constant(node)
    if kind == "bool" and t is BoolNode:
        return node.value
    if kind == "string" and t is StringNode:
        return node.text
    if kind == "int" and t is NumberNode and node.is_int:
        return node.int64
    if kind == "float64" and t is NumberNode and node.is_float:
        return node.float64
    if kind == "time.Time":
        raise _ExecError(f"can't handle {node} for arg of type time.Time", node)
    expected = {"int": "integer", "float64": "float"}.get(kind, kind)
    raise _ExecError(f"expected {expected}; found {node}", node)


def _compile_arg(node: Node, kind: str):
    """Evaluator of one function argument, converted to the parameter's ``kind``."""
    t = type(node)
    if t is DotNode:
        return lambda fr, dot: _validate(dot, kind, node)
    if t in _LITERALS:
        try:
            return _const_ev(_literal_value(node, kind))
        except _ExecError as exc:
            return _raiser(exc.msg, node)
    where = _last_at(node)
    if t is PipeNode:
        inner = _compile_pipe(node)
        return lambda fr, dot: _validate(inner(fr, dot), kind, where)
    if t is IdentifierNode:
        cmd = _compile_call(node, node, [], False)
    else:
        cmd = _compile_command_of(node, [node], False)
    return lambda fr, dot: _validate(cmd(fr, dot, _MISSING), kind, where)


def _field(r, name: str, node: Node, has_args: bool):
    """Go's ``evalField`` for a receiver without a method call."""
    if r is None:
        return None
    if r is NIL_IFACE:
        raise _ExecError(f"nil pointer evaluating interface {{}}.{name}", node)
    t = type(r)
    if t is dict:
        if has_args:
            raise _ExecError(f"{name} is not a method but has arguments", node)
        v = r.get(name)
        return "" if v is None else v
    if t is JsonMap:
        if has_args:
            raise _ExecError(f"{name} is not a method but has arguments", node)
        v = r.get(name)
        return NIL_IFACE if v is None else v
    if t is GoTime:
        spec = TIME_METHODS.get(name)
        if spec is not None:
            if spec.params:
                raise _ExecError(f"wrong number of args for {name}: want {len(spec.params)} got 0",
                                 node)
            return spec.fn(r)
    elif isinstance(r, Mapping):
        if has_args:
            raise _ExecError(f"{name} is not a method but has arguments", node)
        v = r.get(name)
        return "" if v is None else v
    raise _ExecError(f"can't evaluate field {name} in type {go_type_name(r)}", node)


def _compile_field_chain(recv, idents: list[str], node: Node, args: list[Node], has_final: bool):
    """Command evaluating ``.a.b`` on ``dot`` (``recv`` None) or on ``recv(fr, dot)``."""
    has_args = len(args) > 1 or has_final
    last, inner = idents[-1], idents[:-1]
    arg_nodes = args[1:]
    if recv is None and not inner and not has_args:  # ".label": the common case
        def field_of_dot(fr, dot, final):
            if type(dot) is dict:
                v = dot.get(last)
                return "" if v is None else v
            return _field(dot, last, node, False)

        return field_of_dot

    method = None  # a time.Time method taking arguments, e.g. (__timestamp__).Format "2006"
    if has_args and last in TIME_METHODS:
        method = _compile_spec_call(TIME_METHODS[last], last, node, node, arg_nodes, has_final,
                                    receiver=True)

    def field_chain(fr, dot, final):
        r = dot if recv is None else recv(fr, dot)
        for name in inner:
            r = _field(r, name, node, False)
        if method is not None and type(r) is GoTime:
            return method(fr, dot, final, r)
        return _field(r, last, node, has_args)

    return field_chain


def _compile_command_of(first: Node, args: list[Node], has_final: bool):
    """Command whose first word is a field, chain or variable."""
    t = type(first)
    if t is FieldNode:
        return _compile_field_chain(None, first.idents, first, args, has_final)
    if t is ChainNode:
        base = first.node
        recv = _compile_pipe(base) if type(base) is PipeNode else _compile_arg(base, "any")
        return _compile_field_chain(recv, first.fields, _last_at(base), args, has_final)
    # a variable
    slot = first.slot
    if slot == UNDEFINED_SLOT:
        return _raiser(f"undefined variable: {first.idents[0]}", first)
    if len(first.idents) == 1:
        if len(args) > 1 or has_final:
            return _raiser(f"can't give argument to non-function {first}", first)
        return lambda fr, dot, final: fr[slot]
    return _compile_field_chain(lambda fr, dot: fr[slot], first.idents[1:], first, args, has_final)


def _compile_spec_call(spec, name, ident, cmd_node, arg_nodes, has_final, receiver=False):
    """Command calling ``spec`` as Go's ``evalCall`` does (arity, conversions, errors)."""
    params, variadic = spec.params, spec.variadic
    nfixed, nargs = len(params), len(arg_nodes)
    num_in = nargs + has_final
    if variadic is not None:
        if num_in < nfixed:
            msg = f"wrong number of args for {name}: want at least {nfixed} got {nargs}"
            return _raiser(msg, ident)
    elif num_in != nfixed:
        return _raiser(f"wrong number of args for {name}: want {nfixed} got {num_in}", ident)
    kinds = [params[i] if i < nfixed else variadic for i in range(nargs)]
    if name in ("and", "or") and not receiver:
        evs = [_compile_arg(n, "value") for n in arg_nodes]
        return _compile_and_or(name == "or", evs, has_final)
    evs = [_compile_arg(n, k) for n, k in zip(arg_nodes, kinds, strict=True)]
    if spec.prepare is not None:
        i, prepare = spec.prepare
        if i < nargs and type(arg_nodes[i]) is StringNode:
            try:  # e.g. a literal regexp compiled once; a bad one still fails only when called
                evs[i] = _const_ev(prepare(arg_nodes[i].text))
            except FuncError:
                pass
    final_kind = None
    where = _last_at(arg_nodes[-1]) if arg_nodes else ident
    if has_final:
        variadic_final = variadic is not None and num_in - 1 >= nfixed
        final_kind = variadic if variadic_final else params[num_in - 1]
    fn = spec.fn

    def invoke(args):
        try:
            return fn(*args)
        except FuncError as exc:
            raise _ExecError(f"error calling {name}: {exc}", cmd_node) from None
        except _ExecError:
            raise
        except Exception as exc:  # a Go panic; the functions are pure, so nothing is left half done
            raise _ExecError(f"error calling {name}: {exc}", cmd_node) from None

    if receiver:  # a time.Time method, called with its receiver first
        def method(fr, dot, final, recv):
            args = [recv] + [e(fr, dot) for e in evs]
            if has_final:
                args.append(_validate(final, final_kind, where))
            return invoke(args)

        return method
    if has_final:
        if not evs:
            return lambda fr, dot, final: invoke((_validate(final, final_kind, where),))
        if len(evs) == 1:
            e0 = evs[0]
            return lambda fr, dot, final: invoke((e0(fr, dot), _validate(final, final_kind, where)))
        return lambda fr, dot, final: invoke(
            [e(fr, dot) for e in evs] + [_validate(final, final_kind, where)])
    if not evs:
        return lambda fr, dot, final: invoke(())
    if len(evs) == 1:
        e0 = evs[0]
        return lambda fr, dot, final: invoke((e0(fr, dot),))
    if len(evs) == 2:
        e0, e1 = evs
        return lambda fr, dot, final: invoke((e0(fr, dot), e1(fr, dot)))
    return lambda fr, dot, final: invoke([e(fr, dot) for e in evs])


def _compile_and_or(is_or: bool, evs, has_final: bool):
    def and_or(fr, dot, final):
        v = None
        for e in evs:
            v = e(fr, dot)
            if is_true(v) == is_or:
                return v
        if has_final:
            v = None if final is NIL_IFACE else final
        return v

    return and_or


def _compile_call(ident: IdentifierNode, cmd_node: Node, arg_nodes: list[Node], has_final: bool):
    name = ident.name
    if name == "__line__" or name == "__timestamp__":
        if arg_nodes or has_final:
            got = len(arg_nodes) + has_final
            return _raiser(f"wrong number of args for {name}: want 0 got {got}", ident)
        if name == "__line__":
            return lambda fr, dot, final: fr[0].line
        return lambda fr, dot, final: GoTime.from_unix_ns(fr[0].ts_ns)
    return _compile_spec_call(FUNCTIONS[name], name, ident, cmd_node, arg_nodes, has_final)


def _compile_command(cmd: CommandNode, has_final: bool):
    first = cmd.args[0]
    t = type(first)
    if t is IdentifierNode:
        return _compile_call(first, cmd, cmd.args[1:], has_final)
    if t in (FieldNode, ChainNode, VariableNode):
        return _compile_command_of(first, cmd.args, has_final)
    if len(cmd.args) > 1 or has_final:
        return _raiser(f"can't give argument to non-function {first}", first)
    if t is PipeNode:
        inner = _compile_pipe(first)
        return lambda fr, dot, final: inner(fr, dot)
    if t is DotNode:
        return lambda fr, dot, final: dot
    if t is NilNode:
        return _raiser("nil is not a command", first)
    try:
        if t is BoolNode:
            v = first.value
        else:
            v = first.text if t is StringNode else _ideal_constant(first)
    except _ExecError as exc:
        return _raiser(exc.msg, first)
    return lambda fr, dot, final: v


def _compile_pipe(pipe: PipeNode):
    """Evaluator of a pipeline, storing declared or assigned variables."""
    cmds = [_compile_command(c, i > 0) for i, c in enumerate(pipe.cmds)]
    slots = [d.slot for d in pipe.decl]
    for d in pipe.decl:
        if d.slot == UNDEFINED_SLOT:
            first = cmds[0]
            msg, node = f"undefined variable: {d.idents[0]}", _last_at(pipe)

            def assign_undefined(fr, dot, first=first, msg=msg, node=node):
                first(fr, dot, _MISSING)
                raise _ExecError(msg, node)

            return assign_undefined
    if len(cmds) == 1 and not slots:
        c0 = cmds[0]

        def single(fr, dot):
            v = c0(fr, dot, _MISSING)
            return None if v is NIL_IFACE else v

        return single

    def pipeline(fr, dot):
        v = _MISSING
        for c in cmds:
            v = c(fr, dot, v)
            if v is NIL_IFACE:
                v = None
        for s in slots:
            fr[s] = v
        return v

    return pipeline


def _compile_list(lst: ListNode | None):
    runs = []
    for n in (lst.nodes if lst is not None else ()):
        r = _compile_node(n)
        if r is not None:
            runs.append(r)
    if not runs:
        return lambda fr, dot, out: None
    if len(runs) == 1:
        return runs[0]
    runs = tuple(runs)

    def run_list(fr, dot, out):
        for r in runs:
            r(fr, dot, out)

    return run_list


def _compile_node(n: Node):
    t = type(n)
    if t is TextNode:
        text = n.text
        return lambda fr, dot, out: out(text)
    if t is CommentNode:
        return None
    if t is ActionNode:
        ev = _compile_pipe(n.pipe)
        if n.pipe.decl:
            return lambda fr, dot, out: ev(fr, dot)

        def action(fr, dot, out):
            v = ev(fr, dot)
            out(v if type(v) is str else print_value(v))

        return action
    if t is BranchNode:
        return _compile_branch(n)
    if t is KeywordNode:
        exc = _Break if n.word == "break" else _Continue

        def jump(fr, dot, out):
            raise exc

        return jump
    if t is TemplateNode:
        return _compile_template_call(n)
    raise AssertionError(f"unknown node {n!r}")  # pragma: no cover - the parser makes no others


def _compile_branch(n: BranchNode):
    cond = _compile_pipe(n.pipe)
    body = _compile_list(n.list)
    else_ = _compile_list(n.else_list) if n.else_list is not None else None
    if n.kind == "if":
        def if_(fr, dot, out):
            if is_true(cond(fr, dot)):
                body(fr, dot, out)
            elif else_ is not None:
                else_(fr, dot, out)

        return if_
    if n.kind == "with":
        def with_(fr, dot, out):
            v = cond(fr, dot)
            if is_true(v):
                body(fr, v, out)
            elif else_ is not None:
                else_(fr, dot, out)

        return with_
    slots = [d.slot for d in n.pipe.decl]
    elem_slot = slots[-1] if slots else None
    key_slot = slots[0] if len(slots) > 1 else None
    where = _last_at(n.pipe)

    def range_(fr, dot, out):
        val = cond(fr, dot)
        t = type(val)
        if t is list:
            items = enumerate(NIL_IFACE if e is None else e for e in val)
        elif t is JsonMap:
            items = ((k, NIL_IFACE if val[k] is None else val[k]) for k in sorted(val))
        elif isinstance(val, Mapping):
            items = ((k, val[k]) for k in sorted(val))
        elif is_go_int(val):  # Go 1.22: range over an integer
            if key_slot is not None:
                msg = f"can't use {print_value(val)} to iterate over more than one variable"
                raise _ExecError(msg, where)
            items = ((i, i) for i in range(val))
        elif val is None:
            items = ()
        else:
            raise _ExecError(f"range can't iterate over {print_value(val)}", where)
        ran = False
        for k, e in items:
            ran = True
            if elem_slot is not None:
                fr[elem_slot] = e
            if key_slot is not None:
                fr[key_slot] = k
            try:
                body(fr, e, out)
            except _Continue:
                continue
            except _Break:
                break
        if not ran and else_ is not None:
            else_(fr, dot, out)

    return range_


def _compile_template_call(n: TemplateNode):
    name = n.name
    pipe = _compile_pipe(n.pipe) if n.pipe is not None else None

    def call_template(fr, dot, out):
        st = fr[0]
        tree = st.trees.get(name)
        if tree is None:
            raise _ExecError(f"template {go_quote(name)} not defined", n)
        new_dot = pipe(fr, dot) if pipe is not None else None
        if st.depth >= _MAX_TEMPLATE_DEPTH:
            raise _ExecError(f"exceeded maximum template depth ({_MAX_TEMPLATE_DEPTH})", n)
        frame = [st, new_dot]
        frame.extend([None] * (tree.nslots - 2))
        st.depth += 1
        try:
            tree.run(frame, new_dot, out)
        except _ExecError as exc:
            if exc.tmpl_name is None:
                exc.tmpl_name = name
            raise
        finally:
            st.depth -= 1

    return call_template


def _fields_in(node, out: list[str]) -> None:
    """Label names of field nodes, walked like Loki's ``listNodeFields``."""
    t = type(node)
    if t is ListNode:
        for n in node.nodes:
            _fields_in(n, out)
    elif t is ActionNode:
        _fields_in(node.pipe, out)
    elif t is PipeNode:
        for c in node.cmds:
            for a in c.args:
                _fields_in(a, out)
    elif t is BranchNode:
        _fields_in(node.pipe, out)
        _fields_in(node.list, out)
        if node.else_list is not None:
            _fields_in(node.else_list, out)
    elif t is FieldNode:
        out.extend(node.idents)


# ----------------------------------------------------------------------------


class Template:
    """A LogQL ``line_format``/``label_format`` template, parsed and compiled once.

    ``Template(text)`` raises :class:`~chunkstore.errors.QueryError` (with
    ``pos``, the character offset) for a syntax error or a function Loki does
    not define. ``name`` is the template name Go error messages carry: Loki
    uses ``"line"`` for ``line_format`` and ``"label"`` for ``label_format``.

    :meth:`execute` renders one entry. :attr:`referenced_labels` is the set
    of label names the template reads through fields (``.status``), walked
    as Loki walks it to decide which labels a parser must extract.
    """

    __slots__ = ("text", "name", "referenced_labels", "_trees", "_run", "_pad", "_const",
                 "_simple_key")

    def __init__(self, text: str, *, name: str = "line"):
        if not isinstance(text, str):
            raise TypeError(f"template: text must be str, not {type(text).__name__}")
        self.text = text
        self.name = name
        trees = Parser(text, name).parse()
        for tree in trees.values():
            tree.run = _compile_list(tree.root)
        main = trees[name]
        self._trees = trees
        self._run = main.run
        self._pad = [None] * (main.nslots - 2)
        fields: list[str] = []
        _fields_in(main.root, fields)
        self.referenced_labels = frozenset(fields)
        nodes = [n for n in main.root.nodes if type(n) is not CommentNode]
        self._const = None
        if all(type(n) is TextNode for n in nodes):
            self._const = "".join(n.text for n in nodes)
        self._simple_key = None
        if len(nodes) == 1 and type(nodes[0]) is ActionNode:
            pipe = nodes[0].pipe
            if not pipe.decl and len(pipe.cmds) == 1 and len(pipe.cmds[0].args) == 1:
                arg = pipe.cmds[0].args[0]
                if type(arg) is FieldNode and len(arg.idents) == 1:
                    self._simple_key = arg.idents[0]

    def execute(self, labels: Mapping[str, str], line: str, ts_ns: int) -> str:
        """Render the template for one entry.

        ``labels`` is the entry's label set (``.name`` reads it; a missing
        label is ``""``), ``line`` what ``__line__`` returns and ``ts_ns``
        the entry time in Unix nanoseconds (``__timestamp__``, in UTC).
        Raises :class:`TemplateError` with Go's message if the template fails
        (a function error, a wrong argument type, a field of a non-map...).
        """
        if self._const is not None:
            return self._const
        key = self._simple_key
        if key is not None and type(labels) is dict:
            v = labels.get(key)
            return "" if v is None else v if type(v) is str else print_value(v)
        frame = [_State(line, ts_ns, self._trees), labels]
        frame.extend(self._pad)
        out: list[str] = []
        try:
            self._run(frame, labels, out.append)
        except _ExecError as exc:
            raise TemplateError(self._error_message(exc)) from None
        except RecursionError:
            raise TemplateError(f"template: {self.name}: exceeded maximum template depth "
                                f"({_MAX_TEMPLATE_DEPTH})") from None
        return "".join(out)

    def _error_message(self, exc: _ExecError) -> str:
        pos = exc.node.pos
        before = self.text[:pos]
        line = before.count("\n") + 1
        col = len(utf8(before[before.rfind("\n") + 1:]))
        return (f'template: {self.name}:{line}:{col}: executing "{exc.tmpl_name or self.name}" '
                f"at <{exc.node}>: {exc.msg}")

    def __repr__(self) -> str:
        return f"Template({self.text!r})"
