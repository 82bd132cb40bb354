"""Loki's ``.logqltest`` conformance scripts: parser, loader and checker (a test helper).

The DSL is described in ``shared/conformance/loki-logqltest/README.md``:
``clear``, ``load`` blocks of ``{labels} "line" @ OFFSET [repeat every STEP
for COUNT] [metadata k="v"]``, and ``eval instant at T QUERY`` / ``eval range
from T0 to T1 step S QUERY`` followed by indented expectations.  The script
epoch is timestamp 0; offsets and times are Go durations.

:func:`parse_script` returns the eval cases in file order, each pointing at
the :class:`Scenario` (the data loaded at that point) it runs against;
:func:`load_store` puts a scenario into a store through the public API and
:func:`check_case` runs one case and raises ``AssertionError`` on a mismatch,
comparing as Loki's runner does (label sets as sets, floats within a
relative 1e-9, NaN equal to NaN, series order only under ``expect ordered``).

Run as a script to print the pass rate per file::

    python tests/logqltest.py [DIR]
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CONFORMANCE_DIR",
    "Scenario",
    "EvalCase",
    "Expectation",
    "parse_script",
    "load_store",
    "check_case",
    "floats_equal",
]

CONFORMANCE_DIR = (Path(__file__).resolve().parents[1].parent
                   / "shared" / "conformance" / "loki-logqltest")
EPSILON = 1e-9

_RE_INSTANT = re.compile(r"^at\s+(\S+)\s+(.+)$")
_RE_RANGE = re.compile(r"^from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)\s+(.+)$")
_RE_AT = re.compile(r"^\s*@\s*(\S+)")
_RE_REPEAT = re.compile(r"^\s*\[repeat every\s+(\S+)\s+for\s+(\d+)\]")
_RE_METADATA = re.compile(r"^\s*\[metadata\s+(.*?)\]")
_RE_META_PAIR = re.compile(r'(?:"([^"]*)"|([^\s"=]+))="([^"]*)"')
_RE_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def go_duration_ns(text: str) -> int:
    from chunkstore.logql.units import parse_go_duration_ns

    return parse_go_duration_ns(text)


@dataclass
class Scenario:
    """The streams loaded between two ``clear`` commands (or up to an eval)."""

    index: int
    #: label key (sorted pairs) -> [(ts_ns, line, metadata dict or None)] in script order
    streams: dict = field(default_factory=dict)


@dataclass
class Expectation:
    fail: bool = False
    fail_kind: str | None = None  # None (any error), "msg" or "regex"
    fail_text: str = ""
    empty: bool = False
    ordered: bool = False
    scalar: float | None = None
    #: [(labels dict, [value or None per step])]
    series: list = field(default_factory=list)


@dataclass
class EvalCase:
    file: str
    line: int  # 1-based line of the eval command
    scenario: Scenario
    instant: bool
    start: int
    end: int
    step: int
    query: str
    expect: Expectation

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def strip_comment(line: str) -> str:
    """Remove a trailing ``# ...`` outside ``"..."`` and backquoted text."""
    quote = None
    for i, c in enumerate(line):
        if quote is not None:
            if c == quote:
                quote = None
        elif c in "\"`":
            quote = c
        elif c == "#":
            return line[:i].rstrip(" \t")
    return line


def _split_quoted(s: str) -> tuple[str, str]:
    m = re.search(r'["`]', s)
    if m is None:
        raise ValueError("missing quoted log line")
    q = m.group(0)
    end = s.find(q, m.end())
    if end < 0:
        raise ValueError("unterminated quoted log line")
    return s[m.end():end], s[end + 1:]


def _unquote(s: str) -> str:
    return re.sub(r'\\(["\\])', r"\1", s)


