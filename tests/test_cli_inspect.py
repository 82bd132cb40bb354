"""``chunkstore inspect``, ``verify`` and the maintenance commands, end to end."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

import chunkstore
from chunkstore.chunkfile import describe_segment

REPO = pathlib.Path(__file__).resolve().parent.parent
T0 = 1_704_067_200_000_000_000
S = 1_000_000_000


def cli(*args, input=None, timeout=60):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "chunkstore", *map(str, args)], input=input,
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


def make_store(path, n=400, head=0):
    with chunkstore.open(path, block_size=1024, chunk_target_size=4096,
                         maintenance_interval=0) as s:
        for i in range(n):
            noise = hashlib.sha1(str(i).encode()).hexdigest()  # keeps chunks from compressing away
            s.append({"app": "a"}, f"line number {i} of stream a {noise}", ts=T0 + i * S)
            s.append({"app": "b", "env": "x"}, f"b says {i}", ts=T0 + i * S + 1)
    if head:
        # leave unsealed entries in the WAL: a writer that has not closed
        s = chunkstore.open(path, maintenance_interval=0)
        for i in range(head):
            s.append({"app": "a"}, f"head line {i}", ts=T0 + (n + i) * S)
        s.flush()
        return s
    return None


def test_inspect_store_text_and_jsonl(tmp_path):
    store = tmp_path / "s"
    writer = make_store(store, head=5)
    try:
        r = cli("inspect", store)
        assert r.returncode == 0, r.stderr
        assert "2 streams" in r.stdout and "805 entries (5 in open head blocks)" in r.stdout
        assert '{app="a"}' in r.stdout and '{app="b", env="x"}' in r.stdout
        assert "RATIO" in r.stdout
        r = cli("inspect", store, "-o", "jsonl")
        d = json.loads(r.stdout)
        with chunkstore.open(store, read_only=True) as s:
            st = s.stats()
        t = d["totals"]
        assert (t["streams"], t["chunks"], t["entries"], t["head_entries"]) == (
            st.streams, st.chunks, st.entries, st.head_entries) == (2, st.chunks, 805, 5)
        a = next(x for x in d["streams"] if x["labels"] == {"app": "a"})
        assert a["head_entries"] == 5 and len(a["chunks"]) > 1
        # blocks, codecs and checksums, read from the segment files themselves
        segs = [describe_segment(p) for p in sorted(store.rglob("*.seg"))]
        assert t["blocks"] == sum(x["totals"]["blocks"] for x in segs) > t["chunks"]
        assert t["damaged_chunks"] == 0
        assert a["codecs"] == ["lz4"] and all(c["checksum_ok"] for c in a["chunks"])
        assert a["blocks"] == sum(c["blocks"] for c in a["chunks"])
        assert (a["min_ts"], a["max_ts"]) == (T0, T0 + 404 * S)
        r = cli("inspect", store)
        assert f"checksums: all {t['blocks']} blocks ok" in r.stdout
        for col in ("BLOCKS", "CODECS", "FROM", "TO", "CRC"):
            assert col in r.stdout, col
        r = cli("inspect", store, "--chunks")
        assert r.stdout.count("segments/2024-01-01/") == t["chunks"]
    finally:
        writer.close()


def test_inspect_segment_file(tmp_path):
    store = tmp_path / "s"
    make_store(store)
    seg = next(store.rglob("*.seg"))
    want = describe_segment(seg)
    r = cli("inspect", seg)
    assert r.returncode == 0, r.stderr
    assert "checksums: all ok" in r.stdout
    assert r.stdout.count("chunk @") == want["totals"]["chunks"]
    assert "lz4" in r.stdout and "FAILED" not in r.stdout
    r = cli("inspect", seg, "-o", "jsonl")
    assert json.loads(r.stdout) == json.loads(json.dumps(want))


def flip_byte_in_a_block(seg: pathlib.Path) -> int:
    d = describe_segment(seg)
    block = d["chunks"][1]["blocks"][0]
    off = block["offset"] + block["stored_bytes"] // 2
    data = bytearray(seg.read_bytes())
    data[off] ^= 0x40
    seg.write_bytes(bytes(data))
    return off


def test_verify_ok_then_flipped_byte(tmp_path):
    store = tmp_path / "s"
    make_store(store)
    r = cli("verify", store)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all checksums verify" in r.stdout
    seg = next(store.rglob("*.seg"))
    flip_byte_in_a_block(seg)
    r = cli("verify", store)
    assert r.returncode == 1
    rel = str(seg.relative_to(store))
    assert f"DAMAGED {rel}" in r.stdout
    assert "  offset " in r.stdout
    with chunkstore.open(store, read_only=True) as s:
        offsets = {p.offset for p in s.verify().problems}
    assert any(f"offset {o}:" in r.stdout for o in offsets)
    assert r.stderr.startswith("chunkstore: error: verify failed") and "Traceback" not in r.stderr
    # inspect of the damaged file marks the block and fails too, and so does the store's
    r = cli("inspect", seg)
    assert r.returncode == 1 and "FAILED" in r.stdout
    r = cli("inspect", store)
    assert r.returncode == 1 and "checksums: 1 chunk(s) FAILED" in r.stdout
    r = cli("inspect", store, "-o", "jsonl")
    d = json.loads(r.stdout)
    assert r.returncode == 1 and d["totals"]["damaged_chunks"] == 1
    assert [s["damaged_chunks"] for s in d["streams"]].count(1) == 1
    # and a query reading the damaged block is an error, not a traceback
    r = cli("query", store, '{app=~".+"}', "--limit", "0")
    assert r.returncode == 1 and r.stderr.startswith("chunkstore: error: ")
    assert str(seg) in r.stderr


def test_inspect_missing_path_and_not_a_segment(tmp_path):
    r = cli("inspect", tmp_path / "nope")
    assert r.returncode == 2
    junk = tmp_path / "junk.seg"
    junk.write_bytes(b"hello, not a segment")
    r = cli("inspect", junk)
    assert r.returncode == 1 and r.stderr.startswith("chunkstore: error: ")
    assert "Traceback" not in r.stderr


def test_verify_missing_store(tmp_path):
    r = cli("verify", tmp_path / "nope")
    assert r.returncode == 2 and "no store at" in r.stderr


# ---------------------------------------------------------------------------
# maintenance: run when the store provides it, else one clear line and exit 1

@pytest.mark.parametrize("args,method", [
    (("compact",), "compact"),
    (("retention",), "apply_retention"),
    (("retention", "--dry-run"), "apply_retention"),
    (("delete", '{app="a"}', "--from", "2024-01-01T00:00:00Z", "--to", "2024-01-01T00:01:00Z"),
     "delete"),
])
def test_maintenance_commands(tmp_path, args, method):
    store = tmp_path / "s"
    make_store(store, n=100)
    cmd, rest = args[0], args[1:]
    r = cli(cmd, store, *rest)
    if not hasattr(chunkstore.Store, method):
        assert r.returncode == 1
        assert r.stderr == f"chunkstore: {cmd} is not available in this version\n"
        return
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(cmd)
    with chunkstore.open(store, read_only=True) as s:
        n = sum(1 for _ in s.query('{app=~".+"}'))
    if cmd == "delete":
        assert n == 200 - 60  # 60 seconds of stream a are gone
    else:
        assert n == 200  # nothing is old enough to expire; compaction keeps every entry


def test_retention_policy_from_options(tmp_path):
    """A store does not record its policy: --period/--rule/--max-bytes give it, --now moves it."""
    store = tmp_path / "s"
    make_store(store, n=400)  # 2024-01-01, 400 s of two streams, several chunks each

    def count(sel='{app=~".+"}'):
        with chunkstore.open(store, read_only=True) as s:
            return sum(1 for _ in s.query(sel))

    r = cli("retention", store)
    assert r.returncode == 0 and "no policy given" in r.stderr and count() == 800
    # as of 2024-01-01T00:05:00Z, a 2 minute period expires the chunks that end before 00:03
    at = "2024-01-01T00:05:00Z"
    r = cli("retention", store, "--period", "2m", "--now", at, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("retention (dry run):") and count() == 800
    dry = int(r.stdout.split("entries", 1)[1].split()[0].replace(",", ""))
    assert 0 < dry < 800
    # a rule keeps stream b for a day: only stream a's old chunks go
    r = cli("retention", store, "--period", "2m", "--rule", '{app="b"}', "1d", "--now", at)
    assert r.returncode == 0, r.stderr
    assert count('{app="b"}') == 400 and 400 - 180 <= count('{app="a"}') < 400
    # everything is years old today
    r = cli("retention", store, "--period", "1d")
    assert r.returncode == 0 and count() == 0
    # bad policies are usage errors
    for bad in (("--rule", '{app="b"', "1d"), ("--rule", '{app="b"}', "soon"),
                ("--max-bytes", "lots"), ("--period", "0s")):
        r = cli("retention", store, *bad)
        assert r.returncode == 2 and "Traceback" not in r.stderr, bad


def test_delete_bad_query_and_missing_store(tmp_path):
    r = cli("delete", tmp_path / "nope", '{app="a"}')
    assert r.returncode == 2
    store = tmp_path / "s"
    make_store(store, n=10)
    r = cli("delete", store, '{app="a"')
    assert r.returncode == 1 and "position" in r.stderr


@pytest.mark.parametrize("cmd,method,extra", [
    ("compact", "compact", ()),
    ("retention", "apply_retention", ("--dry-run",)),
    ("delete", "delete", ('{app="a"}',)),
])
def test_maintenance_not_available_message(tmp_path, monkeypatch, cmd, method, extra):
    """In process, with the store method removed: the message a version without it gives."""
    import io

    from chunkstore.cli import run_command

    store = tmp_path / "s"
    make_store(store, n=5)
    monkeypatch.delattr(chunkstore.Store, method, raising=False)
    out, err = io.StringIO(), io.StringIO()
    assert run_command([cmd, str(store), *extra], out, err) == 1
    assert err.getvalue() == f"chunkstore: {cmd} is not available in this version\n"
    assert out.getvalue() == ""
