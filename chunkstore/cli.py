"""The ``chunkstore`` command line: inspect, query, tail and maintain stores from a terminal.

Subcommands (``chunkstore COMMAND --help`` shows each one's options and examples):

``demo [DIR]``
    ingest a bundled synthetic corpus into a new store and run a tour of queries
``query STORE QUERY``
    run a LogQL query: log lines (text, jsonl or raw; ``--context``,
    ``--volume``) or, for a metric query, a table of series with sparklines
``tail STORE QUERY``
    follow new matching lines, like ``tail -f`` (Ctrl-C ends it, status 0)
``labels STORE [NAME]``
    label names, or the values of one label
``series STORE SELECTOR``
    the streams a selector matches
``stats STORE [SELECTOR]``
    streams, chunks, entries, bytes and compression, from the index
``ingest STORE [FILE...]``
    append lines from files or stdin (``--labels``, ``--ts-regex``,
    ``--ts-format``, ``--json`` for Loki push format)
``inspect FILE|STORE``
    the structure of a segment file or of a whole store (chunks, blocks,
    codecs, time ranges, bytes, ratios, checksums)
``verify STORE``
    check every checksum; lists damaged files and offsets
``compact STORE``, ``retention STORE``, ``delete STORE QUERY``
    maintenance (when the library version provides it); ``retention`` takes
    the policy as options (``--period``, ``--rule``, ``--max-bytes``), since a
    store does not record the policy of the program that writes it

Exit status: 0 on success, 1 on a query error, a failed check or a store
error, 2 on bad usage (including a store that does not exist).  Errors are
one line on stderr (``chunkstore: error: ...``); ``--debug`` adds the
traceback.  The handlers live in ``cli_query``, ``cli_ingest``,
``cli_inspect`` and ``cli_demo``; terminal rendering in ``cli_render``.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main", "run_command", "build_parser", "CLIError", "open_store"]

PROG = "chunkstore"


class CLIError(Exception):
    """A command failed: ``message`` goes to stderr, ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.message = message
        self.code = code


def store_exists(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "index.log"))


def open_store(path: str, *, write: bool = False, create: bool = False, **options):
    """Open the store at ``path``: read-only by default, so a running writer is no obstacle.

    A missing store is a usage error (exit 2) unless ``create``; a store
    another process writes to is a clear error for ``write`` (exit 1).
    ``options`` go to :func:`chunkstore.open` (``retention`` uses this).
    """
    import chunkstore

    if not create and not store_exists(path):
        if os.path.exists(path) and not os.path.isdir(path):
            raise CLIError(f"{path}: not a store directory (for a segment file use "
                           f"'chunkstore inspect')", 2)
        raise CLIError(f"no store at {path} (create one with 'chunkstore ingest {path} ...' "
                       f"or 'chunkstore demo {path}')", 2)
    try:
        if write:
            return chunkstore.open(path, **options)
        return chunkstore.open(path, read_only=True, **options)
    except chunkstore.StoreLockedError:
        raise CLIError(f"store {path} is in use by another writer (stop it, or use a "
                       f"read-only command)", 1) from None


# ---------------------------------------------------------------------------
# argument types (errors become argparse usage errors, exit 2)

def _time_arg(text: str) -> int:
    from chunkstore.cli_render import TimeParseError, parse_time

    try:
        return parse_time(text)
    except TimeParseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration_arg(text: str) -> int:
    from chunkstore.cli_render import TimeParseError, parse_duration

    try:
        return parse_duration(text)
    except TimeParseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


# ---------------------------------------------------------------------------
# the parser

_TIME_HELP = """\
times: --from/--to take RFC 3339 (2024-01-01T10:00:00Z; no zone = UTC; a
bare date = its midnight), Unix seconds (1704103200, 1704103200.5), Unix
milli/micro/nanoseconds (told apart by size: the "ts" of --output jsonl can
be pasted back), or now / now-1h / now-15m.  --since D means --from now-D.
The default range is ALL TIME (an embedded store usually holds a bounded
history; use --since 1h for logcli's default)."""