def parse_label_set(text: str) -> dict:
    """``{a="b", c=""}`` -> dict (empty values kept); raises ValueError."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError(f"expected a label set, got {text!r}")
    body = text[1:-1].strip()
    out: dict = {}
    pos = 0
    while pos < len(body):
        m = _RE_LABEL.match(body, pos)
        if m is None:
            raise ValueError(f"bad label set {text!r} at {body[pos:]!r}")
        out[m.group(1)] = _unquote(m.group(2))
        pos = m.end()
    return out


def _parse_value(tok: str) -> float:
    if tok == "NaN":
        return math.nan
    if tok in ("Inf", "+Inf"):
        return math.inf
    if tok == "-Inf":
        return -math.inf
    return float(tok)


def parse_samples(tokens: list[str]) -> list:
    """Expectation values: numbers, ``_`` (no point), ``BASE[+|-STEP]xN`` (N+1 values)."""
    out: list = []
    for tok in tokens:
        if tok == "_":
            out.append(None)
            continue
        if "x" in tok:
            head, count = tok.split("x", 1)
            n = int(count)
            base, step = head, "0"
            plus = head.rfind("+")
            minus = head.rfind("-")
            if plus > 0:
                base, step = head[:plus], head[plus + 1:]
            elif minus > 0:
                base, step = head[:minus], head[minus:]
            b, s = _parse_value(base), _parse_value(step)
            out.extend(b + i * s for i in range(n + 1))
            continue
        out.append(_parse_value(tok))
    return out


def _block(lines: list[str], i: int):
    """Yield ``(index, content)`` of the indented block starting at ``i``; return the next index."""
    out = []
    while i < len(lines):
        raw = lines[i]
        if raw.strip() == "":
            break
        if raw.strip().startswith("#"):
            i += 1
            continue
        if raw[0] not in " \t":
            break
        content = strip_comment(raw).strip()
        if content:
            out.append((i, content))
        i += 1
    return out, i


def _parse_load_line(content: str, scenario: Scenario) -> None:
    end = content.find("}")
    if not content.startswith("{") or end < 0:
        raise ValueError(f"bad load line {content!r}")
    labels = parse_label_set(content[:end + 1])
    text, rest = _split_quoted(content[end + 1:])
    m = _RE_AT.match(rest)
    if m is None:
        raise ValueError(f"missing '@ <start>' in {content!r}")
    start = go_duration_ns(m.group(1))
    rest = rest[m.end():]
    step, count = 0, 1
    m = _RE_REPEAT.match(rest)
    if m is not None:
        step, count = go_duration_ns(m.group(1)), int(m.group(2))
        rest = rest[m.end():]
    metadata = None
    m = _RE_METADATA.match(rest)
    if m is not None:
        metadata = {(a or b): v for a, b, v in _RE_META_PAIR.findall(m.group(1))}
        rest = rest[m.end():]
    if rest.strip():
        raise ValueError(f"unexpected content after log line: {rest.strip()!r}")
    key = tuple(sorted(labels.items()))
    entries = scenario.streams.setdefault(key, [])
    for i in range(count):
        entries.append((start + i * step, text.replace("{{.i}}", str(i)), metadata))


def _parse_expectation(content: str, exp: Expectation) -> None:
    if content.startswith("expect fail"):
        exp.fail = True
        body = content[len("expect fail"):].strip()
        if body.startswith("msg:"):
            exp.fail_kind, exp.fail_text = "msg", body[4:].strip()
        elif body.startswith("regex:"):
            exp.fail_kind, exp.fail_text = "regex", body[6:].strip()
        elif body:
            raise ValueError(f"unsupported expect fail qualifier {body!r}")
    elif content == "expect empty":
        exp.empty = True
    elif content == "expect ordered":
        exp.ordered = True
    elif content.startswith("skip "):
        pass  # a directive for Loki's sharded execution stack
    elif content.startswith("{"):
        end = content.find("}")
        exp.series.append((parse_label_set(content[:end + 1]),
                           parse_samples(content[end + 1:].split())))
    else:
        exp.scalar = _parse_value(content)


def parse_script(text: str, name: str) -> list[EvalCase]:
    """The eval cases of one script, in order; raises ValueError for a malformed script."""
    lines = text.split("\n")
    cases: list[EvalCase] = []
    scenario = Scenario(0)
    i = 0
    while i < len(lines):
        trimmed = strip_comment(lines[i]).strip()
        if not trimmed:
            i += 1
            continue
        command = trimmed.split()[0]
        if command == "clear":
            scenario = Scenario(scenario.index + 1)
            i += 1
        elif command == "load":
            if any(c.scenario is scenario for c in cases):
                # data added after an eval: later evals see a new snapshot
                scenario = Scenario(scenario.index + 1,
                                    {k: list(v) for k, v in scenario.streams.items()})
            block, i = _block(lines, i + 1)
            for _, content in block:
                _parse_load_line(content, scenario)
        elif command == "eval":
            lineno = i + 1
            rest = trimmed[len("eval"):].strip()
            if rest.startswith("instant"):
                m = _RE_INSTANT.match(rest[len("instant"):].strip())
                if m is None:
                    raise ValueError(f"{name}:{lineno}: malformed eval instant")
                t = go_duration_ns(m.group(1))
                start, end, step, query, instant = t, t, 0, m.group(2).strip(), True
            elif rest.startswith("range"):
                m = _RE_RANGE.match(rest[len("range"):].strip())
                if m is None:
                    raise ValueError(f"{name}:{lineno}: malformed eval range")
                start, end, step = (go_duration_ns(m.group(k)) for k in (1, 2, 3))
                query, instant = m.group(4).strip(), False
            else:
                raise ValueError(f"{name}:{lineno}: expected instant or range after eval")
            block, i = _block(lines, i + 1)
            exp = Expectation()
            for _, content in block:
                _parse_expectation(content, exp)
            cases.append(EvalCase(name, lineno, scenario, instant, start, end, step, query, exp))
        else:
            raise ValueError(f"{name}:{i + 1}: unexpected command {command!r}")
    return cases


def collect(directory: Path = CONFORMANCE_DIR) -> list[EvalCase]:
    """Every eval case of every ``*.logqltest`` file in ``directory`` (sorted by file name)."""
    cases: list[EvalCase] = []
    for path in sorted(directory.glob("*.logqltest")):
        cases.extend(parse_script(path.read_text(encoding="utf-8"), path.name))
    return cases


# ---------------------------------------------------------------------------
# running


def load_store(path, scenario: Scenario):
    """Open a fresh store at ``path`` and push the scenario's streams (each sorted by time)."""
    import chunkstore

    store = chunkstore.open(path, maintenance_interval=0, out_of_order_window="1000d")
    batches = []
    for key, entries in scenario.streams.items():
        ordered = sorted(entries, key=lambda e: e[0])
        batches.append((dict(key), [(ts, line, meta) if meta else (ts, line)
                                    for ts, line, meta in ordered]))
    if batches:
        result = store.push(batches)
        if result.rejected:
            store.close()
            raise AssertionError(f"load rejected entries: {result.rejected[:3]}")
    return store


