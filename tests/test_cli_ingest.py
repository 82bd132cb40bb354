"""``chunkstore ingest`` end to end: stdin, files, timestamps parsed from lines, Loki JSON."""

from __future__ import annotations

import gzip
import json
import os
import pathlib
import subprocess
import sys

import chunkstore

REPO = pathlib.Path(__file__).resolve().parent.parent
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
S = 1_000_000_000


def cli(*args, input=None, timeout=60):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "chunkstore", *map(str, args)], input=input,
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


def entries(path, q="{app=~\".+\"}"):
    with chunkstore.open(path, read_only=True) as s:
        return [(e.ts, dict(e.stream), e.line) for e in s.query(q, direction="forward")]


def test_stdin_lines_get_increasing_now_timestamps(tmp_path):
    store = tmp_path / "s"
    r = cli("ingest", store, "--labels", "app=x,env=dev", input="first\nsecond\n\nthird\r\n")
    assert r.returncode == 0, r.stderr
    assert "ingested 3 lines" in r.stderr and "skipped 1 blank line\n" in r.stderr
    got = entries(store)
    assert [line for _ts, _l, line in got] == ["first", "second", "third"]
    assert all(lbl == {"app": "x", "env": "dev"} for _ts, lbl, _ in got)
    ts = [t for t, _l, _ in got]
    assert ts == sorted(ts) and len(set(ts)) == 3
    # and the CLI reads back what it wrote
    r = cli("query", store, '{app="x"}', "-o", "raw", "--forward")
    assert r.stdout == "first\nsecond\nthird\n"


