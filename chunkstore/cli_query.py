"""``chunkstore query``, ``tail``, ``labels``, ``series`` and ``stats``: the read commands.

Every store is opened read-only, so these commands run beside a writing
process.  Log output goes through :class:`EntryWriter` (text, jsonl, raw);
metric queries print a table of series; ``--volume`` a histogram.
"""

from __future__ import annotations

import json
import math
import time

from chunkstore import cli_render as r
from chunkstore.cli import CLIError, open_store

__all__ = ["cmd_query", "cmd_tail", "cmd_labels", "cmd_series", "cmd_stats", "EntryWriter",
           "nice_step", "resolve_range"]

_NS = 1_000_000_000

#: Steps a range is cut into (histogram buckets, default metric step): ns.
_NICE_STEPS = [x * 1_000_000 for x in (1, 2, 5, 10, 20, 50, 100, 200, 500)] + [
    x * _NS for x in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
                      21600, 43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400,
                      91 * 86400, 365 * 86400)]


def nice_step(span_ns: float, *, nearest: bool = False) -> int:
    """A round step (1s, 5m, 1h, ...): the smallest at least ``span_ns``, or the nearest one.

    Histograms need the ceiling (the buckets must fit the width); a metric
    query's default step takes the nearest (range/60 over an hour is 1m).
    """
    if nearest:
        target = max(span_ns, 1.0)
        return min(_NICE_STEPS, key=lambda s: abs(math.log(s / target)))
    for s in _NICE_STEPS:
        if s >= span_ns:
            return s
    return int(math.ceil(span_ns / (365 * 86400 * _NS))) * 365 * 86400 * _NS


def resolve_range(args) -> tuple[int | None, int | None]:
    """``(start, end)`` from ``--from``/``--to``/``--since``; None = unbounded."""
    start = getattr(args, "start", None)
    end = getattr(args, "end", None)
    since = getattr(args, "since", None)
    if start is None and since is not None:
        start = time.time_ns() - since
    if start is not None and end is not None and end <= start:
        raise CLIError(f"empty time range: --to {r.format_ns(end)} is not after --from "
                       f"{r.format_ns(start)}", 2)
    return start, end


def parse_query(text: str):
    from chunkstore import logql

    return logql.parse(text)


def line_needles(expr) -> list[str]:
    """The literal ``|=`` values of a log query that still see the original line."""
    from chunkstore.logql import ast

    needles: list[str] = []
    for stage in getattr(expr, "stages", ()):
        if isinstance(stage, (ast.LineFormat, ast.Decolorize, ast.UnpackParser)):
            break
        if isinstance(stage, ast.LineFilter) and stage.op == "|=":
            needles.extend(v for v, ip in zip(stage.values, stage.ips, strict=True) if not ip)
    return needles


# ---------------------------------------------------------------------------
# writing entries

