"""``chunkstore demo``: a synthetic corpus in a new store, then a tour of queries.

The corpus is :mod:`chunkstore.corpus` (logfmt, JSON, nginx and syslog lines
from six made-up services in prod and staging), laid out so that it ends
*now*: ``--since 1h`` and ``tail`` work on the demo store right away.  Each
step of the tour prints the exact command and then runs it in-process
through :func:`chunkstore.cli.run_command` (long lines are cut to the
terminal width; the command itself prints them whole).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import tempfile
import time

import chunkstore
from chunkstore import cli_render as r
from chunkstore.cli import CLIError, run_command

__all__ = ["cmd_demo", "ingest_corpus"]

_NS = 1_000_000_000


def ingest_corpus(path: str, *, n_lines: int, hours: float, seed: int,
                  end_ns: int | None = None) -> tuple[int, float]:
    """Push the synthetic corpus into a new store at ``path``; ``(lines, seconds)``."""
    from chunkstore import corpus

    end = time.time_ns() if end_ns is None else end_ns
    end -= end % _NS
    duration = max(_NS, int(hours * 3600 * _NS))
    t0 = time.monotonic()
    accepted = 0
    with chunkstore.open(path, fsync="never") as store:
        for labels, entries in corpus.stream_batches(batch_size=2000, seed=seed,
                                                     start_ns=end - duration,
                                                     duration_ns=duration, n_lines=n_lines):
            accepted += store.push([(labels, entries)]).accepted
    return accepted, time.monotonic() - t0


def _pick_request_id(store_path: str) -> str | None:
    """A request id from the middle of the web stream: a needle for the haystack query."""
    with chunkstore.open(store_path, read_only=True) as s:
        st = s.stats('{app="web", env="prod"}')
        if st.min_ts is None:
            return None
        mid = (st.min_ts + st.max_ts) // 2
        for e in s.query('{app="web", env="prod"} |= "req-"', mid, None, limit=50,
                         direction="forward"):
            word = e.line.rsplit(" ", 1)[-1]
            if word.startswith("req-"):
                return word
    return None


def cmd_demo(args, out, err) -> int:
    if args.dir:
        path = args.dir
        if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
            raise CLIError(f"demo: {path} exists and is not empty; give a new or empty "
                           f"directory (or none for a temporary one)", 2)
    else:
        path = os.path.join(tempfile.mkdtemp(prefix="chunkstore-demo-"), "store")
    if args.lines < 1:
        raise CLIError("demo: --lines must be at least 1", 2)
    color = r.use_color(args.color, out)
    pal = r.Palette(color)
    q = shlex.quote
    out.write(pal("chunkstore demo", "bold") + f": {r.format_count(args.lines)} synthetic log "
              f"lines (six services x prod/staging: logfmt, JSON, nginx, syslog), the last "
              f"{args.hours:g} h up to now, into {path}\n")
    out.flush()
    n, secs = ingest_corpus(path, n_lines=args.lines, hours=args.hours, seed=args.seed)
    with chunkstore.open(path, read_only=True) as s:
        st = s.stats()
    out.write(f"ingested {r.format_count(n)} lines in {secs:.2f} s "
              f"({r.format_count(int(n / max(secs, 1e-9)))} lines/s): {st.streams} streams, "
              f"{r.format_bytes(st.bytes_raw)} of lines in {r.format_bytes(st.bytes_stored)} "
              f"of chunks ({st.compression_ratio:.1f}x)\n")
    if args.quiet:
        out.write(f"\nstore: {path}\n")
        return 0
    width = r.term_width() if r.is_tty(out) else 150
    needle = _pick_request_id(path) or "req-"
    steps = [
        ("What is in the store (answered from the index, no data read)",
         ["stats", path]),
        ("The values of one label", ["labels", path, "app"]),
        ("The newest lines of one stream (like logcli: newest first, --forward for oldest)",
         ["query", path, '{app="api", env="prod"}', "--limit", "5"]),
        ("A needle in the haystack: one request id across every prod stream "
         "(--stats: what the scan cost)",
         ["query", path, f'{{env="prod"}} |= "{needle}"', "--stats"]),
        ("Parse logfmt and filter on a field",
         ["query", path, '{app="api"} | logfmt | status >= 500', "--limit", "5"]),
        ("Parse JSON and rewrite the line with a template",
         ["query", path, '{app="payments"} | json | level="error" | line_format '
                         '"{{.msg}}: provider={{.provider}} amount={{.amount_cents}} '
                         '{{.currency}} user={{.user_id}}"', "--limit", "5"]),
        ("Lines around a match, from the same stream (grep -C)",
         ["query", path, '{app="auth", env="prod"} |= "Failed password"', "--limit", "2",
          "--context", "2"]),
        ("A log-volume histogram above the lines",
         ["query", path, '{env="prod"} |= "error"', "--volume", "--limit", "3"]),
    ]
    if importlib.util.find_spec("chunkstore.metric_query") is not None:
        steps.append(("A metric query: errors per app per 5 minutes, as a table with trends",
                      ["query", path,
                       'sum by (app) (count_over_time({env="prod"} |= "error" [5m]))']))
    for i, (title, argv) in enumerate(steps, 1):
        out.write("\n" + pal(f"{i}. {title}", "bold") + "\n")
        out.write(pal("$ " + "chunkstore " + " ".join(q(a) for a in argv), "green") + "\n")
        out.flush()
        err.flush()
        status = run_command(argv, out, err, truncate=width, color=args.color,
                             quiet_hints=True)
        out.flush()
        if status not in (0,):
            out.write(pal(f"(exit status {status})", "grey") + "\n")
    sp = q(path)
    out.write("\n" + pal("Try next", "bold") + f" (the store stays at {path}):\n")
    for cmd, what in [
        (f"chunkstore query {sp} '{{app=\"web\"}} |= \" 503 \"' --since 30m",
         "503s of the last 30 min"),
        (f"chunkstore query {sp} '{{app=\"api\"}} | logfmt | duration > 500ms' -o jsonl",
         "slow requests as JSON lines"),
        (f"chunkstore query {sp} '{{app=~\"web|gateway\"}}' -o raw --limit 0 | wc -l",
         "every nginx line, for pipes"),
        (f"chunkstore tail {sp} '{{env=\"prod\"}} |= \"error\"'", "follow (Ctrl-C to stop)"),
        (f"chunkstore series {sp} '{{env=\"prod\"}}'", "the streams a selector matches"),
        (f"chunkstore inspect {sp}", "streams, chunks and compression"),
        (f"chunkstore verify {sp}", "check every checksum"),
        (f"my-program | chunkstore ingest {sp} --labels app=mine,env=dev", "add your own lines"),
    ]:
        out.write(f"  {cmd}\n      {pal(what, 'grey')}\n")
    if not args.dir:
        out.write(pal(f"(remove it with: rm -rf {q(os.path.dirname(path))})", "grey") + "\n")
    return 0
