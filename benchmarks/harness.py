"""Shared helpers for every benchmark script: machine facts, timing, reporting, baselines.

Conventions every ``bench_*.py`` follows:

* ``--smoke``: tiny sizes, finishes in seconds, prints its table but never
  appends to ``RESULTS.md`` (the test suite runs every script this way);
* ``--size MB``: corpus size in MB (10**6 bytes of raw text);
* a run without ``--smoke`` appends one dated section to
  ``benchmarks/RESULTS.md``: the machine, the exact command, and the table
  with ratios against the baselines measured in the same run.  Nobody edits
  numbers into RESULTS.md by hand.

Baselines (each returns seconds first; best of ``repeat`` runs):

``sqlite_ingest(corpus, path)``               -> (seconds, file_bytes)   after os.sync()
``sqlite_like_count(path, needle)``           -> (seconds, count)   LIKE '%needle%' (ignores case)
``sqlite_instr_count(path, needle)``          -> (seconds, count)   instr(line, ?) > 0 (exact, fair)
``sqlite_bucket_count(path, needle, bucket)`` -> (seconds, rows)    GROUP BY stream, ts / bucket
``grep_count(path, needle, ignore_case)``     -> (seconds, count)   grep -F -c, page cache warm
``gzip_size(path, level)``                    -> bytes
``python_in_loop(lines, needle)``             -> (seconds, count)   ``needle in line`` per line
``lz4_ceiling(raw_blocks)``                   -> (compress_s, decompress_s)   python-lz4 alone
"""

# label_sets fills value templates with ``%`` (UP031 off): fastest for 10M sets.
# ruff: noqa: UP031

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat as _repeat
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_DIR",
    "RESULTS_PATH",
    "best_of",
    "command_line",
    "fmt_bytes",
    "fmt_rate",
    "fmt_ratio",
    "grep_count",
    "label_sets",
    "gzip_size",
    "lz4_ceiling",
    "machine_info",
    "machine_line",
    "make_parser",
    "parse_args",
    "python_in_loop",
    "report",
    "settle_page_cache",
    "sqlite_bucket_count",
    "sqlite_ingest",
    "sqlite_instr_count",
    "sqlite_like_count",
    "warm_page_cache",
    "work_dir",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_PATH = BENCH_DIR / "RESULTS.md"

if str(REPO_DIR) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_DIR))


# ---------------------------------------------------------------------------
# the machine


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _version(module: str, attr: str = "__version__") -> str:
    try:
        mod = __import__(module)
    except Exception as e:  # noqa: BLE001 - any import failure is "not available"
        return f"unavailable ({type(e).__name__})"
    v = getattr(mod, attr, None)
    if isinstance(v, tuple):
        v = ".".join(map(str, v))
    if v is None:
        try:
            from importlib.metadata import version

            v = version(module)
        except Exception:  # noqa: BLE001
            v = "?"
    return str(v)