def floats_equal(a: float, b: float) -> bool:
    """Loki's comparison: NaN equals NaN, infinities exactly, else within 1e-9 (abs or relative)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    diff = abs(a - b)
    return diff <= EPSILON or diff / max(abs(a), abs(b)) <= EPSILON


def _fmt(labels: dict) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def run_case(store, case: EvalCase):
    """The engine's answer to one case (a list of samples/series or a float)."""
    if case.instant:
        return store.query_instant(case.query, case.start)
    return store.query_range(case.query, case.start, case.end, case.step)


def check_case(store, case: EvalCase) -> None:
    """Run ``case`` against ``store``; AssertionError describing the first mismatch."""
    exp = case.expect
    try:
        got = run_case(store, case)
    except Exception as exc:  # noqa: BLE001 - every failure kind is compared below
        if not exp.fail:
            raise AssertionError(
                f"query {case.query!r} failed: {type(exc).__name__}: {exc}") from exc
        text = str(exc)
        if exp.fail_kind == "msg" and exp.fail_text not in text:
            raise AssertionError(f"failure message {text!r} lacks {exp.fail_text!r}") from exc
        if exp.fail_kind == "regex" and not re.search(exp.fail_text, text):
            raise AssertionError(
                f"failure message {text!r} does not match /{exp.fail_text}/") from exc
        return
    if exp.fail:
        raise AssertionError(f"query {case.query!r} should have failed, got {got!r}")
    if isinstance(got, float):
        if exp.scalar is None:
            raise AssertionError(f"got the scalar {got}, expected {exp}")
        if not floats_equal(exp.scalar, got):
            raise AssertionError(f"scalar mismatch: want {exp.scalar}, got {got}")
        return
    if exp.empty:
        if got:
            raise AssertionError(f"expected an empty result, got {got!r}")
        return
    if exp.scalar is not None:
        raise AssertionError(f"expected the scalar {exp.scalar}, got {got!r}")
    if case.instant:
        _check_vector(case, got)
    else:
        _check_matrix(case, got)


