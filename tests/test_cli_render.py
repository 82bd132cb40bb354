"""The command line's parsing and rendering helpers, in process; and what a terminal shows.

The last tests run the command on a pseudo-terminal (the only way to see
what a user at a terminal sees: the metric table's sparklines, colour, the
ingest progress bar).
"""

from __future__ import annotations

import io
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

from chunkstore import cli_render as r
from chunkstore.cli import CLIError
from chunkstore.cli_ingest import parse_labels_arg
from chunkstore.cli_query import nice_step

T0 = 1_704_067_200_000_000_000
S = 1_000_000_000
NOW = T0 + 3600 * S


@pytest.mark.parametrize("text,want", [
    ("2024-01-01T00:00:00Z", T0),
    ("2024-01-01t00:00:00.123456789z", T0 + 123456789),
    ("2024-01-01T01:30:00+01:30", T0),
    ("2024-01-01 00:00:01", T0 + S),
    ("2024-01-01", T0),
    ("1704067200", T0),
    ("1704067200.5", T0 + S // 2),
    ("1704067200123", T0 + 123_000_000),          # milliseconds
    ("1704067200123456", T0 + 123_456_000),       # microseconds
    (str(T0 + 7), T0 + 7),                        # nanoseconds, as jsonl prints them
    ("now", NOW),
    ("now-1h", T0),
    ("now - 30m", NOW - 1800 * S),
    ("now+1d", NOW + 86400 * S),
])
def test_parse_time(text, want):
    assert r.parse_time(text, NOW) == want


@pytest.mark.parametrize("text", ["yesterday", "now-", "now-abc", "2024-13-01", "1e30", ""])
def test_parse_time_rejects(text):
    with pytest.raises(r.TimeParseError):
        r.parse_time(text, NOW)


def test_parse_duration():
    assert r.parse_duration("15m") == 900 * S
    assert r.parse_duration("1h30m") == 5400 * S
    assert r.parse_duration("1.5h") == 5400 * S
    assert r.parse_duration("2d") == 2 * 86400 * S
    for bad in ("0s", "-1h", "abc", ""):
        with pytest.raises(r.TimeParseError):
            r.parse_duration(bad)


@pytest.mark.parametrize("text,fmt,want", [
    ("2024-01-01T00:00:01Z", None, T0 + S),
    ("1704067201", None, T0 + S),
    ("1704067201000", None, T0 + S),
    ("2024/01/01 00:00:02.5", None, T0 + 2 * S + S // 2),
    ("01/Jan/2024:01:00:03 +0100", None, T0 + 3 * S),
    ("[01/Jan/2024:00:00:03 +0000]", None, T0 + 3 * S),
    ("Jan  1 00:00:04", None, T0 + 4 * S),            # syslog: year from the `year` argument
    ("2024-01-01 00:00:05", "%Y-%m-%d %H:%M:%S", T0 + 5 * S),
    ("01.01.2024 00:00:06.250000", "%d.%m.%Y %H:%M:%S.%f", T0 + 6 * S + S // 4),
    ("1704067207.5", "unix", T0 + 7 * S + S // 2),
    ("1704067207500", "unix_ms", T0 + 7 * S + S // 2),
    (str(T0 + 9), "unix_ns", T0 + 9),
    ("2024-01-01T00:00:08+00:00", "rfc3339", T0 + 8 * S),
])
def test_parse_timestamp_text(text, fmt, want):
    assert r.parse_timestamp_text(text, fmt, year=2024) == want


def test_parse_timestamp_text_syslog_year_guess():
    # December lines read in early January belong to the previous year
    jan2 = T0 + 86400 * S
    got = r.parse_timestamp_text("Dec 31 23:59:59", now_ns=jan2)
    assert got == T0 - S
    with pytest.raises(r.TimeParseError):
        r.parse_timestamp_text("sometime last week")
    with pytest.raises(r.TimeParseError):
        r.parse_timestamp_text("2024-01-01", "%H:%M")


def test_labels_argument():
    assert parse_labels_arg("app=x,env=y") == {"app": "x", "env": "y"}
    assert parse_labels_arg(' app = "a,b" , env=y ') == {"app": "a,b", "env": "y"}
    assert parse_labels_arg('{app="x", env="y"}') == {"app": "x", "env": "y"}
    for bad in ("", "x", "1a=b", '{app=~"x"}'):
        with pytest.raises(CLIError) as info:
            parse_labels_arg(bad)
        assert info.value.code == 2


def test_formatting():
    assert r.format_ns(T0 + 5) == "2024-01-01T00:00:00.000000005Z"
    assert r.format_ts_ms(T0 + 1_500_000) == "2024-01-01T00:00:00.001Z"
    assert r.format_ts_short(T0) == "2024-01-01T00:00:00Z"
    assert r.format_duration_ns(5400 * S) == "1h30m"
    assert r.format_duration_ns(250_000_000) == "250ms"
    assert r.format_bytes(512) == "512 B" and r.format_bytes(3 * 1024 ** 2) == "3.0 MiB"
    assert r.format_labels({"b": "2", "a": 'x"y'}) == '{a="x\\"y", b="2"}'
    assert nice_step(S * 3600 * 3 / 60) == 300 * S
    assert nice_step(1) == 1_000_000


def test_sparkline_and_bar_chart():
    assert r.sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert r.sparkline([0, 0, 0]) == "▁▁▁"
    assert r.sparkline([1, 7], ascii_only=True) == "_#"
    assert len(r.sparkline(list(range(100)), width=10)) == 10
    rows = r.bar_chart([0, 4, 8], height=2)
    assert rows == ["  █", " ██"]
    assert r.bar_chart([0, 0]) == ["  "]
    rows = r.bar_chart([1, 100], height=3, ascii_only=True)
    assert all(set(x) <= set(" #.") for x in rows) and len(rows) == 3


def test_table_plain_without_rich(monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    assert not r.have_rich()
    buf = io.StringIO()
    r.print_table(["NAME", "COUNT"], [["api", "1,234"], ["web", "5"]], buf, color=True)
    assert buf.getvalue().splitlines() == ["NAME  COUNT", "api   1,234", "web       5"]
    # progress and colour degrade silently too
    p = r.Progress("x", 10, io.StringIO())
    p.update(5, 5)
    p.close()
    assert r.Palette(False)("text", "red") == "text"


def test_color_decision(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert r.use_color("auto", Tty()) and not r.use_color("auto", io.StringIO())
    assert r.use_color("always", io.StringIO()) and not r.use_color("never", Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not r.use_color("auto", Tty())


def test_highlight_and_levels():
    pal = r.Palette(True)
    assert r.level_style("level=error msg=x") == "red"
    assert r.level_style('{"level":"warn"}') == "yellow"
    assert r.level_style("all good") is None
    out = r.highlight("a timeout b", ["timeout"], pal, None)
    assert out == "a \x1b[1;31mtimeout\x1b[0m b"
    assert r.highlight("x", ["x"], r.Palette(False), "red") == "x"


# ---------------------------------------------------------------------------
# on a terminal

REPO = pathlib.Path(__file__).resolve().parent.parent


def cli_on_terminal(*args, columns: int = 160, timeout: float = 60) -> tuple[int, str]:
    """Run ``python -m chunkstore ARGS`` with stdout and stderr on a pty: ``(status, output)``."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = dict(os.environ, TERM="xterm", COLUMNS=str(columns), LANG="C.UTF-8",
               PYTHONIOENCODING="utf-8")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    for k in ("NO_COLOR", "FORCE_COLOR"):
        env.pop(k, None)
    proc = subprocess.Popen([sys.executable, "-m", "chunkstore", *map(str, args)],
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env,
                            cwd=REPO)
    os.close(slave)
    data = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            data += chunk
        status = proc.wait(max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return status, data.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    import chunkstore

    path = tmp_path_factory.mktemp("tty") / "store"
    with chunkstore.open(path, maintenance_interval=0) as s:
        for i in range(600):
            s.push([({"app": "api"}, [(T0 + i * S, f"level={'error' if i % 7 else 'info'} n={i}")]),
                    ({"app": "web"}, [(T0 + i * S + 1, f"GET /{i} 200")])])
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_metric_table_has_sparklines_on_a_terminal(small_store):
    q = 'sum by (app) (count_over_time({app=~".+"} |= "error" [1m]))'
    status, out = cli_on_terminal("query", small_store, q, "--step", "30s")
    assert status == 0, out
    assert "TREND" in out and '{app="api"}' in out
    assert any(ch in out for ch in "▁▂▃▄▅▆▇█"), out
    assert "Traceback" not in out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_log_lines_are_coloured_on_a_terminal_unless_no_color(small_store):
    status, out = cli_on_terminal("query", small_store, '{app="api"} |= "error"', "--limit", "3")
    assert status == 0 and "\x1b[1;31merror\x1b[0m" in out  # the needle, highlighted
    status, out = cli_on_terminal("query", small_store, '{app="api"}', "--limit", "3",
                                  "--no-color")
    assert status == 0 and "\x1b[3" not in out and "level=" in out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_ingest_shows_progress_on_a_terminal(tmp_path):
    log = tmp_path / "big.log"
    with open(log, "w") as f:
        for i in range(60_000):
            f.write(f"2024-01-01T00:{i // 6000 % 60:02d}:{i // 100 % 60:02d}Z line {i} "
                    f"{'x' * 40}\n")
    status, out = cli_on_terminal("ingest", tmp_path / "s", log, "--labels", "app=big",
                                  "--ts-regex", r"^(\S+)")
    assert status == 0, out
    # the progress display (rich's bar, or the plain one): file, lines and lines/s
    assert "big.log" in out and re.search(r"[\d,]+ lines,? +[\d,]+ lines/s", out), out
    assert "ingested 60,000 lines into" in out