def machine_info() -> dict[str, Any]:
    """Facts about this machine and the software measured, for every report.

    Keys: ``cpu``, ``cores`` (online), ``cores_usable`` (affinity), ``ram_gib``,
    ``load`` (1-minute load average when asked: other work on a small machine
    skews every figure), ``os``, ``kernel``, ``python``, ``chunkstore``,
    ``accelerated``, ``lz4``, ``msgpack``, ``sqlite``, ``cython``, ``grep``,
    ``commit``.  Nothing here raises: a missing piece reads ``unavailable``.
    """
    cpuinfo = _read("/proc/cpuinfo")
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                if ln.startswith("model name")), platform.processor() or "?")
    flags = next((ln.split(":", 1)[1].split() for ln in cpuinfo.splitlines()
                  if ln.startswith("flags")), [])
    simd = [f for f in ("avx2", "avx512f", "sse4_2", "bmi2") if f in flags]
    ram = next((int(ln.split()[1]) for ln in _read("/proc/meminfo").splitlines()
                if ln.startswith("MemTotal:")), 0)
    os_name = next((ln.split("=", 1)[1].strip('"') for ln in _read("/etc/os-release").splitlines()
                    if ln.startswith("PRETTY_NAME=")), platform.system())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    info: dict[str, Any] = {
        "cpu": cpu + (f" ({', '.join(simd)})" if simd else ""),
        "cores": os.cpu_count() or 1,
        "cores_usable": usable,
        "ram_gib": round(ram / 2**20, 1),
        "load": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else "?",
        "os": os_name,
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    try:
        from chunkstore import _kernels

        info["accelerated"] = bool(_kernels.ACCELERATED)
    except Exception as e:  # noqa: BLE001
        info["accelerated"] = f"unavailable ({type(e).__name__}: {e})"
    try:
        import chunkstore

        info["chunkstore"] = getattr(chunkstore, "__version__", "?")
    except Exception as e:  # noqa: BLE001
        info["chunkstore"] = f"unavailable ({type(e).__name__})"
    info["lz4"] = _version("lz4")
    info["msgpack"] = _version("msgpack", "version")
    info["sqlite"] = sqlite3.sqlite_version
    info["cython"] = _version("Cython")
    try:
        out = subprocess.run(["grep", "--version"], capture_output=True, text=True, timeout=10)
        info["grep"] = out.stdout.splitlines()[0] if out.stdout else "?"
    except (OSError, subprocess.SubprocessError):
        info["grep"] = "unavailable"
    try:
        out = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        info["commit"] = out.stdout.strip() or "none"
    except (OSError, subprocess.SubprocessError):
        info["commit"] = "unavailable"
    return info


def machine_line(info: Mapping[str, Any] | None = None) -> str:
    """``machine_info()`` as two readable lines."""
    m = dict(info or machine_info())
    return (
        f"{m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), {m['ram_gib']} GiB RAM, "
        f"{m['os']}, Linux {m['kernel']}, load average {m.get('load', '?')} at start\n"
        f"{m['python']}; chunkstore {m['chunkstore']} (accelerated: {m['accelerated']}), "
        f"lz4 {m['lz4']}, msgpack {m['msgpack']}, SQLite {m['sqlite']}, Cython {m['cython']}, "
        f"{m['grep']}; commit {m['commit']}"
    )


# ---------------------------------------------------------------------------
# timing


def best_of(fn: Callable[[], Any], *, repeat: int = 3, warmup: int = 0) -> tuple[float, Any]:
    """Run ``fn()`` ``warmup`` + ``repeat`` times; return (best seconds, last result).

    The minimum is the figure least disturbed by the rest of the machine
    (the convention of ``timeit``).  The garbage collector is paused while
    timing, as ``timeit`` does.  ``repeat`` < 1 counts as 1.
    """
    result = None
    for _ in range(warmup):
        result = fn()
    best = float("inf")
    enabled = gc.isenabled()
    try:
        for _ in range(max(1, repeat)):
            gc.disable()
            t0 = time.perf_counter()
            result = fn()
            dt = time.perf_counter() - t0
            if enabled:
                gc.enable()
            best = min(best, dt)
    finally:
        if enabled:
            gc.enable()
    return best, result


# ---------------------------------------------------------------------------
# formatting and reporting


def fmt_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def fmt_rate(n_bytes: float, seconds: float) -> str:
    """Throughput, in GB/s from 1 GB/s up, else MB/s (10**6 bytes)."""
    if seconds <= 0:
        return "inf"
    r = n_bytes / seconds
    return f"{r / 1e9:.2f} GB/s" if r >= 1e9 else f"{r / 1e6:.0f} MB/s"


def fmt_ratio(x: float, y: float) -> str:
    """``x / y`` as ``1.23x`` (``-`` when ``y`` is 0)."""
    return f"{x / y:.2f}x" if y else "-"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v).replace("|", "\\|")


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows of ``{column: value}`` as a markdown table; columns in first-seen order."""
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    out = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for r in rows:
        out.append("| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The exact command that ran this script, path relative to the repository."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve() if argv else Path("?")
    try:
        shown = str(script.relative_to(REPO_DIR))
    except ValueError:
        shown = str(script)
    return " ".join(["python", shlex.quote(shown), *map(shlex.quote, argv[1:])])


def report(title: str, rows: Sequence[Mapping[str, Any]], command: str | None = None, *,
           smoke: bool = False, notes: Iterable[str] = (), info: Mapping[str, Any] | None = None,
           path: Path = RESULTS_PATH) -> str:
    """Print ``rows`` as a markdown table; unless ``smoke``, append a dated section to RESULTS.md.

    The section holds the title and UTC date, the machine (``machine_info``),
    the exact ``command`` (default: this process's command line), the table
    and ``notes`` (one bullet each).  Returns the section's markdown.
    """
    command = command or command_line()
    info = info or machine_info()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"## {title} ({stamp})", "",
             "Machine: " + machine_line(info).replace("\n", "  \n"), "",
             f"Command: `{command}`", "", markdown_table(rows), ""]
    notes = list(notes)
    if notes:
        parts += [f"- {n}" for n in notes] + [""]
    section = "\n".join(parts)
    print(section)
    if smoke:
        print("(not recorded in RESULTS.md)")
    else:
        new = not path.exists()
        with open(path, "a", encoding="utf-8") as f:
            if new:
                f.write("# Benchmark results\n\nAppended by the benchmark scripts "
                        "(`python benchmarks/bench_*.py`); never edited by hand. Newest last.\n\n")
            f.write(section + "\n")
        print(f"(appended to {path})")
    return section


# ---------------------------------------------------------------------------
# command line convention


def make_parser(description: str, *, default_size_mb: float = 200,
                smoke_size_mb: float = 2) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the shared flags: ``--smoke --size --seed --repeat``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true",
                   help=f"tiny run ({smoke_size_mb:g} MB, one repeat); not recorded in RESULTS.md")
    p.add_argument("--size", type=float, default=None, metavar="MB",
                   help=f"corpus size in MB of raw text (default {default_size_mb:g})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=3, help="timed runs per figure; the best counts")
    p.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    p.set_defaults(_default_size_mb=default_size_mb, _smoke_size_mb=smoke_size_mb)
    return p


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None):
    """Parse; adds ``size_bytes`` and ``record`` and makes ``--smoke`` imply one repeat."""
    a = parser.parse_args(argv)
    if a.size is None:
        a.size = a._smoke_size_mb if a.smoke else a._default_size_mb
    if a.size <= 0:
        parser.error(f"--size must be positive, got {a.size}")
    a.size_bytes = int(a.size * 1e6)
    if a.smoke:
        a.repeat = 1
    a.record = not (a.smoke or a.no_record)
    return a


def work_dir(name: str) -> Path:
    """A scratch directory under ``benchmarks/.cache`` (gitignored), created if missing."""
    d = BENCH_DIR / ".cache" / name
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------------------
# baselines


def warm_page_cache(path: str | os.PathLike) -> None:
    """Read the whole file once so the next reader finds it in the page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 24):
            pass