def _check_vector(case: EvalCase, got) -> None:
    exp = case.expect
    for s in got:
        if s.ts != case.start:
            raise AssertionError(f"sample {_fmt(s.labels)} at {s.ts}, expected {case.start}")
    if exp.ordered:
        if len(got) != len(exp.series):
            raise AssertionError(f"want {len(exp.series)} samples in order, got {got!r}")
        for i, ((labels, values), s) in enumerate(zip(exp.series, got, strict=True)):
            if labels != s.labels or not floats_equal(values[0], s.value):
                raise AssertionError(f"position {i}: want {_fmt(labels)} {values[0]}, "
                                     f"got {_fmt(s.labels)} {s.value}")
        return
    want = {_fmt(labels): values for labels, values in exp.series}
    have = {_fmt(s.labels): s.value for s in got}
    if len(have) != len(got):
        raise AssertionError(f"duplicate series in {got!r}")
    if set(want) != set(have):
        raise AssertionError(f"series mismatch: want {sorted(want)}, got {have}")
    for k, values in want.items():
        if len(values) != 1 or values[0] is None:
            raise AssertionError(f"instant expectation for {k} must be one value")
        if not floats_equal(values[0], have[k]):
            raise AssertionError(f"series {k}: want {values[0]}, got {have[k]}")


def _check_matrix(case: EvalCase, got) -> None:
    exp = case.expect
    steps = list(range(case.start, case.end + 1, case.step))
    want = {}
    for labels, values in exp.series:
        if len(values) != len(steps):
            raise AssertionError(f"expectation {_fmt(labels)} has {len(values)} values for "
                                 f"{len(steps)} steps")
        want[_fmt(labels)] = values
    have = {}
    for s in got:
        k = _fmt(s.labels)
        if k in have:
            raise AssertionError(f"duplicate series {k}")
        have[k] = dict(s.points)
        stray = set(have[k]) - set(steps)
        if stray:
            raise AssertionError(f"series {k} has points off the step grid: {sorted(stray)}")
    if set(want) != set(have):
        raise AssertionError(f"series mismatch: want {sorted(want)}, got "
                             f"{ {k: [v.get(t) for t in steps] for k, v in have.items()} }")
    for k, values in want.items():
        points = have[k]
        for t, w in zip(steps, values, strict=True):
            g = points.get(t)
            if w is None and g is not None:
                raise AssertionError(f"series {k} at t={t}: want no point, got {g}")
            if w is not None and (g is None or not floats_equal(w, g)):
                raise AssertionError(f"series {k} at t={t}: want {w}, got {g}; "
                                     f"all {[points.get(x) for x in steps]}")


def main(argv: list[str]) -> int:
    """Run every case and print the pass rate per file (and each failure)."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    directory = Path(argv[0]) if argv else CONFORMANCE_DIR
    cases = collect(directory)
    per_file: dict = {}
    store = None
    current = None
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            if case.scenario is not current:
                if store is not None:
                    store.close()
                current = case.scenario
                store = load_store(Path(tmp) / f"{case.file}-{case.scenario.index}", current)
            ok, total = per_file.get(case.file, (0, 0))
            try:
                check_case(store, case)
                ok += 1
            except AssertionError as exc:
                print(f"FAIL {case.id}: {case.query}\n     {exc}")
            per_file[case.file] = (ok, total + 1)
        if store is not None:
            store.close()
    for name, (ok, total) in per_file.items():
        print(f"{name:32} {ok:4}/{total:<4} {100.0 * ok / total:6.1f}%")
    return 0 if all(ok == total for ok, total in per_file.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