class EntryWriter:
    """Writes entries in one output format; ``context`` mode marks matches and separators.

    ``text``: ``TIME {stream labels} line`` (RFC 3339 in UTC with
    milliseconds; jsonl has the exact nanoseconds), coloured by level with the
    ``|=`` needles highlighted when colour is on.  In context mode match
    lines start with ``> `` and context lines with two spaces, and groups are
    separated by ``--`` as in ``grep -C``.  ``jsonl``: one object per entry
    (``ts``, ``time``, ``labels``, ``stream``, ``line``; plus ``match`` in
    context mode).  ``raw``: the exact line bytes.
    """

    def __init__(self, out, fmt: str, *, color: bool = False, needles=(), no_labels=False,
                 context: bool = False, width: int | None = None):
        self.out = out
        self.fmt = fmt
        self.pal = r.Palette(color)
        self.needles = list(needles)
        self.no_labels = no_labels
        self.context = context
        self.width = width
        self.count = 0
        self._bin = getattr(out, "buffer", None) if fmt == "raw" else None

    def write(self, e, match: bool = True) -> None:
        self.count += match
        fmt = self.fmt
        if fmt == "raw":
            if self._bin is not None:
                self._bin.write(e.raw + b"\n")
            else:
                self.out.write(e.line + "\n")
            return
        if fmt == "jsonl":
            obj = {"ts": e.ts, "time": r.format_ns(e.ts), "labels": dict(e.labels),
                   "stream": dict(e.stream), "line": e.line}
            if self.context:
                obj["match"] = match
            self.out.write(json.dumps(obj, ensure_ascii=False) + "\n")
            return
        pal = self.pal
        line = e.line
        ts_text = r.format_ts_ms(e.ts)
        lbl_text = "" if self.no_labels else r.format_labels(e.stream)
        if self.width is not None:
            avail = max(20, self.width - len(ts_text) - len(lbl_text) - 2 - 2 * self.context)
            if len(line) > avail:
                line = line[: avail - 1] + "…"
        head = pal(ts_text, "grey")
        if lbl_text:
            head += " " + pal(lbl_text, "cyan")
        if pal.enabled:
            if match:
                line = r.highlight(line, self.needles, pal, r.level_style(line))
            else:
                line = pal(line, "dim")
        prefix = ("> " if match else "  ") if self.context else ""
        self.out.write(f"{prefix}{head} {line}\n")

    def separator(self) -> None:
        if self.fmt == "jsonl":
            return
        if self._bin is not None:
            self._bin.write(b"--\n")
        else:
            self.out.write(self.pal("--", "grey") + "\n")

    def flush(self) -> None:
        if self._bin is not None:
            self._bin.flush()
        self.out.flush()


def _key(e) -> tuple:
    return (e.ts, e.raw, tuple(sorted(e.stream.items())))


def _write_with_context(store, entries, n: int, writer: EntryWriter) -> None:
    """grep -C: each match with ``n`` lines of its stream around it; overlapping groups merge."""
    group: list = []  # [(entry, is_match)]
    group_keys: set = set()
    group_stream = None
    first = True
    match_keys = set()
    for e in entries:
        match_keys.add(_key(e))
        before, after = store.context(e, n, n)
        items = [(x, _key(x) in match_keys) for x in before] + [(e, True)] + [
            (x, _key(x) in match_keys) for x in after]
        keys = [_key(x) for x, _ in items]
        stream = tuple(sorted(e.stream.items()))
        if group and stream == group_stream and group_keys.intersection(keys):
            # Same stream and overlapping: merge in time order (old group first
            # when it is older, as with --forward; new first otherwise).
            if items[0][0].ts >= group[0][0].ts:
                fresh = [it for it, k in zip(items, keys, strict=True) if k not in group_keys]
                merged = group + fresh
            else:
                fresh = [it for it, k in zip(items, keys, strict=True) if k not in group_keys]
                merged = fresh + group
            group = [(x, m or _key(x) in match_keys) for x, m in merged]
            group_keys.update(keys)
            continue
        if group:
            if not first:
                writer.separator()
            for x, m in group:
                writer.write(x, m)
            first = False
        group, group_keys, group_stream = items, set(keys), stream
    if group:
        if not first:
            writer.separator()
        for x, m in group:
            writer.write(x, m)


# ---------------------------------------------------------------------------
# query

def cmd_query(args, out, err) -> int:
    from chunkstore import logql

    expr = parse_query(args.query)
    start, end = resolve_range(args)
    store = open_store(args.store)
    try:
        if logql.is_metric(expr):
            if args.context or args.volume:
                raise CLIError("--context and --volume apply to log queries, not to a metric "
                               "query", 2)
            status = _metric_query(store, args, start, end, out, err)
            if args.stats:
                _print_stats(getattr(store, "last_query_stats", None), err)
            return status
        color = r.use_color(args.color, out) and args.output == "text"
        if args.volume:
            vol_out = out if args.output == "text" else err
            _print_volume(store, args.query, expr, start, end, args, vol_out,
                          r.use_color(args.color, vol_out))
        writer = EntryWriter(out, args.output, color=color, needles=line_needles(expr),
                             no_labels=args.no_labels, context=args.context > 0,
                             width=getattr(args, "truncate", None))
        limit = args.limit or None
        entries = store.query(args.query, start, end, limit=limit,
                              direction="forward" if args.forward else "backward")
        t0 = time.perf_counter()
        if args.context:
            matches = list(entries)
            stats = store.last_query_stats  # context() runs queries of its own
            _write_with_context(store, matches, args.context, writer)
        else:
            for e in entries:
                writer.write(e)
            stats = store.last_query_stats
        writer.flush()
        elapsed = time.perf_counter() - t0
        if args.stats:
            _print_stats(stats, err, elapsed)
        if (limit and writer.count >= limit and r.is_tty(err) and args.output == "text"
                and not getattr(args, "quiet_hints", False)):
            err.write(r.Palette(r.use_color(args.color, err))(
                f"(showing the {'oldest' if args.forward else 'newest'} {limit} lines; "
                f"--limit 0 for all)", "grey") + "\n")
        return 0
    finally:
        store.close()