def settle_page_cache() -> None:
    """Write back every dirty page now (``os.sync``), before a timed write run.

    Without it a run pays, in CPU and I/O bandwidth, for the writeback of
    whatever ran before it (earlier runs, other parts of the benchmark), an
    amount that varies from run to run; every write baseline calls this too.
    """
    os.sync()


def sqlite_ingest(corpus, path: str | os.PathLike, *,
                  batch_rows: int = 10_000) -> tuple[float, int]:
    """Load a corpus into SQLite the way a careful application would; (seconds, file bytes).

    Stdlib ``sqlite3``, ``journal_mode=WAL``, ``synchronous=NORMAL``, table
    ``logs(ts INTEGER, stream_id INTEGER, line BLOB)`` with an index on
    ``(stream_id, ts)`` created up front, ``executemany`` in transactions of
    ``batch_rows`` rows, streams taken round-robin (as a collector pushes).
    The time runs to the last commit; the WAL is then checkpointed (untimed)
    and the size is the database file's.  ``corpus`` is a list of objects
    with ``ts`` and ``lines`` (``benchmarks/corpus.py`` streams).
    """
    path = Path(path)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE logs (ts INTEGER, stream_id INTEGER, line BLOB)")
    con.execute("CREATE INDEX logs_stream_ts ON logs (stream_id, ts)")
    cursors = [0] * len(corpus)
    settle_page_cache()
    t0 = time.perf_counter()
    remaining = True
    while remaining:
        remaining = False
        for sid, s in enumerate(corpus):
            a = cursors[sid]
            if a >= len(s.lines):
                continue
            b = min(a + batch_rows, len(s.lines))
            cursors[sid] = b
            remaining = True
            con.execute("BEGIN")
            con.executemany("INSERT INTO logs VALUES (?, ?, ?)",
                            zip(s.ts[a:b], _repeat(sid), s.lines[a:b]))
            con.execute("COMMIT")
    seconds = time.perf_counter() - t0
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return seconds, path.stat().st_size


def _sqlite_query(path, sql: str, params: tuple, repeat: int, fetch: str) -> tuple[float, Any]:
    con = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        def run():
            cur = con.execute(sql, params)
            return cur.fetchone()[0] if fetch == "one" else cur.fetchall()

        return best_of(run, repeat=repeat, warmup=1)
    finally:
        con.close()


def _like_pattern(needle: bytes | str) -> str:
    s = needle.decode("utf-8", "replace") if isinstance(needle, bytes) else needle
    s = s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{s}%"


