"""``chunkstore ingest``: append lines from files or stdin to a store.

One entry per line, pushed in batches through ``Store.push`` (the collector
fast path).  Timestamps are the time of reading, or read from each line
(``--ts-regex`` / ``--ts-format``, see :func:`chunkstore.cli_render.parse_timestamp_text`);
a line without a readable timestamp takes the previous line's + 1 ns, as
Promtail's timestamp stage does by default (``action_on_failure: fudge``),
so stack traces stay with the line that started them.  ``--json`` reads
Loki push API bodies instead.  Rejected entries are counted by reason; the
command fails (status 1) only when nothing was stored and something was
rejected.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
import time
from collections import Counter

from chunkstore import cli_render as r
from chunkstore.cli import CLIError, open_store

__all__ = ["cmd_ingest", "parse_labels_arg", "TimestampReader"]

_LABEL_ITEM = re.compile(
    r'\s*(?P<k>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<v>"(?:[^"\\]|\\.)*"|[^,]*?)\s*(?:,|\Z)')


def parse_labels_arg(text: str) -> dict[str, str]:
    """``app=x,env=y`` (values may be "quoted") or a selector ``{app="x", env="y"}``."""
    t = text.strip()
    if t.startswith("{"):
        from chunkstore import logql
        from chunkstore.errors import QueryError

        try:
            sel = logql.parse_selector(t)
        except QueryError as exc:
            raise CLIError(f"--labels: {exc}", 2) from None
        out = {}
        for m in sel.matchers:
            if m.op != "=":
                raise CLIError(f"--labels: only name=\"value\" pairs, not {m.name}{m.op}", 2)
            out[m.name] = m.value
        return out
    out = {}
    pos = 0
    while pos < len(t):
        m = _LABEL_ITEM.match(t, pos)
        if not m or m.end() == pos:
            raise CLIError(f"--labels: cannot read {t[pos:]!r} (expected name=value,"
                           f"name=value)", 2)
        v = m["v"]
        if v.startswith('"'):
            v = json.loads(v)
        out[m["k"]] = v
        pos = m.end()
    if not out:
        raise CLIError("--labels: no labels given (expected name=value,...)", 2)
    return out


class TimestampReader:
    """Finds and parses the timestamp of a line; None when the line has none readable.

    ``problem`` keeps the first parse failure, to explain rejections.
    """

    def __init__(self, regex: str | None, fmt: str | None):
        self.rx = None
        self.fmt = fmt
        self.problem: str | None = None
        if regex is not None:
            try:
                self.rx = re.compile(regex)
            except re.error as exc:
                raise CLIError(f"--ts-regex: invalid regular expression: {exc}", 2) from None
            if "ts" in self.rx.groupindex:
                self.group: int | str = "ts"
            else:
                self.group = 1 if self.rx.groups else 0
        self.tokens = 1
        if fmt is not None and fmt.lower() not in r.NAMED_FORMATS:
            self.tokens = max(1, len(fmt.split()))

    @property
    def active(self) -> bool:
        return self.rx is not None or self.fmt is not None

    def __call__(self, line: str) -> int | None:
        if self.rx is not None:
            m = self.rx.search(line)
            if m is None:
                if self.problem is None:
                    self.problem = "--ts-regex did not match"
                return None
            text = m.group(self.group)
            if text is None:
                return None
        else:
            text = " ".join(line.split(None, self.tokens)[: self.tokens])
        try:
            return r.parse_timestamp_text(text, self.fmt)
        except r.TimeParseError as exc:
            if self.problem is None:
                self.problem = str(exc)
            return None


class _Batcher:
    """Pending entries per stream, pushed when ``size`` are waiting."""

    def __init__(self, store, size: int):
        self.store = store
        self.size = max(1, size)
        self.pending: dict[tuple, tuple[dict, list]] = {}
        self.n_pending = 0
        self.accepted = 0
        self.rejected: Counter = Counter()
        self.streams: set = set()

    def add(self, labels: dict, key: tuple, entry: tuple) -> None:
        slot = self.pending.get(key)
        if slot is None:
            slot = self.pending[key] = (labels, [])
            self.streams.add(key)
        slot[1].append(entry)
        self.n_pending += 1
        if self.n_pending >= self.size:
            self.push()

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] += n

    def push(self) -> None:
        if not self.pending:
            return
        batch = [v for v in self.pending.values() if v[1]]
        self.pending = {}
        self.n_pending = 0
        result = self.store.push(batch)
        self.accepted += result.accepted
        for _labels, _ts, reason in result.rejected:
            self.rejected[_reason_group(str(reason))] += 1


def _reason_group(reason: str) -> str:
    """Group rejection reasons that differ only in the numbers they quote."""
    return re.sub(r"\d[\d,._]*", "N", reason)


def _open_input(path: str):
    """``(line iterator source, raw file for position, total bytes or None, label)``."""
    if path == "-":
        return sys.stdin.buffer, None, None, "stdin"
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise CLIError(f"{path}: {exc.strerror or exc}", 1) from None
    size = os.fstat(raw.fileno()).st_size
    head = raw.read(2)
    raw.seek(0)
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw), raw, size, os.path.basename(path)
    return raw, raw, size, os.path.basename(path)


def cmd_ingest(args, out, err) -> int:
    extra = parse_labels_arg(args.labels) if args.labels else {}
    if not args.json and not extra:
        raise CLIError("ingest: --labels is required (for example --labels app=myapp,env=dev)",
                       2)
    if args.json and (args.ts_regex or args.ts_format):
        raise CLIError("ingest: --ts-regex/--ts-format do not apply to --json input", 2)
    tsr = TimestampReader(args.ts_regex, args.ts_format)
    files = args.files or ["-"]
    store = open_store(args.store, write=True, create=True)
    batcher = _Batcher(store, args.batch_size)
    t0 = time.monotonic()
    stats = Counter()
    try:
        for path in files:
            src, raw, size, label = _open_input(path)
            progress = r.Progress(label, size, err,
                                  enabled=not args.no_progress and raw is not None)
            try:
                if args.json:
                    _ingest_json(src, path, extra, batcher, stats)
                else:
                    _ingest_lines(src, raw, extra, tsr, batcher, stats, progress)
            finally:
                progress.close()
                if raw is not None:
                    raw.close()
        batcher.push()
    finally:
        store.close()
    elapsed = time.monotonic() - t0
    n_rej = sum(batcher.rejected.values())
    rate = batcher.accepted / elapsed if elapsed > 0 else 0
    speed = f" ({r.format_count(int(rate))} lines/s)" if elapsed >= 0.5 else ""
    err.write(f"ingested {_n(batcher.accepted, 'line')} into {args.store} "
              f"({len(batcher.streams)} stream{'s' if len(batcher.streams) != 1 else ''}) in "
              f"{elapsed:.2f} s{speed}\n")
    if stats["fudged"]:
        err.write(f"{_n(stats['fudged'], 'line')} without a readable timestamp took "
                  f"the previous line's time\n")
    if stats["blank"]:
        err.write(f"skipped {_n(stats['blank'], 'blank line')}\n")
    if n_rej:
        err.write(f"rejected {r.format_count(n_rej)}:\n")
        for reason, n in batcher.rejected.most_common(20):
            err.write(f"  {r.format_count(n):>9}  {reason}\n")
        if len(batcher.rejected) > 20:
            err.write(f"  ... and {len(batcher.rejected) - 20} more reasons\n")
    return 1 if batcher.accepted == 0 and n_rej else 0


def _n(count: int, noun: str) -> str:
    return f"{r.format_count(count)} {noun}{'' if count == 1 else 's'}"


def _ingest_lines(src, raw, labels: dict, tsr: TimestampReader, batcher: _Batcher,
                  stats: Counter, progress: r.Progress) -> None:
    key = tuple(sorted(labels.items()))
    prev: int | None = None
    n = 0
    use_ts = tsr.active
    tell = raw.tell if raw is not None else None
    for line in src:
        if line.endswith(b"\n"):
            line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            stats["blank"] += 1
            continue
        if use_ts:
            ts = tsr(line.decode("utf-8", "replace"))
            if ts is None:
                if prev is None:
                    batcher.reject(f"no timestamp ({tsr.problem or 'not found'}) and no "
                                   f"earlier line to take one from")
                    continue
                stats["fudged"] += 1
                ts = prev + 1
        else:
            ts = time.time_ns()
            if prev is not None and ts <= prev:
                ts = prev + 1
        prev = ts
        batcher.add(labels, key, (ts, line))
        n += 1
        if n % 1000 == 0 and progress.active:
            progress.update(tell() if tell else 0, n)
    if progress.active:
        progress.update(tell() if tell else 0, n)


def _ingest_json(src, path: str, extra: dict, batcher: _Batcher, stats: Counter) -> None:
    data = src.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path}: not UTF-8 JSON: {exc}", 1) from None
    docs = []
    try:
        doc = json.loads(text)
        docs = doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError:
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise CLIError(f"{path}: line {i}: not JSON: {exc.msg} (column {exc.colno})",
                               1) from None
    for doc in docs:
        streams = doc.get("streams") if isinstance(doc, dict) else None
        if not isinstance(streams, list):
            raise CLIError(f"{path}: not Loki push format (expected {{\"streams\": [...]}})", 1)
        for s in streams:
            if not isinstance(s, dict) or not isinstance(s.get("stream", {}), dict):
                batcher.reject("stream is not an object with \"stream\" and \"values\"")
                continue
            labels = {str(k): str(v) for k, v in (s.get("stream") or {}).items()}
            labels.update(extra)
            key = tuple(sorted(labels.items()))
            values = s.get("values") or []
            if not isinstance(values, list):
                batcher.reject("\"values\" is not a list")
                continue
            for v in values:
                if not isinstance(v, list) or len(v) not in (2, 3):
                    batcher.reject("value is not [\"<ns>\", \"line\"(, {metadata})]")
                    continue
                try:
                    ts = int(v[0])
                except (TypeError, ValueError):
                    batcher.reject("invalid timestamp (expected a string of Unix nanoseconds)")
                    continue
                line = v[1]
                if not isinstance(line, str):
                    batcher.reject("line is not a string")
                    continue
                if len(v) == 3 and v[2]:
                    if not isinstance(v[2], dict):
                        batcher.reject("structured metadata is not an object")
                        continue
                    meta = {str(a): str(b) for a, b in v[2].items()}
                    batcher.add(labels, key, (ts, line, meta))
                else:
                    batcher.add(labels, key, (ts, line))