def _print_stats(st, err, elapsed: float | None = None) -> None:
    if st is None:
        err.write("stats: not available for this query\n")
        return
    secs = st.seconds if st.seconds else (elapsed or 0.0)
    err.write(
        f"stats: {st.streams} streams, {st.chunks} chunks, {st.blocks_read} blocks read "
        f"({st.blocks_skipped} skipped by time, {st.blocks_filtered} by token filter), "
        f"{r.format_bytes(st.bytes_read)} read, "
        f"{r.format_bytes(st.bytes_decompressed)} decompressed, "
        f"{r.format_count(st.lines_scanned)} lines scanned, "
        f"{r.format_count(st.lines_matched)} matched, {r.format_count(st.lines_returned)} "
        f"returned, {secs * 1000:.1f} ms{' (fast path)' if st.fast_path else ''}\n")


def _data_bounds(store, selector: str | None) -> tuple[int, int] | None:
    st = store.stats(selector)
    if st.min_ts is None:
        return None
    return st.min_ts, st.max_ts


def _span(store, selector, start, end, since_given: bool) -> tuple[int, int] | None:
    """The range a histogram or metric query covers when the user left ends open.

    An open start is the oldest matching entry; an open end the newest (or
    now, when the range was given as ``--since``/``--from``).  None when the
    store has no data for ``selector`` and the range is open.
    """
    bounds = _data_bounds(store, selector)
    if bounds is None and (start is None or end is None):
        return None
    lo = start if start is not None else bounds[0]
    if end is not None:
        hi = end
    else:
        hi = bounds[1] + 1
        if since_given:
            hi = max(hi, time.time_ns())
    return lo, max(hi, lo + 1)