def test_ts_regex_auto_formats_and_fudged_continuations(tmp_path):
    log = tmp_path / "app.log"
    log.write_text(
        "2024-01-01T00:00:01Z level=info msg=one\n"
        "2024-01-01T00:00:02.5Z level=error msg=two\n"
        "  at frame one\n"                      # continuation: previous ts + 1ns
        "1704067203 level=info msg=unix-seconds\n"
        "1704067204000 level=info msg=unix-ms\n"
        "1704067205000000000 level=info msg=unix-ns\n")
    store = tmp_path / "s"
    r = cli("ingest", store, log, "--labels", "{app=\"a\"}", "--ts-regex", r"^(\S+)")
    assert r.returncode == 0, r.stderr
    assert "ingested 6 lines" in r.stderr
    assert "1 line without a readable timestamp" in r.stderr
    got = [(t, line) for t, _l, line in entries(store)]
    assert got == [
        (T0 + 1 * S, "2024-01-01T00:00:01Z level=info msg=one"),
        (T0 + 2 * S + S // 2, "2024-01-01T00:00:02.5Z level=error msg=two"),
        (T0 + 2 * S + S // 2 + 1, "  at frame one"),
        (T0 + 3 * S, "1704067203 level=info msg=unix-seconds"),
        (T0 + 4 * S, "1704067204000 level=info msg=unix-ms"),
        (T0 + 5 * S, "1704067205000000000 level=info msg=unix-ns"),
    ]


def test_ts_regex_named_group_apache_and_syslog(tmp_path):
    access = tmp_path / "access.log"
    access.write_text(
        '10.0.0.1 - - [01/Jan/2024:01:00:00 +0100] "GET / HTTP/1.1" 200 5\n'
        '10.0.0.2 - - [01/Jan/2024:00:00:07 +0000] "GET /x HTTP/1.1" 404 5\n')
    store = tmp_path / "s"
    r = cli("ingest", store, access, "--labels", "app=nginx",
            "--ts-regex", r"\[(?P<ts>[^\]]+)\]")
    assert r.returncode == 0, r.stderr
    assert [t for t, _l, _ in entries(store)] == [T0, T0 + 7 * S]
    syslog = tmp_path / "auth.log"
    syslog.write_text("Jan  1 00:00:09 host sshd[1]: Accepted publickey\n"
                      "Jan  1 00:00:10 host sshd[1]: session closed\n")
    r = cli("ingest", store, syslog, "--labels", "app=auth",
            "--ts-regex", r"^(\w{3} +\d+ [\d:]+)", "--ts-format", "%b %d %H:%M:%S")
    assert r.returncode == 0, r.stderr
    got = entries(store, '{app="auth"}')
    # no year in syslog lines: the current year (or the previous one), at Jan 1 00:00:09
    import datetime

    years = {datetime.datetime.fromtimestamp(t // S, datetime.timezone.utc).year for t, *_ in got}
    assert len(years) == 1
    y0 = int(datetime.datetime(years.pop(), 1, 1, tzinfo=datetime.timezone.utc).timestamp()) * S
    assert [t - y0 for t, *_ in got] == [9 * S, 10 * S]


def test_ts_format_alone_reads_the_line_start_and_gz_files(tmp_path):
    log = tmp_path / "app.log.gz"
    with gzip.open(log, "wt") as f:
        f.write("2024-01-01 00:00:05 hello\n2024-01-01 00:00:06,250 world\n")
    store = tmp_path / "s"
    r = cli("ingest", store, log, "--labels", "app=g", "--ts-format", "%Y-%m-%d %H:%M:%S")
    # the second line's ",250" does not match the format: it takes the previous time + 1ns
    assert r.returncode == 0, r.stderr
    assert [(t, line) for t, _l, line in entries(store)] == [
        (T0 + 5 * S, "2024-01-01 00:00:05 hello"),
        (T0 + 5 * S + 1, "2024-01-01 00:00:06,250 world")]


def test_nothing_accepted_exits_1_with_grouped_reasons(tmp_path):
    log = tmp_path / "bad.log"
    log.write_text("no timestamp here\nnor here\n")
    r = cli("ingest", tmp_path / "s", log, "--labels", "app=x", "--ts-regex", r"^(\d{4}-\S+)")
    assert r.returncode == 1
    assert "rejected 2:" in r.stderr
    assert "2  no timestamp (--ts-regex did not match)" in r.stderr


def test_some_rejected_exits_0(tmp_path):
    log = tmp_path / "long.log"
    # the second line is longer than the default max_line_size (256 KiB)
    log.write_text("short\n" + "x" * 300_000 + "\nshort again\n")
    r = cli("ingest", tmp_path / "s", log, "--labels", "app=x")
    assert r.returncode == 0, r.stderr
    assert "ingested 2 lines" in r.stderr and "rejected 1:" in r.stderr
    assert "1  line too long" in r.stderr


def test_json_push_format(tmp_path):
    doc = {"streams": [
        {"stream": {"app": "j", "env": "prod"},
         "values": [[str(T0 + 1), "one"], [str(T0 + 2), "two", {"trace_id": "abc"}]]},
        {"stream": {"app": "k"}, "values": [[str(T0 + 3), "three"], ["not-a-ts", "bad"]]},
    ]}
    f = tmp_path / "push.json"
    f.write_text(json.dumps(doc))
    store = tmp_path / "s"
    r = cli("ingest", store, f, "--json", "--labels", "source=file")
    assert r.returncode == 0, r.stderr
    assert "ingested 3 lines" in r.stderr and "rejected 1:" in r.stderr
    assert "invalid timestamp" in r.stderr
    got = entries(store)
    assert got == [(T0 + 1, {"app": "j", "env": "prod", "source": "file"}, "one"),
                   (T0 + 2, {"app": "j", "env": "prod", "source": "file"}, "two"),
                   (T0 + 3, {"app": "k", "source": "file"}, "three")]
    with chunkstore.open(store, read_only=True) as s:
        e = next(iter(s.query('{app="j"} |= "two"')))
        assert e.labels.get("trace_id") == "abc"
    # JSON lines on stdin (one push body per line)
    lines = "\n".join(json.dumps({"streams": [{"stream": {"app": "l"},
                                               "values": [[str(T0 + i), f"l{i}"]]}]})
                      for i in range(3))
    r = cli("ingest", store, "--json", input=lines)
    assert r.returncode == 0, r.stderr
    assert [x[2] for x in entries(store, '{app="l"}')] == ["l0", "l1", "l2"]
    r = cli("ingest", store, "--json", input="{not json")
    assert r.returncode == 1 and r.stderr.startswith("chunkstore: error: ")


def test_usage_errors(tmp_path):
    r = cli("ingest", tmp_path / "s", input="x\n")
    assert r.returncode == 2 and "--labels is required" in r.stderr
    r = cli("ingest", tmp_path / "s", "--labels", "not a label", input="x\n")
    assert r.returncode == 2 and "--labels" in r.stderr
    r = cli("ingest", tmp_path / "s", "--labels", "a=b", "--ts-regex", "(", input="x\n")
    assert r.returncode == 2 and "--ts-regex" in r.stderr
    r = cli("ingest", tmp_path / "s", tmp_path / "missing.log", "--labels", "a=b")
    assert r.returncode == 1 and "missing.log" in r.stderr
    assert "Traceback" not in r.stderr


def test_store_locked_by_another_writer(tmp_path):
    store = tmp_path / "s"
    with chunkstore.open(store):
        r = cli("ingest", store, "--labels", "a=b", input="x\n")
    assert r.returncode == 1 and "in use by another writer" in r.stderr