def _fmt() -> type:
    return argparse.RawDescriptionHelpFormatter


def _add_range(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("time range (default: all time)")
    g.add_argument("--from", dest="start", type=_time_arg, metavar="T",
                   help="start, inclusive (RFC 3339, Unix time, or now-1h)")
    g.add_argument("--to", dest="end", type=_time_arg, metavar="T",
                   help="end, exclusive (default: unbounded)")
    g.add_argument("--since", type=_duration_arg, metavar="D",
                   help="shorthand for --from now-D (15m, 1h, 2d); --from wins if both")


def _add_color(p: argparse.ArgumentParser) -> None:
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour output: auto (a terminal, unless NO_COLOR is set), always, never")
    p.add_argument("--no-color", dest="color", action="store_const", const="never",
                   help="same as --color never")


def build_parser() -> argparse.ArgumentParser:
    from chunkstore import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")

    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=_fmt(),
        description="chunkstore: an embeddable log store (Loki's ingester, chunk store and "
                    "LogQL querier as a library).\nThis command inspects, queries, tails and "
                    "maintains a store directory.",
        epilog="""\
start here:
  chunkstore demo                         ingest a synthetic corpus and run a tour
  chunkstore query STORE '{app="api"} |= "error"'
  chunkstore tail STORE '{env="prod"} | logfmt | status >= 500'
  some-program | chunkstore ingest STORE --labels app=myapp,env=dev

exit status: 0 ok, 1 query error or failed check, 2 bad usage.
Run 'chunkstore COMMAND --help' for a command's options and examples.""")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name, help_, epilog, description=None):
        return sub.add_parser(name, help=help_, description=description or help_,
                              epilog=epilog, formatter_class=_fmt(), parents=[common])

    # demo ---------------------------------------------------------------
    p = add("demo", "ingest a synthetic corpus into a new store and tour some queries", """\
examples:
  chunkstore demo                  a temporary store (its path is printed at the end)
  chunkstore demo ./demo-store     keep the store in ./demo-store (must be new or empty)
  chunkstore demo --lines 50000    a smaller corpus""")
    p.add_argument("dir", nargs="?", metavar="DIR",
                   help="where to create the store (default: a new temporary directory)")
    p.add_argument("--lines", type=_nonneg_int, default=200_000,
                   help="corpus size in lines (default 200000, about 3 hours of 10 streams)")
    p.add_argument("--hours", type=float, default=3.0,
                   help="hours of log time, ending now (default 3)")
    p.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    p.add_argument("--quiet", action="store_true", help="only ingest; skip the query tour")
    _add_color(p)

    # query --------------------------------------------------------------
    p = add("query", "run a LogQL query (log lines, or a metric table)", _TIME_HELP + """

examples:
  chunkstore query STORE '{app="api"}'                        newest 100 lines
  chunkstore query STORE '{app="api"} |= "timeout"' --since 1h --limit 0
  chunkstore query STORE '{app="api"} | logfmt | status >= 500' --forward -o jsonl
  chunkstore query STORE '{app="auth"} |= "Failed password"' --context 3
  chunkstore query STORE '{env="prod"} |= "error"' --volume
  chunkstore query STORE 'sum by (app) (count_over_time({env="prod"} |= "error" [5m]))'
  chunkstore query STORE '{app="web"}' -o raw --limit 0 | grep -c ' 404 '

output (-o): text (timestamp, stream labels, line; coloured on a terminal),
jsonl (one {"ts", "time", "labels", "stream", "line"} object per line: "labels"
includes parsed labels and structured metadata), raw (the exact line bytes).
Metric queries: a table of series (min/max/avg/last, sparkline on a terminal);
jsonl gives one {"labels", "points": [[ts_ns, value], ...]} per series.""")
    p.add_argument("store", metavar="STORE", help="store directory")
    p.add_argument("query", metavar="QUERY", help="LogQL log or metric query")
    _add_range(p)
    p.add_argument("--limit", type=_nonneg_int, default=100, metavar="N",
                   help="at most N lines (default 100, like logcli; 0 = no limit)")
    p.add_argument("--forward", action="store_true",
                   help="oldest first (default: newest first)")
    p.add_argument("-o", "--output", choices=("text", "jsonl", "raw"), default="text",
                   help="output format (default text)")
    p.add_argument("--no-labels", action="store_true", help="text output: omit the labels")
    p.add_argument("--context", "-C", type=_nonneg_int, default=0, metavar="N",
                   help="N lines before and after each match, from the same stream ('--' "
                        "between groups, like grep -C)")
    p.add_argument("--volume", action="store_true",
                   help="show a log-volume histogram of all matching lines over the range")
    p.add_argument("--stats", action="store_true",
                   help="print what the query read (blocks, bytes, lines) to stderr")
    p.add_argument("--step", type=_duration_arg, metavar="D",
                   help="metric range query resolution (default: range/60, rounded)")
    p.add_argument("--instant", action="store_true",
                   help="metric query: evaluate once, at --to (default now)")
    _add_color(p)

    # tail ---------------------------------------------------------------
    p = add("tail", "follow new matching lines (Ctrl-C to stop)", """\
examples:
  chunkstore tail STORE '{app="api"}'                   last 10 lines, then follow
  chunkstore tail STORE '{env="prod"} |= "error"' --since 5m
  chunkstore tail STORE '{app="payments"} | json | level="error"' -o jsonl

The store is opened read-only: tail follows what the writing process
flushes (a store's writer makes data visible to readers on flush()).""")
    p.add_argument("store", metavar="STORE")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--since", type=_duration_arg, metavar="D",
                   help="first print every matching line of the last D")
    p.add_argument("-n", "--lines", type=_nonneg_int, default=10, metavar="N",
                   help="first print the last N matching lines (default 10; ignored with "
                        "--since)")
    p.add_argument("-o", "--output", choices=("text", "jsonl", "raw"), default="text")
    p.add_argument("--no-labels", action="store_true", help="text output: omit the labels")
    p.add_argument("--interval", type=float, default=0.2, metavar="SECONDS",
                   help="poll interval (default 0.2)")
    _add_color(p)

    # labels / series / stats ---------------------------------------------
    p = add("labels", "list label names, or the values of one label", """\
examples:
  chunkstore labels STORE                   every label name
  chunkstore labels STORE app               every value of app
  chunkstore labels STORE app --query '{env="prod"}'""")
    p.add_argument("store", metavar="STORE")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--query", metavar="SELECTOR", help="only streams matching SELECTOR")
    p.add_argument("-o", "--output", choices=("text", "jsonl"), default="text")
    _add_range(p)

    p = add("series", "list the streams a selector matches", """\
examples:
  chunkstore series STORE '{env="prod"}'
  chunkstore series STORE '{app=~"api|web"}' -o jsonl""")
    p.add_argument("store", metavar="STORE")
    p.add_argument("selector", metavar="SELECTOR")
    p.add_argument("-o", "--output", choices=("text", "jsonl"), default="text")
    _add_range(p)

    p = add("stats", "what a store (or a selector's part of it) holds", """\
examples:
  chunkstore stats STORE
  chunkstore stats STORE '{app="api"}' --since 1h
  chunkstore stats STORE -o jsonl""")
    p.add_argument("store", metavar="STORE")
    p.add_argument("selector", nargs="?", metavar="SELECTOR")
    p.add_argument("-o", "--output", choices=("text", "jsonl"), default="text")
    _add_range(p)

    # ingest ---------------------------------------------------------------
    p = add("ingest", "append lines from files or stdin", """\
One entry per line (blank lines are skipped, a trailing \\r is dropped).
Timestamps are the time of reading unless --ts-regex or --ts-format says
where each line's time is; a line without one gets the previous line's
time + 1ns (continuation lines such as stack traces stay in place), or is
rejected when no line before it had one.

examples:
  journalctl -o cat | chunkstore ingest STORE --labels app=system,host=$(hostname)
  chunkstore ingest STORE app.log --labels app=api,env=prod \\
      --ts-regex '^(\\S+)'                         RFC 3339 / Unix time first
  chunkstore ingest STORE access.log --labels app=nginx \\
      --ts-regex '\\[(?P<ts>[^]]+)\\]'             02/Jan/2024:15:04:05 +0000
  chunkstore ingest STORE app.log --labels app=x --ts-format '%Y-%m-%d %H:%M:%S'
  chunkstore ingest STORE push.json --json         Loki push API bodies

--ts-format is a strptime pattern (or rfc3339, unix, unix_ms, unix_us,
unix_ns); alone, it is matched against the start of each line.  Without it,
--ts-regex's match is recognised as RFC 3339, Unix s/ms/us/ns, syslog
("Jan  2 15:04:05") or Apache/nginx ("02/Jan/2024:15:04:05 +0000").
--json reads {"streams": [{"stream": {...}, "values": [["<ns>", "line"
(, {metadata})], ...]}]} documents (one, or one per line); --labels adds to
each stream's labels.  Exit 0 when anything was stored, 1 when nothing was
and something was rejected.""")
    p.add_argument("store", metavar="STORE", help="store directory (created if missing)")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="files to read ('-' or none: stdin; .gz is decompressed)")
    p.add_argument("--labels", "-l", metavar="LABELS",
                   help="stream labels: 'app=x,env=y' or '{app=\"x\"}' (required without --json)")
    p.add_argument("--ts-regex", metavar="REGEX",
                   help="where the timestamp is: group 'ts', else group 1, else the whole match")
    p.add_argument("--ts-format", metavar="FMT", help="how to read it (strptime or a name)")
    p.add_argument("--json", action="store_true", help="input is Loki push-format JSON")
    p.add_argument("--batch-size", type=_nonneg_int, default=1000, metavar="N",
                   help="entries per push (default 1000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    # inspect / verify / maintenance -----------------------------------------
    p = add("inspect", "the structure of a segment file or of a whole store", """\
examples:
  chunkstore inspect STORE                                streams: chunks, blocks,
                                                          codecs, time, ratio, checksums
  chunkstore inspect STORE --chunks                       every chunk of every stream
  chunkstore inspect STORE/segments/2024-01-01/00000001.seg   chunks, blocks, checksums
  chunkstore inspect FILE.seg -o jsonl

Both read every block to check its checksum; a failed one is marked FAILED
and the command exits with status 1 (chunkstore verify also checks the WAL
and the index log, and lists offsets).""")
    p.add_argument("path", metavar="FILE|STORE")
    p.add_argument("--chunks", action="store_true", help="store: list every chunk")
    p.add_argument("--no-blocks", action="store_true", help="file: omit the per-block tables")
    p.add_argument("-o", "--output", choices=("text", "jsonl"), default="text")
    _add_color(p)

    p = add("verify", "check every checksum of a store", """\
examples:
  chunkstore verify STORE && echo intact

Reads every chunk, block, index record and WAL record.  Exit 1 and a list
of damaged files and byte offsets when anything fails.""")
    p.add_argument("store", metavar="STORE")

    p = add("compact", "merge small chunks and reclaim space from deleted data", """\
examples:
  chunkstore compact STORE""")
    p.add_argument("store", metavar="STORE")

    p = add("retention", "expire whole chunks older than a retention policy", """\
examples:
  chunkstore retention STORE --period 7d --dry-run        what would be removed
  chunkstore retention STORE --period 30d --rule '{env="dev"}' 1d
  chunkstore retention STORE --max-bytes 10GiB

A store does not record its retention policy (the program that writes it
passes one to chunkstore.open), so give it here: --period for every stream,
--rule for the streams a selector matches (the most specific rule wins,
then the shorter period), --max-bytes to cap the size (oldest chunks go
first, never the last hour).  Without any of them nothing expires.  Whole
chunks go: a chunk expires when its newest entry is older than the cutoff.""")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--dry-run", action="store_true", help="report only; remove nothing")
    p.add_argument("--period", type=_duration_arg, metavar="D",
                   help="keep every stream this long (7d, 12h); default: forever")
    p.add_argument("--rule", nargs=2, action="append", default=[],
                   metavar=("SELECTOR", "D"),
                   help="keep the streams SELECTOR matches for D instead (repeatable)")
    p.add_argument("--max-bytes", metavar="SIZE",
                   help="cap the store's size (bytes, or 500MiB, 10GiB)")
    p.add_argument("--now", dest="now", type=_time_arg, metavar="T",
                   help="take the cutoffs at T instead of now (RFC 3339, Unix time, now+7d)")

    p = add("delete", "delete the lines a query selects in a time range", """\
examples:
  chunkstore delete STORE '{app="api"} |= "password"' --from 2024-01-01 --to 2024-01-02""")
    p.add_argument("store", metavar="STORE")
    p.add_argument("query", metavar="QUERY", help="selector plus optional line filters")
    p.add_argument("--from", dest="start", type=_time_arg, metavar="T",
                   help="start, inclusive (default: the beginning)")
    p.add_argument("--to", dest="end", type=_time_arg, metavar="T",
                   help="end, exclusive (default: unbounded)")
    return parser


# ---------------------------------------------------------------------------
# running

def _handler(command: str):
    if command in ("query", "tail", "labels", "series", "stats"):
        from chunkstore import cli_query as m
    elif command == "ingest":
        from chunkstore import cli_ingest as m
    elif command == "demo":
        from chunkstore import cli_demo as m
    else:
        from chunkstore import cli_inspect as m
    return getattr(m, "cmd_" + command)


def report_query_error(exc, query: str | None, err) -> None:
    """``chunkstore: error: <message>`` then the query with a caret under the position."""
    err.write(f"{PROG}: error: query: {exc}\n")
    pos = getattr(exc, "pos", None)
    q = getattr(exc, "query", None) or query
    if pos is not None and q is not None and "\n" not in q and 0 <= pos <= len(q):
        err.write(f"  {q}\n  {' ' * pos}^\n")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    return run_command(argv, sys.stdout, sys.stderr)


def run_command(argv: list[str] | None, out, err, **overrides) -> int:
    """Parse ``argv`` and run the command writing to ``out``/``err``; the exit status.

    ``overrides`` set extra attributes on the parsed arguments (the demo
    uses this to cut long lines to the terminal width).  Usage errors exit
    through argparse (``SystemExit(2)``), as from the shell.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    for k, v in overrides.items():
        setattr(args, k, v)
    debug = getattr(args, "debug", False) or bool(os.environ.get("CHUNKSTORE_DEBUG"))
    from chunkstore.errors import ChunkstoreError, CorruptionError, QueryError

    try:
        return _handler(args.command)(args, out, err)
    except CLIError as exc:
        if debug:
            raise
        err.write(f"{PROG}: error: {exc.message}\n")
        return exc.code
    except QueryError as exc:
        if debug:
            raise
        report_query_error(exc, getattr(args, "query", None) or getattr(args, "selector", None),
                           err)
        return 1
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, like grep.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except KeyboardInterrupt:
        if debug:
            raise
        err.write("\n")
        return 130
    except (CorruptionError, ChunkstoreError, OSError, ValueError) as exc:
        if debug:
            raise
        msg = str(exc)
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in msg:
            msg = f"{exc.filename}: {msg}"
        err.write(f"{PROG}: error: {msg}\n")
        return 1
    except Exception as exc:  # a bug: still one line, and the way to the traceback
        if debug:
            raise
        err.write(f"{PROG}: internal error: {type(exc).__name__}: {exc} (run with --debug for "
                  f"the traceback, and please report it)\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