def sqlite_like_count(path, needle: bytes | str, *, repeat: int = 3) -> tuple[float, int]:
    """``count(*) WHERE line LIKE '%needle%'``; (seconds, count).

    SQLite's LIKE ignores ASCII case, so this answers a case-insensitive
    question; :func:`sqlite_instr_count` is the exact (fair) baseline.  The
    column holds BLOBs, which LIKE never matches, hence the ``CAST``.
    """
    return _sqlite_query(path, "SELECT count(*) FROM logs "
                         "WHERE CAST(line AS TEXT) LIKE ? ESCAPE '\\'",
                         (_like_pattern(needle),), repeat, "one")


def sqlite_instr_count(path, needle: bytes | str, *, repeat: int = 3) -> tuple[float, int]:
    """``count(*) WHERE instr(line, ?) > 0``: exact, case-sensitive; (seconds, count)."""
    if isinstance(needle, str):
        needle = needle.encode()
    return _sqlite_query(path, "SELECT count(*) FROM logs WHERE instr(line, ?) > 0",
                         (needle,), repeat, "one")


def sqlite_bucket_count(path, needle: bytes | str, bucket_ns: int, *,
                        repeat: int = 3) -> tuple[float, list[tuple[int, int, int]]]:
    """Matching lines counted per stream and time bucket (``count_over_time``); (seconds, rows).

    ``SELECT stream_id, ts / bucket_ns, count(*) ... WHERE instr(line, ?) > 0
    GROUP BY 1, 2``; rows are ``(stream_id, bucket, count)``.
    """
    if isinstance(needle, str):
        needle = needle.encode()
    return _sqlite_query(
        path,
        "SELECT stream_id, ts / ?, count(*) FROM logs WHERE instr(line, ?) > 0 GROUP BY 1, 2",
        (int(bucket_ns), needle), repeat, "all")


def grep_count(path, needle: bytes | str, ignore_case: bool = False, *,
               repeat: int = 3) -> tuple[float, int]:
    """``grep -F -c`` (``-i`` with ``ignore_case``) over a file in the page cache; (seconds, count).

    Runs with ``LC_ALL=C`` (byte semantics, grep's fastest path).  Raises
    ``RuntimeError`` when grep is missing or fails.
    """
    grep = shutil.which("grep")
    if grep is None:
        raise RuntimeError("grep_count: grep is not installed")
    if isinstance(needle, str):
        needle = needle.encode()
    args = [grep, "-F", "-c"] + (["-i"] if ignore_case else []) + ["-e", needle, str(path)]
    env = dict(os.environ, LC_ALL="C")
    warm_page_cache(path)

    def run() -> int:
        out = subprocess.run(args, capture_output=True, env=env)
        if out.returncode not in (0, 1):
            raise RuntimeError(f"grep_count: grep failed ({out.returncode}): {out.stderr!r}")
        return int(out.stdout.strip() or 0)

    return best_of(run, repeat=repeat)


