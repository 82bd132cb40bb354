"""Go's ``text/template`` builtins (``funcs.go``): truth, comparisons, ``index``, ``len``, escapers.

``eq``/``lt``/... compare like Go (integers with integers, strings with
strings; mixing kinds is "incompatible types for comparison"), ``index`` and
``slice`` index like Go's reflection (strings by byte), and ``html``, ``js``
and ``urlquery`` escape exactly as Go's ``HTMLEscapeString``, ``JSEscapeString``
and ``url.QueryEscape`` do.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

from .template_gofmt import go_sprint, go_sprintf
from .template_time import GoTime
from .template_values import (
    NIL_IFACE,
    FuncError,
    JsonMap,
    Uint8,
    bytes_to_str,
    go_type_name,
    is_go_int,
    utf8,
)

__all__ = ["is_true", "eq", "ne", "lt", "le", "gt", "ge", "index", "slice", "length", "html", "js",
           "urlquery", "query_escape", "call"]


def is_true(v) -> bool:
    """Go's template truth: non-zero numbers, non-empty strings and collections, any struct."""
    if v is None or v is NIL_IFACE:
        return False
    t = type(v)
    if t is bool:
        return v
    if t is str or t is list or t is JsonMap:
        return len(v) > 0
    if t is GoTime:
        return True
    if t is int or t is float or t is complex or isinstance(v, int):
        return v != 0
    if isinstance(v, Mapping):
        return len(v) > 0
    return True


def _basic_kind(v) -> str:
    t = type(v)
    if t is bool:
        return "bool"
    if is_go_int(v):
        return "int"
    if t is float:
        return "float"
    if t is str:
        return "string"
    if t is complex:
        return "complex"
    return ""


def eq(a, *others) -> bool:
    if len(others) == 1 and type(a) is str and type(others[0]) is str:
        return a == others[0]
    if not others:
        raise FuncError("missing argument for comparison")
    a = None if a is NIL_IFACE else a
    ka = _basic_kind(a)
    for b in others:
        b = None if b is NIL_IFACE else b
        kb = _basic_kind(b)
        if ka != kb:
            if a is not None and b is not None:
                raise FuncError("incompatible types for comparison")
            truth = False
        elif ka:
            truth = a == b
        elif a is None or b is None:
            truth = a is None and b is None
        elif type(a) is GoTime and type(b) is GoTime:
            truth = a == b
        else:
            raise FuncError(f"non-comparable type {go_sprintf('%s', [b])}: {go_type_name(b)}")
        if truth:
            return True
    return False


def lt(a, b) -> bool:
    a = None if a is NIL_IFACE else a
    b = None if b is NIL_IFACE else b
    ka, kb = _basic_kind(a), _basic_kind(b)
    if not ka or not kb:
        raise FuncError("invalid type for comparison")
    if ka != kb:
        raise FuncError("incompatible types for comparison")
    if ka in ("bool", "complex"):
        raise FuncError("invalid type for comparison")
    return a < b


def le(a, b) -> bool:
    return lt(a, b) or eq(a, b)


def _index_arg(x, cap: int) -> int:
    if x is None or x is NIL_IFACE:
        raise FuncError("cannot index slice/array with nil")
    if not is_go_int(x):
        raise FuncError(f"cannot index slice/array with type {go_type_name(x)}")
    if x < 0 or x > cap:
        raise FuncError(f"index out of range: {int(x)}")
    return int(x)


def index(item, *indexes):
    if item is None or item is NIL_IFACE:
        raise FuncError("index of untyped nil")
    for x in indexes:
        if item is None or item is NIL_IFACE:
            raise FuncError("index of nil pointer")
        t = type(item)
        if t is str or t is list:
            n = len(item) if t is list else len(utf8(item))
            i = _index_arg(x, n)
            if i == n:
                raise FuncError(f"reflect: {'slice' if t is list else 'string'} index out of range")
            if t is list:
                item = item[i]
                item = NIL_IFACE if item is None else item
            else:
                item = Uint8(utf8(item)[i])
        elif isinstance(item, Mapping):
            if x is None or x is NIL_IFACE:
                raise FuncError("value is nil; should be of type string")
            if type(x) is not str:
                raise FuncError(f"value has type {go_type_name(x)}; should be string")
            v = item.get(x)
            if t is JsonMap:
                item = NIL_IFACE if v is None else v
            else:
                item = "" if v is None else v
        else:
            raise FuncError(f"can't index item of type {go_type_name(item)}")
    return item


def slice(item, *indexes):
    if item is None or item is NIL_IFACE:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    t = type(item)
    if t is str:
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        seq = utf8(item)
    elif t is list:
        seq = item
    else:
        raise FuncError(f"can't slice item of type {go_type_name(item)}")
    idx = [0, len(seq), len(seq)]
    for i, x in enumerate(indexes):
        idx[i] = _index_arg(x, len(seq))
    if idx[0] > idx[1]:
        raise FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise FuncError(f"invalid slice index: {idx[1]} > {idx[2]}")
    out = seq[idx[0]:idx[1]]
    return bytes_to_str(out) if t is str else out


def length(item) -> int:
    if item is None:
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    if item is NIL_IFACE:
        raise FuncError("len of nil pointer")
    t = type(item)
    if t is str:
        return len(item) if item.isascii() else len(utf8(item))
    if t is list or isinstance(item, Mapping):
        return len(item)
    raise FuncError(f"len of type {go_type_name(item)}")


def _eval_args(args) -> str:
    if len(args) == 1 and type(args[0]) is str:
        return args[0]
    return go_sprint(["<no value>" if a is None else a for a in args])


_HTML_ESCAPES = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}


def html(*args) -> str:
    s = _eval_args(args)
    if not any(c in s for c in "\"'&<>\0"):
        return s
    return "".join(_HTML_ESCAPES.get(c, c) for c in s)


_JS_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E",
               "&": "\\u0026", "=": "\\u003D"}


def js(*args) -> str:
    s = _eval_args(args)
    out = []
    for c in s:
        e = _JS_ESCAPES.get(c)
        if e is not None:
            out.append(e)
        elif c < " ":
            out.append(f"\\u00{ord(c):02X}")
        elif c < "\x80" or c.isprintable():
            out.append(c)
        else:
            out.append(f"\\u{ord(c):04X}")
    return "".join(out)


def query_escape(s: str) -> str:
    return urllib.parse.quote_plus(s, safe="", encoding="utf-8", errors="surrogatepass")


def urlquery(*args) -> str:
    return query_escape(_eval_args(args))


def call(fn, *args):
    if fn is None or fn is NIL_IFACE:
        raise FuncError("call of nil")
    raise FuncError(f"non-function of type {go_type_name(fn)}")




def ne(a, b) -> bool:
    return not eq(a, b)


def gt(a, b) -> bool:
    return not le(a, b)


def ge(a, b) -> bool:
    return not lt(a, b)
