"""``chunkstore query/labels/series/stats`` end to end: real processes against a real store.

Every output format is parsed back and compared with the library's answer on
the same store; bad usage exits 2, bad queries exit 1 with the position.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import chunkstore

REPO = pathlib.Path(__file__).resolve().parent.parent
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
S = 1_000_000_000


def cli(*args, input=None, env_extra=None, timeout=60):
    """Run ``python -m chunkstore ARGS``: a CompletedProcess with text stdout/stderr."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NO_COLOR", None)
    env.pop("FORCE_COLOR", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "chunkstore", *map(str, args)], input=input,
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


def _lines(i: int) -> tuple[str, str]:
    level = "error" if i % 10 == 0 else "info"
    status = 500 if i % 10 == 0 else 200
    return level, f"level={level} msg=\"request {i}\" status={status} duration={i % 7}ms"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Three streams x 300 lines, one per second from T0, small chunks; plus one open head."""
    path = tmp_path_factory.mktemp("cli") / "store"
    with chunkstore.open(path, block_size=1024, chunk_target_size=4096,
                         maintenance_interval=0) as s:
        for i in range(300):
            _lvl, line = _lines(i)
            s.push([
                ({"app": "api", "env": "prod"}, [(T0 + i * S, line)]),
                ({"app": "api", "env": "dev"}, [(T0 + i * S + 1, line)]),
                ({"app": "web", "env": "prod"}, [(T0 + i * S + 2, f"GET /page/{i} {200 + i % 3}")]),
            ])
    return path


def lib_entries(path, q, start=None, end=None, limit=None, direction="backward"):
    with chunkstore.open(path, read_only=True) as s:
        return [(e.ts, dict(e.labels), e.line)
                for e in s.query(q, start, end, limit=limit, direction=direction)]


# ---------------------------------------------------------------------------
# log queries

def test_text_output_default_limit_is_100_newest_first(store):
    r = cli("query", store, '{app="api", env="prod"}')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 100
    assert lines[0].startswith("2024-01-01T00:04:59.000Z ")  # the newest line first
    assert '{app="api", env="prod"}' in lines[0] and 'msg="request 299"' in lines[0]
    assert "\x1b[" not in r.stdout  # not a terminal: no colour


def test_jsonl_matches_library_results(store):
    q = '{env="prod"} |= "status=500" | logfmt | duration >= 3ms'
    r = cli("query", store, q, "-o", "jsonl", "--limit", "0")
    assert r.returncode == 0, r.stderr
    got = [json.loads(x) for x in r.stdout.splitlines()]
    want = lib_entries(store, q)
    assert [(o["ts"], o["labels"], o["line"]) for o in got] == want
    assert len(want) > 5
    assert all(o["time"].startswith("2024-01-01T") and o["time"].endswith("Z") for o in got)
    assert all(o["stream"] == {"app": "api", "env": "prod"} for o in got)
    assert got[0]["labels"]["status"] == "500"  # parsed labels are in "labels"


def test_forward_limit_and_time_range_forms(store):
    q = '{app="web"}'
    want = lib_entries(store, q, T0 + 10 * S, T0 + 20 * S, limit=5, direction="forward")
    for frm, to in [("2024-01-01T00:00:10Z", "2024-01-01T00:00:20Z"),
                    ("1704067210", "1704067220.0"),
                    (str(T0 + 10 * S), str(T0 + 20 * S)),
                    ("2024-01-01T01:00:10+01:00", "2024-01-01 00:00:20")]:
        r = cli("query", store, q, "--from", frm, "--to", to, "--limit", "5", "--forward",
                "-o", "jsonl")
        assert r.returncode == 0, r.stderr
        got = [json.loads(x) for x in r.stdout.splitlines()]
        assert [(o["ts"], o["labels"], o["line"]) for o in got] == want, (frm, to)


def test_raw_output_is_exact_lines(store):
    r = cli("query", store, '{app="web"} |= "/page/7"', "-o", "raw", "--limit", "0", "--forward")
    assert r.returncode == 0, r.stderr
    want = [line for _ts, _l, line in lib_entries(store, '{app="web"} |= "/page/7"',
                                                  direction="forward")]
    assert r.stdout.splitlines() == want


def test_since_relative_to_now(store):
    # everything is from 2024: nothing in the last hour, everything in a long window
    r = cli("query", store, '{app="web"}', "--since", "1h")
    assert r.returncode == 0 and r.stdout == ""
    r = cli("query", store, '{app="web"}', "--from", "now-100000d", "--limit", "3")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3


def test_context_groups_with_separators(store):
    q = '{app="api", env="prod"} |= "request 150\\""'
    r = cli("query", store, q, "--context", "2", "--forward")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 5
    assert [x[:2] for x in lines] == ["  ", "  ", "> ", "  ", "  "]
    assert ['request 148"' in lines[0], 'request 152"' in lines[4]] == [True, True]
    # two matches far apart: two groups separated by --
    q2 = '{app="api", env="prod"} |~ "request (100|200)\\""'
    r = cli("query", store, q2, "-C", "1", "--forward", "-o", "jsonl")
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    assert [o["match"] for o in objs] == [False, True, False] * 2
    r = cli("query", store, q2, "-C", "1", "--forward")
    assert r.stdout.splitlines()[3] == "--"


def test_context_overlapping_matches_merge(store):
    q = '{app="api", env="prod"} |~ "request (150|151)\\""'
    r = cli("query", store, q, "-C", "2", "--forward")
    lines = r.stdout.splitlines()
    assert "--" not in lines
    assert [x[:2] for x in lines] == ["  ", "  ", "> ", "> ", "  ", "  "]


def test_volume_histogram_and_stats(store):
    r = cli("query", store, '{env="prod"} |= "error"', "--volume", "--limit", "2", "--stats")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("log volume: 30 lines, 2024-01-01T00:00:00Z")
    assert "2024-01-01T00:0" in r.stdout
    assert sum(1 for x in out if x.startswith("2024-01-01T")) == 2  # the lines below the chart
    assert r.stderr.startswith("stats: ") and "lines scanned" in r.stderr


def test_volume_goes_to_stderr_with_jsonl(store):
    r = cli("query", store, '{app="web"}', "--volume", "--limit", "1", "-o", "jsonl")
    assert r.returncode == 0
    assert "log volume" in r.stderr
    assert len(r.stdout.splitlines()) == 1 and json.loads(r.stdout)["line"]


def test_color_always_and_no_color(store):
    r = cli("query", store, '{app="api", env="prod"} |= "request 10"', "--color", "always",
            "--limit", "3")
    assert "\x1b[1;31mrequest 10\x1b[0m" in r.stdout  # the needle highlighted like grep
    r = cli("query", store, '{app="api"}', "--color", "always", "--no-color", "--limit", "3")
    assert "\x1b[" not in r.stdout


# ---------------------------------------------------------------------------
# errors and usage

def test_bad_query_exit_1_with_position_and_caret(store):
    r = cli("query", store, '{app="api" |= "x"')
    assert r.returncode == 1
    err = r.stderr.splitlines()
    assert err[0].startswith("chunkstore: error: query: ") and "position 11" in err[0]
    assert err[1] == '  {app="api" |= "x"'
    assert err[2] == "  " + " " * 11 + "^"
    assert "Traceback" not in r.stderr


def test_bad_usage_exit_2(store):
    for args in [("query", store), ("query", store, "{a=\"b\"}", "--limit", "-1"),
                 ("query", store, "{a=\"b\"}", "--from", "yesterday"),
                 ("query", store, "{a=\"b\"}", "--since", "abc"),
                 ("query", store, "{a=\"b\"}", "-o", "xml"), ("nosuchcommand",), ()]:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr
    r = cli("query", store, '{app="x"}', "--from", "yesterday")
    assert "invalid time 'yesterday'" in r.stderr


def test_missing_store_is_usage_error(tmp_path):
    r = cli("query", tmp_path / "nope", '{app="x"}')
    assert r.returncode == 2
    assert r.stderr.startswith("chunkstore: error: no store at ") and len(
        r.stderr.splitlines()) == 1
    assert not (tmp_path / "nope").exists()  # a read command never creates a store


def test_debug_shows_traceback(tmp_path):
    r = cli("--debug", "labels", tmp_path / "nope")
    assert r.returncode != 0 and "Traceback" in r.stderr


# ---------------------------------------------------------------------------
# labels, series, stats

def test_labels_and_values(store):
    r = cli("labels", store)
    assert r.returncode == 0 and r.stdout.splitlines() == ["app", "env"]
    r = cli("labels", store, "env")
    assert r.stdout.splitlines() == ["dev", "prod"]
    r = cli("labels", store, "app", "--query", '{env="dev"}', "-o", "jsonl")
    assert [json.loads(x) for x in r.stdout.splitlines()] == ["api"]


def test_series(store):
    r = cli("series", store, '{env="prod"}')
    assert r.returncode == 0
    assert r.stdout.splitlines() == ['{app="api", env="prod"}', '{app="web", env="prod"}']
    r = cli("series", store, '{app=~"a.*"}', "-o", "jsonl")
    with chunkstore.open(store, read_only=True) as s:
        assert [json.loads(x) for x in r.stdout.splitlines()] == s.series('{app=~"a.*"}')
    assert cli("series", store, "{app=").returncode == 1


def test_stats(store):
    r = cli("stats", store, "-o", "jsonl")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    with chunkstore.open(store, read_only=True) as s:
        st = s.stats()
    assert (got["streams"], got["entries"], got["chunks"], got["bytes_stored"]) == (
        st.streams, st.entries, st.chunks, st.bytes_stored) == (3, 900, st.chunks,
                                                                st.bytes_stored)
    r = cli("stats", store, '{app="web"}')
    assert "streams       1" in r.stdout and "entries       300" in r.stdout
    assert "2024-01-01T00:00:00Z .. 2024-01-01T00:04:59Z" in r.stdout


# ---------------------------------------------------------------------------
# metric queries (only when the library has them)

needs_metrics = pytest.mark.skipif(importlib.util.find_spec("chunkstore.metric_query") is None,
                                   reason="chunkstore.metric_query is not available")


@needs_metrics
def test_metric_range_jsonl_matches_library(store):
    q = 'sum by (env) (count_over_time({app="api"} |= "error" [1m]))'
    start, end, step = T0, T0 + 300 * S, 60 * S
    r = cli("query", store, q, "--from", start, "--to", end, "--step", "1m", "-o", "jsonl")
    assert r.returncode == 0, r.stderr
    got = [json.loads(x) for x in r.stdout.splitlines()]
    with chunkstore.open(store, read_only=True) as s:
        want = s.query_range(q, start, end, step)
    want = sorted(({"labels": dict(x.labels), "points": [[t, v] for t, v in x.points]}
                   for x in want), key=lambda o: sorted(o["labels"].items()))
    assert got == want and got
    r = cli("query", store, q, "--from", start, "--to", end, "--step", "1m")
    assert r.returncode == 0 and "SERIES" in r.stdout and '{env="prod"}' in r.stdout


@needs_metrics
def test_metric_instant(store):
    q = 'count_over_time({app="web"}[10m])'
    r = cli("query", store, q, "--instant", "--to", T0 + 300 * S, "-o", "jsonl")
    assert r.returncode == 0, r.stderr
    with chunkstore.open(store, read_only=True) as s:
        want = s.query_instant(q, T0 + 300 * S)
    got = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(o["labels"], o["value"]) for o in got] == [(dict(x.labels), x.value) for x in want]


# ---------------------------------------------------------------------------
# entry points

def test_python_m_help_and_every_command_help():
    r = cli("--help")
    assert r.returncode == 0 and "demo" in r.stdout and "exit status" in r.stdout
    for cmd in ("demo", "query", "tail", "labels", "series", "stats", "ingest", "inspect",
                "verify", "compact", "retention", "delete"):
        r = cli(cmd, "--help")
        assert r.returncode == 0, cmd
        assert "examples:" in r.stdout, cmd


def test_console_script_smoke(store):
    exe = shutil.which("chunkstore")
    if exe is None:
        pytest.skip("the chunkstore console script is not installed")
    r = subprocess.run([exe, "labels", str(store)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["app", "env"]
