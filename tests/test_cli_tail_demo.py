"""``chunkstore tail`` following another process's writes, and ``chunkstore demo``."""

from __future__ import annotations

import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import chunkstore

REPO = pathlib.Path(__file__).resolve().parent.parent


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NO_COLOR", None)
    return env


def cli(*args, input=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "chunkstore", *map(str, args)], input=input,
                          capture_output=True, text=True, env=_env(), timeout=timeout, cwd=REPO)


class LineReader:
    """Reads a pipe in a thread so a test can wait for a line with a timeout."""

    def __init__(self, pipe):
        self.q: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._run, args=(pipe,), daemon=True).start()

    def _run(self, pipe):
        for line in pipe:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def wait_for(self, text: str, timeout: float = 20) -> list[str]:
        deadline = time.monotonic() + timeout
        while not any(text in x for x in self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {text!r}; got {self.seen}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"output ended before {text!r}; got {self.seen}")
            self.seen.append(line)
        return self.seen


WRITER = textwrap.dedent("""
    import sys, time, chunkstore
    s = chunkstore.open(sys.argv[1], maintenance_interval=0)
    s.append({"app": "t"}, "old line 1")
    s.append({"app": "t"}, "old line 2")
    s.append({"app": "other"}, "not for tail")
    s.flush()
    print("ready", flush=True)
    for cmd in sys.stdin:
        line = cmd.strip()
        if line == "quit":
            break
        s.append({"app": "t"}, line)
        s.flush()
        print("ok", flush=True)
    s.close()
""")


def test_tail_follows_another_writer_and_exits_0_on_sigint(tmp_path):
    store = tmp_path / "s"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(store)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=_env())
    tail = None
    try:
        assert writer.stdout.readline().strip() == "ready"
        tail = subprocess.Popen(
            [sys.executable, "-m", "chunkstore", "tail", str(store), '{app="t"}',
             "--interval", "0.05", "-o", "jsonl"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
        out = LineReader(tail.stdout)
        out.wait_for("old line 2")  # the last lines first, like tail -f
        for i in range(3):
            writer.stdin.write(f"new line {i}\n")
            writer.stdin.flush()
            assert writer.stdout.readline().strip() == "ok"
        seen = out.wait_for("new line 2")
        assert [json.loads(x)["line"] for x in seen] == [
            "old line 1", "old line 2", "new line 0", "new line 1", "new line 2"]
        tail.send_signal(signal.SIGINT)
        rc = tail.wait(20)
        err = tail.stderr.read()
        assert rc == 0, err
        assert "Traceback" not in err
    finally:
        if tail is not None and tail.poll() is None:
            tail.kill()
        if writer.poll() is None:
            writer.stdin.write("quit\n")
            writer.stdin.flush()
            writer.wait(20)


def test_tail_rejects_metric_query(tmp_path):
    store = tmp_path / "s"
    chunkstore.open(store).close()
    r = cli("tail", store, 'count_over_time({app="t"}[1m])')
    assert r.returncode == 1 and "log query" in r.stderr


def test_demo_builds_a_store_that_answers_queries(tmp_path):
    d = tmp_path / "demo"
    r = cli("demo", d, "--lines", "20000", "--hours", "1", timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "ingested 20,000 lines" in out
    for q in ("$ chunkstore stats", "$ chunkstore labels", "| logfmt | status >= 500",
              "| json |", "line_format", "--context", "--volume", "Try next"):
        assert q in out, q
    assert f"chunkstore tail {d}" in out
    assert "Traceback" not in r.stderr and "exit status" not in out
    with chunkstore.open(d, read_only=True) as s:
        st = s.stats()
        assert st.entries == 20_000 and st.streams == 10
        assert set(s.label_values("app")) == {"api", "web", "payments", "auth", "worker",
                                              "gateway"}
    # the store it leaves behind answers the commands it suggests, e.g. --since
    r = cli("query", d, '{app="web"}', "--since", "30m", "--limit", "3", "-o", "jsonl")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3
    # a second demo into the same (now non-empty) directory is refused
    r = cli("demo", d, "--lines", "10")
    assert r.returncode == 2 and "not empty" in r.stderr