def gzip_size(path, level: int = 6) -> int:
    """Bytes of ``path`` compressed as gzip at ``level`` (zlib, as ``gzip -level``)."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += len(comp.compress(chunk))
    return n + len(comp.flush())


def python_in_loop(lines: Sequence[bytes], needle: bytes, *, repeat: int = 3) -> tuple[float, int]:
    """The plain Python filter: ``if needle in line`` over a list of bytes; (seconds, count)."""

    def run() -> int:
        n = 0
        for line in lines:
            if needle in line:
                n += 1
        return n

    return best_of(run, repeat=repeat)


def lz4_ceiling(raw_blocks: Sequence[bytes], *, hc: bool = False, level: int = 9,
                repeat: int = 3) -> tuple[float, float]:
    """python-lz4 alone on the same raw blocks: (compress seconds, decompress seconds).

    The ceiling for the block kernels: encode+compress cannot beat the
    compress time, decompress+scan cannot beat the decompress time.
    ``hc`` uses lz4-hc at ``level``.
    """
    import lz4.block as lz4b

    mode = "high_compression" if hc else "default"

    def comp() -> list[bytes]:
        if hc:
            return [lz4b.compress(b, mode=mode, compression=level, store_size=False)
                    for b in raw_blocks]
        return [lz4b.compress(b, store_size=False) for b in raw_blocks]

    c_s, stored = best_of(comp, repeat=repeat)
    sizes = [len(b) for b in raw_blocks]

    def decomp() -> int:
        n = 0
        for s, size in zip(stored, sizes, strict=True):
            n += len(lz4b.decompress(s, uncompressed_size=size))
        return n

    d_s, _ = best_of(decomp, repeat=repeat)
    return c_s, d_s


# ---------------------------------------------------------------------------
# realistic label sets (fingerprint benchmarks)

_APPS = ("api", "web", "payments", "auth", "worker", "gateway", "search", "cart", "checkout",
         "inventory", "mailer", "billing", "reports", "ingest", "scheduler", "frontend",
         "backend", "nginx", "redis", "postgres", "kafka", "zookeeper", "loki", "promtail",
         "grafana", "prometheus", "alertmanager", "node-exporter", "coredns", "kube-proxy")
_ENVS = ("prod", "staging", "dev", "qa", "canary")
_NAMESPACES = ("default", "kube-system", "monitoring", "logging", "shop", "identity", "batch",
               "edge", "data", "ml", "platform", "payments", "search", "ingress-nginx")
_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1", "ap-northeast-1")
_LABEL_NAMES = ("app", "cluster", "container", "env", "filename", "host", "instance", "job",
                "namespace", "node", "pod", "region", "service_name", "stream", "team", "version",
                "zone")


def label_sets(n: int, *, seed: int = 0, min_labels: int = 2, max_labels: int = 8):
    """Yield ``n`` canonical label byte strings (FORMAT.md section 1) of realistic label sets.

    Names come from a Kubernetes/Promtail-like vocabulary; values mix low
    cardinality (``env``, ``region``) with high (``pod``, ``instance``,
    ``filename``, ``host``).  Every set has at least one high-cardinality
    label, as the streams of one store must differ, so duplicates are
    possible but rare.  Deterministic for a seed.
    """
    import random

    if not 1 <= min_labels <= max_labels <= len(_LABEL_NAMES):
        raise ValueError(f"label_sets: need 1 <= min_labels <= max_labels <= {len(_LABEL_NAMES)}")
    rng = random.Random(seed)
    bits = rng.getrandbits
    rand = rng.random
    names = sorted(_LABEL_NAMES)  # sorted by name, so a sorted sample is canonical order
    enc = {nm: nm.encode() + b"\xff" for nm in names}
    teams = ("core", "growth", "infra", "sre", "data", "ml", "payments", "identity")
    containers = ("app", "sidecar", "istio-proxy", "init", "nginx", "fluent-bit", "exporter")

    def value(nm: str) -> str:
        if nm == "app" or nm == "service_name":
            return _APPS[int(rand() * len(_APPS))]
        if nm == "env":
            return _ENVS[int(rand() * len(_ENVS))]
        if nm == "namespace":
            return _NAMESPACES[int(rand() * len(_NAMESPACES))]
        if nm == "region":
            return _REGIONS[int(rand() * len(_REGIONS))]
        if nm == "zone":
            return _REGIONS[int(rand() * len(_REGIONS))] + "abc"[bits(8) % 3]
        if nm == "cluster":
            return "%s-%d" % (_REGIONS[int(rand() * len(_REGIONS))], bits(3))
        if nm == "pod":
            return "%s-%010x-%05x" % (_APPS[int(rand() * len(_APPS))], bits(40), bits(20))
        if nm == "instance":
            return "10.%d.%d.%d:%d" % (bits(8), bits(8), bits(8), 8080 + bits(4))
        if nm == "host" or nm == "node":
            return "ip-10-%d-%d-%d.ec2.internal" % (bits(8), bits(8), bits(8))
        if nm == "filename":
            return "/var/log/pods/%s_%s-%08x_%032x/app/0.log" % (
                _NAMESPACES[int(rand() * len(_NAMESPACES))], _APPS[int(rand() * len(_APPS))],
                bits(32), bits(128))
        if nm == "job":
            return "%s/%s" % (_NAMESPACES[int(rand() * len(_NAMESPACES))],
                              _APPS[int(rand() * len(_APPS))])
        if nm == "stream":
            return "stdout" if rand() < 0.8 else "stderr"
        if nm == "team":
            return teams[int(rand() * len(teams))]
        if nm == "version":
            return "v%d.%d.%d" % (bits(2) + 1, bits(5), bits(6))
        return containers[int(rand() * len(containers))]  # container

    span = max_labels - min_labels + 1
    idx = range(len(names))
    sample = rng.sample
    unique = [names.index(nm) for nm in ("filename", "host", "instance", "pod")]
    for _ in range(n):
        k = min_labels + int(rand() * span)
        chosen = set(sample(idx, k))
        if chosen.isdisjoint(unique):
            chosen.pop()
            chosen.add(unique[bits(2)])
        yield b"".join(enc[names[i]] + value(names[i]).encode() + b"\xff"
                       for i in sorted(chosen))