def _print_volume(store, query, expr, start, end, args, out, color: bool) -> None:
    from chunkstore import logql

    pal = r.Palette(color)
    span = _span(store, logql.to_string(expr.selector), start, end, start is not None)
    if span is None:
        out.write(pal("log volume: no data in range", "grey") + "\n")
        return
    lo, hi = span
    width = (r.term_width() if r.is_tty(out) else 80) - 10
    step = nice_step((hi - lo) / max(10, width))
    b0 = lo - lo % step
    n = max(1, -(-(hi - b0) // step))
    counts = [0] * n
    total = 0
    for e in store.query(query, lo, hi, limit=None, direction="forward"):
        i = (e.ts - b0) // step
        if 0 <= i < n:
            counts[i] += 1
        total += 1
    ascii_only = not r.unicode_ok(out)
    top = max(counts)
    out.write(pal(f"log volume: {r.format_count(total)} lines, {r.format_ts_short(b0)} .. "
                  f"{r.format_ts_short(b0 + n * step)}, {r.format_duration_ns(step)} buckets",
                  "bold") + "\n")
    rows = r.bar_chart(counts, height=max(1, min(5, top)), ascii_only=ascii_only)
    label_w = max(len(r.format_count(top)), 1)
    for i, row in enumerate(rows):
        label = r.format_count(top) if i == 0 else ("0" if i == len(rows) - 1 else "")
        if len(rows) == 1:
            label = r.format_count(top)
        out.write(f"{label.rjust(label_w)} {'|' if ascii_only else '│'}{pal(row, 'green')}\n")
    left = r.format_ts_short(b0)
    right = r.format_ts_short(b0 + n * step)
    gap = max(1, n + 1 - len(left) - len(right))
    out.write(" " * (label_w + 1) + pal(left + " " * gap + right, "grey") + "\n\n")


# ---------------------------------------------------------------------------
# metric queries

def _fmt_value(v: float, digits: int = 6) -> str:
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.{digits}g}"


def _metric_query(store, args, start, end, out, err) -> int:
    try:
        import chunkstore.metric_query  # noqa: F401
    except ImportError:
        raise CLIError("metric queries are not available in this version of chunkstore "
                       "(chunkstore.metric_query is missing)", 1) from None
    color = r.use_color(args.color, out)
    fmt = args.output
    if args.instant:
        at = end if end is not None else time.time_ns()
        res = store.query_instant(args.query, at)
        if isinstance(res, (int, float)):
            if fmt == "jsonl":
                out.write(json.dumps({"time": r.format_ns(at), "ts": at, "value": res}) + "\n")
            else:
                out.write(_fmt_value(res) + "\n")
            return 0
        samples = sorted(res, key=lambda s: sorted(s.labels.items()))
        if fmt == "jsonl":
            for s in samples:
                out.write(json.dumps({"labels": dict(s.labels), "ts": s.ts or at,
                                      "value": s.value}) + "\n")
        elif fmt == "raw":
            for s in samples:
                out.write(f"{r.format_labels(s.labels)}\t{_fmt_value(s.value)}\n")
        else:
            if not samples:
                err.write("no series\n")
            r.print_table(["SERIES", "VALUE"],
                          [[r.format_labels(s.labels), _fmt_value(s.value)] for s in samples],
                          out, color=color)
        return 0
    span = _span(store, None, start, end, start is not None)
    if span is None:
        if fmt == "text":
            err.write("no data in range\n")
        return 0
    lo, hi = span
    step = args.step or nice_step((hi - lo) / 60, nearest=True)
    lo = lo - lo % step
    if hi % step:
        hi = hi - hi % step + step
    series = store.query_range(args.query, lo, hi, step)
    if isinstance(series, (int, float)):  # a scalar expression
        series = []
    series = sorted(series, key=lambda s: sorted(s.labels.items()))
    if fmt == "jsonl":
        for s in series:
            out.write(json.dumps({"labels": dict(s.labels),
                                  "points": [[t, v] for t, v in s.points]}) + "\n")
        return 0
    if fmt == "raw":
        for s in series:
            lbl = r.format_labels(s.labels)
            for t, v in s.points:
                out.write(f"{lbl}\t{r.format_ns(t)}\t{_fmt_value(v)}\n")
        return 0
    pal = r.Palette(color)
    n_points = int((hi - lo) // step) + 1
    out.write(pal(f"{len(series)} series, {r.format_ts_short(lo)} .. {r.format_ts_short(hi)}, "
                  f"step {r.format_duration_ns(step)} ({n_points} points)", "bold") + "\n")
    tty = r.is_tty(out)
    headers = ["SERIES", "POINTS", "MIN", "MAX", "AVG", "LAST"]
    if tty:
        headers.append("TREND")
    rows = []
    ascii_only = not r.unicode_ok(out)
    for s in series:
        vals = [v for _t, v in s.points if v == v]
        row = [r.format_labels(s.labels), len(s.points),
               _fmt_value(min(vals)) if vals else "", _fmt_value(max(vals)) if vals else "",
               _fmt_value(sum(vals) / len(vals), 4) if vals else "",
               _fmt_value(s.points[-1][1]) if s.points else ""]
        if tty:
            row.append(_dense_sparkline(s.points, lo, step, n_points, ascii_only))
        rows.append(row)
    r.print_table(headers, rows, out, color=color, align="lrrrrr" + ("l" if tty else ""))
    return 0


def _dense_sparkline(points, lo: int, step: int, n: int, ascii_only: bool) -> str:
    """A sparkline over every step of the range (missing points drawn as 0)."""
    vals = [0.0] * n
    for t, v in points:
        i = (t - lo) // step
        if 0 <= i < n and v == v:
            vals[i] = v
    return r.sparkline(vals, ascii_only=ascii_only, width=40)


# ---------------------------------------------------------------------------
# tail

def cmd_tail(args, out, err) -> int:
    from chunkstore import logql

    expr = parse_query(args.query)
    if logql.is_metric(expr):
        raise CLIError("tail: needs a log query (a selector and pipeline), not a metric query", 1)
    try:
        store = open_store(args.store)
    except KeyboardInterrupt:
        return 0
    writer = EntryWriter(out, args.output, color=r.use_color(args.color, out) and
                         args.output == "text", needles=line_needles(expr),
                         no_labels=args.no_labels)
    try:
        seen: set = set()
        if args.since is not None:
            start = time.time_ns() - args.since
        else:
            last = list(store.query(args.query, limit=args.lines)) if args.lines else []
            for e in reversed(last):
                writer.write(e)
            writer.flush()
            start = last[0].ts if last else time.time_ns()
            seen = {_key(e) for e in last if e.ts == start}
        for e in store.tail(args.query, start=start, poll_interval=args.interval):
            if seen:
                if e.ts == start and _key(e) in seen:
                    continue
                if e.ts > start:
                    seen = set()
            writer.write(e)
            writer.flush()
    except KeyboardInterrupt:
        try:
            writer.flush()
        except (OSError, ValueError):
            pass
        return 0
    finally:
        try:
            store.close()
        except KeyboardInterrupt:
            pass
    return 0  # pragma: no cover - tail only ends by interruption


# ---------------------------------------------------------------------------
# labels, series, stats

def cmd_labels(args, out, err) -> int:
    start, end = resolve_range(args)
    store = open_store(args.store)
    try:
        if args.name:
            items = store.label_values(args.name, start, end, query=args.query)
        else:
            if args.query:
                items = sorted({k for s in store.series(args.query, start, end) for k in s})
            else:
                items = store.labels(start, end)
    finally:
        store.close()
    for x in items:
        out.write((json.dumps(x, ensure_ascii=False) if args.output == "jsonl" else x) + "\n")
    return 0


def cmd_series(args, out, err) -> int:
    parse_query(args.selector)
    start, end = resolve_range(args)
    store = open_store(args.store)
    try:
        items = store.series(args.selector, start, end)
    finally:
        store.close()
    for s in items:
        if args.output == "jsonl":
            out.write(json.dumps(dict(s), ensure_ascii=False) + "\n")
        else:
            out.write(r.format_labels(s) + "\n")
    return 0


def cmd_stats(args, out, err) -> int:
    if args.selector:
        parse_query(args.selector)
    start, end = resolve_range(args)
    store = open_store(args.store)
    try:
        st = store.stats(args.selector, start, end)
    finally:
        store.close()
    if args.output == "jsonl":
        obj = {k: getattr(st, k) for k in ("streams", "chunks", "entries", "bytes_raw",
                                           "bytes_stored", "head_entries", "head_bytes",
                                           "min_ts", "max_ts")}
        obj["compression_ratio"] = round(st.compression_ratio, 4)
        out.write(json.dumps(obj) + "\n")
        return 0
    rows = [
        ("streams", r.format_count(st.streams)),
        ("chunks", r.format_count(st.chunks)),
        ("entries", f"{r.format_count(st.entries)} ({r.format_count(st.head_entries)} in open "
                    f"head blocks)"),
        ("raw bytes", r.format_bytes(st.bytes_raw)),
        ("stored bytes", f"{r.format_bytes(st.bytes_stored)} (sealed chunks)"),
        ("compression", f"{(st.bytes_raw - st.head_bytes) / st.bytes_stored:.2f}x (sealed "
                        f"chunks)" if st.bytes_stored else "-"),
    ]
    if st.min_ts is not None:
        rows.append(("time range", f"{r.format_ts_short(st.min_ts)} .. "
                                   f"{r.format_ts_short(st.max_ts)} "
                                   f"({r.format_duration_ns(st.max_ts - st.min_ts)})"))
    else:
        rows.append(("time range", "-"))
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        out.write(f"{k.ljust(w)}  {v}\n")
    return 0
