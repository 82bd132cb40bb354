"""A seeded random store workload and the expected state it implies (hardening suites).

Two users:

* ``tests/test_hardening_kill9.py`` runs this file as a child process,
  ``python tests/hardening/workload.py PATH SEED CURSOR_NS NEXT_ID FLOOR_NS``,
  SIGKILLs it at a random moment and rebuilds the expected state from what it
  printed;
* ``tests/test_hardening_power_loss.py`` drives :class:`Workload` in-process
  under a file-layer shim and feeds the same events to :class:`Expected`.

Protocol: before each operation the workload emits ``B <n> <json>`` (what it is
about to do: each entry's id, stream and timestamp; a delete's streams,
filter and range; the expiry cutoffs of a retention pass or a compaction),
and ``A <n>`` once the call has returned: the acknowledgement.  An operation
with a ``B`` and no ``A`` was in flight at the crash; its effect may or may
not be there.

Lines are self-describing (``id=7 s=2 ts=... tag=beta ...``) and derived from
``(id, stream, ts)`` alone, so the checker verifies every returned entry
byte for byte without keeping it.

Timeline: timestamps are synthetic nanoseconds that grow (with a little
out-of-order jitter), and the store's clock (``now_ns`` wherever the store
reads it: compaction's expiry, tombstone creation) is the workload's cursor.
No write ever lands below the end of an earlier delete or expiry cutoff (the
``floor``): whether a tombstone also hides a *later* write depends on when
compaction retires it, which is not what these suites are about.
"""

from __future__ import annotations

import bisect
import json
import random
import re
import sys
import time
from dataclasses import dataclass

__all__ = ["STREAMS", "POLICY_RULES", "T0", "line_for", "Workload", "Expected",
           "random_options", "patched_clock"]

I64_MIN = -(1 << 63)
S = 10**9
#: synthetic start: ten seconds before a UTC midnight, so segment day directories roll over
T0 = 1_700_006_390 * S

STREAMS = (
    {"app": "a0", "env": "prod"},
    {"app": "a1", "env": "prod"},
    {"app": "a2", "env": "dev"},
    {"app": "a3", "env": "dev"},
)
SELECT_ALL = '{app=~"a.+"}'
TAGS = ("alpha", "beta", "secret", "gamma")
#: (streams selected, delete query, line filter the checker applies)
DELETES = (
    ((0,), '{app="a0"}', None),
    ((1,), '{app="a1"} |= "tag=secret"', ("|=", b"tag=secret")),
    ((2, 3), '{env="dev"} != "tag=alpha"', ("!=", b"tag=alpha")),
    ((0, 3), '{app=~"a0|a3"} |= "tag=beta"', ("|=", b"tag=beta")),
    ((1, 2), '{app=~"a1|a2"}', None),
)
#: default period and per-stream rules of the workload's RetentionPolicy
POLICY_PERIOD = "40s"
POLICY_RULES = (('{app="a0"}', "15s"), ('{env="dev"}', "25s"))

_FILL = ("lorem ipsum dolor sit amet café 日本語 λόγος über "
         "~!@#$%^&*()_+[]{};:,.<>/? 0123456789 ")
_LINE_RE = re.compile(rb"id=(\d+) s=(\d+) ts=(-?\d+) ")


def line_for(eid: int, sidx: int, ts: int) -> str:
    """The line of entry ``eid``: made from ``(eid, sidx, ts)`` only (no ``=`` in the filler)."""
    h = (eid * 2654435761) & 0xFFFFFFFF
    n = 5000 if h % 97 == 0 else (0, 7, 40, 150, 600)[h % 5]
    off = (h >> 8) % len(_FILL)
    fill = (_FILL * (n // len(_FILL) + 2))[off:off + n]
    return f"id={eid} s={sidx} ts={ts} tag={TAGS[(h >> 3) % 4]} {fill}"


def metadata_for(eid: int) -> dict | None:
    return {"trace_id": f"t{eid}"} if eid % 5 == 0 else None


def policy():
    from chunkstore.retention import RetentionPolicy

    return RetentionPolicy(period=POLICY_PERIOD, rules=list(POLICY_RULES))


def random_options(rng: random.Random) -> dict:
    """Small sizes so every path runs: block cuts, seals, WAL and segment rotation."""
    return dict(
        block_size=rng.choice([256, 1024, 4096]),
        chunk_target_size=rng.choice([1024, 4096, 16384]),
        wal_segment_size=rng.choice([1024, 4096, 65536]),
        segment_max_size=rng.choice([4096, 65536, 1 << 20]),
        wal_max_bytes=rng.choice([16384, 1 << 20]),
        head_memory_budget=rng.choice([0, 32768]),
        codec=rng.choice(["lz4", "lz4hc", "none"]),
        # entries come ~1 ms apart: "1s" seals chunks by age every ~1,000
        # entries (the out-of-order window, 0.5 s, is wider than the 50 ms
        # the workload goes back)
        chunk_max_age=rng.choice(["2h", "1s"]),
    )


class patched_clock:
    """Make the store's ``now_ns`` (every chunkstore module that imported it) read ``get()``."""

    def __init__(self, get):
        self.get = get
        self._saved: list = []

    def __enter__(self):
        from chunkstore import timeutil

        orig = timeutil.now_ns
        fake = lambda: self.get()  # noqa: E731
        for name, mod in list(sys.modules.items()):
            if (name == "chunkstore" or name.startswith("chunkstore.")) and \
                    getattr(mod, "now_ns", None) is orig:
                self._saved.append((mod, orig))
                mod.now_ns = fake
        return self

    def __exit__(self, *exc):
        for mod, orig in self._saved:
            mod.now_ns = orig
        self._saved.clear()


class Workload:
    """A seeded random mix of store operations, each announced and acknowledged via ``emit``.

    ``emit(kind, n, payload)`` gets ``"B"`` with the operation's payload before
    the call and ``"A"`` with ``None`` after it returned.  ``cursor`` is the
    next timestamp (ns), ``next_id`` the next entry id, ``floor`` the lowest
    timestamp a write may use.
    """

    WEIGHTS = (("append", 25), ("push", 30), ("flush", 6), ("seal", 6), ("delete", 7),
               ("compact", 5), ("retention", 5), ("reopen", 2))

    def __init__(self, path, seed: int, *, emit, cursor: int = T0, next_id: int = 0,
                 floor: int = T0, fsync: str = "always", options: dict | None = None,
                 max_push: int = 30):
        self.path = path
        self.rng = random.Random(seed)
        self.emit = emit
        self.cursor = max(cursor, floor)
        self.next_id = next_id
        self.floor = floor
        self.max_push = max_push
        opts = random_options(self.rng) if options is None else dict(options)
        opts.update(fsync=fsync, maintenance_interval=0, retention=policy())
        self.options = opts
        self.store = None
        self.n = 0
        names, weights = zip(*self.WEIGHTS, strict=True)
        self._ops = names
        self._weights = weights

    # clock used by the patched now_ns
    def now(self) -> int:
        return self.cursor

    def open(self):
        import chunkstore

        self.store = chunkstore.open(self.path, **self.options)
        return self.store

    def _entry(self, sidx: int) -> list:
        rng = self.rng
        eid = self.next_id
        self.next_id += 1
        self.cursor += rng.randint(1, 2_000_000)
        ts = self.cursor
        if rng.random() < 0.1:  # a little out of order, never below the floor
            ts = max(self.floor, ts - rng.randint(0, 50_000_000))
        return [eid, sidx, ts]

    def _announce(self, payload: dict) -> int:
        self.n += 1
        self.emit("B", self.n, payload)
        return self.n

    def step(self, op: str | None = None) -> str:
        """Run one operation (random unless ``op`` is given); return its name."""
        rng = self.rng
        op = op or rng.choices(self._ops, self._weights)[0]
        store = self.store
        if op == "append":
            e = self._entry(rng.randrange(len(STREAMS)))
            n = self._announce({"op": "w", "e": [e]})
            eid, sidx, ts = e
            store.append(STREAMS[sidx], line_for(eid, sidx, ts), ts=ts,
                         metadata=metadata_for(eid))
        elif op == "push":
            streams = rng.sample(range(len(STREAMS)), rng.randint(1, 3))
            batch, flat = [], []
            for sidx in streams:
                es = [self._entry(sidx) for _ in range(rng.randint(1, self.max_push))]
                flat.extend(es)
                batch.append((STREAMS[sidx], [
                    (ts, line_for(eid, s, ts)) if metadata_for(eid) is None else
                    (ts, line_for(eid, s, ts), metadata_for(eid)) for eid, s, ts in es]))
            n = self._announce({"op": "w", "e": flat})
            result = store.push(batch)
            if result.rejected:
                raise AssertionError(f"workload: push rejected entries: {result.rejected[:3]}")
        elif op == "delete":
            sel, query, flt = DELETES[rng.randrange(len(DELETES))]
            end = self.cursor - rng.randint(0, 3 * S)
            start = None if rng.random() < 0.15 else end - rng.randint(1, 30 * S)
            n = self._announce({"op": "del", "sel": list(sel), "q": query,
                                "f": None if flt is None else [flt[0], flt[1].decode()],
                                "s": I64_MIN if start is None else start, "t": end})
            self.floor = max(self.floor, end)
            store.delete(query, start, end)
        elif op == "retention":
            now = self.cursor + rng.choice([0, 5, 12, 20, 35]) * S
            cut = cutoffs(now)
            n = self._announce({"op": "exp", "now": now, "c": cut})
            self.floor = max([self.floor] + cut)
            self.cursor = max(self.cursor, self.floor)
            store.apply_retention(now=now)
        elif op == "compact":
            cut = cutoffs(self.now())  # compaction also expires entries, by the store's clock
            n = self._announce({"op": "compact", "c": cut})
            self.floor = max([self.floor] + cut)
            store.compact(codec=rng.choice(["lz4hc", "lz4", "none"]))
        elif op == "flush":
            n = self._announce({"op": "flush"})
            store.flush()
        elif op == "seal":
            n = self._announce({"op": "seal"})
            store._seal(list(store.heads.values()))
        elif op == "reopen":
            n = self._announce({"op": "reopen"})
            store.close()
            self.store = None
            self.open()
        else:  # pragma: no cover - a typo in WEIGHTS
            raise ValueError(f"workload: unknown operation {op!r}")
        self.emit("A", n, None)
        return op

    def run(self, n_ops: int | None = None, pause: float = 0.0) -> None:
        i = 0
        while n_ops is None or i < n_ops:
            self.step()
            i += 1
            if pause:
                time.sleep(self.rng.uniform(0, pause))


def cutoffs(now_ns: int) -> list[int]:
    """Per stream, the expiry cutoff the workload's policy gives at ``now_ns``."""
    p = policy()
    return [p.cutoff_ns(labels, now_ns) for labels in STREAMS]


# ---------------------------------------------------------------------------
# the expected state


@dataclass
class Delete:
    sel: frozenset
    op: str | None
    needle: bytes | None
    start: int
    end: int
    acked: bool = False

    def covers(self, sidx: int, ts: int, raw: bytes) -> bool:
        if sidx not in self.sel or not self.start <= ts < self.end:
            return False
        if self.op is None:
            return True
        return (self.needle in raw) == (self.op == "|=")


class CheckFailed(AssertionError):
    """The store's contents disagree with what the acknowledgements promise."""


class Expected:
    """What the store must hold, rebuilt from the workload's ``B``/``A`` events.

    An acknowledged entry must be present unless an acknowledged or in-flight
    delete covers it, or it is below an expiry cutoff (retention and
    compaction drop whole chunks or blocks, so below a cutoff an entry *may*
    go).  An entry covered by an acknowledged delete must never be returned.
    Every returned entry must be one that was written, once, byte-exact.
    Recovery decides the in-flight writes once: one found present is
    required from then on, one found absent must never come back.
    """

    def __init__(self):
        self.entries: dict[int, list] = {}  # eid -> [sidx, ts, ack time or None]
        self.deletes: list[Delete] = []
        self.cutoffs = [I64_MIN] * len(STREAMS)
        self.pending: dict[int, tuple] = {}
        #: in-flight entries a check found absent: they must stay absent
        self.gone: set[int] = set()
        self.max_id = -1
        self.max_ts = T0
        self.floor = T0
        self.durable_at: float | None = None  # begin of the last acked flush/seal/reopen
        self.acked_writes = 0
        self.acked_deletes = 0
        self.expiries = 0
        self.checked = 0

    # -- events ---------------------------------------------------------------
    def feed_line(self, line: str, t: float = 0.0) -> None:
        """One line the child printed (a partial last line is ignored by the caller)."""
        kind, _, rest = line.partition(" ")
        n_s, _, js = rest.partition(" ")
        if kind not in ("B", "A") or not n_s.isdigit():
            raise CheckFailed(f"workload printed something unexpected: {line!r}")
        self.feed(kind, int(n_s), json.loads(js) if js else None, t)

    def feed(self, kind: str, n: int, payload: dict | None, t: float = 0.0) -> None:
        if kind == "B":
            op = payload["op"]
            if op == "w":
                for eid, sidx, ts in payload["e"]:
                    self.entries[eid] = [sidx, ts, None]
                    self.max_id = max(self.max_id, eid)
                    self.max_ts = max(self.max_ts, ts)
            elif op == "del":
                f = payload["f"]
                d = Delete(frozenset(payload["sel"]), None if f is None else f[0],
                           None if f is None else f[1].encode(), payload["s"], payload["t"])
                self.deletes.append(d)
                payload = dict(payload, _d=d)
                self.floor = max(self.floor, d.end)
            elif op in ("exp", "compact"):
                for sidx, c in enumerate(payload["c"]):
                    self.cutoffs[sidx] = max(self.cutoffs[sidx], c)
                    self.floor = max(self.floor, c)
                self.expiries += op == "exp"
            self.pending[n] = (payload, t)
            return
        begun = self.pending.pop(n, None)
        if begun is None:
            raise CheckFailed(f"workload acknowledged operation {n} it never began")
        payload, t_begin = begun
        op = payload["op"]
        if op == "w":
            for eid, _sidx, _ts in payload["e"]:
                self.entries[eid][2] = t
            self.acked_writes += len(payload["e"])
        elif op == "del":
            payload["_d"].acked = True
            self.acked_deletes += 1
        elif op in ("flush", "seal", "reopen"):
            self.durable_at = t_begin if self.durable_at is None else max(self.durable_at, t_begin)

    def end_session(self) -> None:
        """The writer is gone: what is still pending stays 'maybe' forever."""
        self.pending.clear()

    def next_start(self) -> tuple[int, int, int]:
        """``(cursor, next_id, floor)`` for the next session: past everything ever begun."""
        floor = self.floor
        return max(self.max_ts, floor) + 1_000_000, self.max_id + 1, floor

    # -- checking -------------------------------------------------------------
    def check(self, store, *, horizon: float | None = None, promote: bool = True) -> int:
        """Compare the store's whole contents with the expectation; returns entries checked.

        ``horizon`` (batch mode): only entries acknowledged at or before it
        (or before the last acknowledged flush, seal or reopen began) must
        have survived.  With ``promote``, in-flight entries found present
        count as acknowledged from now on (they are durable after this
        reopen).  Raises :class:`CheckFailed` listing the first problems.
        """
        entries = list(store.query(SELECT_ALL, direction="forward"))
        return self.check_entries(entries, horizon=horizon, promote=promote)

    def check_entries(self, entries, *, horizon=None, promote=True) -> int:
        problems: list[str] = []
        present: dict[int, tuple] = {}
        by_stream: list[list] = [[] for _ in STREAMS]
        for e in entries:
            raw = e.raw
            m = _LINE_RE.match(raw)
            if m is None:
                problems.append(f"unknown line {raw[:60]!r} at ts {e.ts}")
                continue
            eid, sidx, ts = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if eid in present:
                problems.append(f"entry {eid} duplicated")
                continue
            if eid in self.gone:
                problems.append(f"entry {eid} was absent after an earlier recovery and came back")
                continue
            if eid > self.max_id or sidx >= len(STREAMS):
                problems.append(f"entry {eid} was never written: {raw[:60]!r}")
                continue
            meta = metadata_for(eid)
            labels = dict(e.labels)
            if (raw != line_for(eid, sidx, ts).encode() or e.ts != ts
                    or dict(e.stream) != STREAMS[sidx]
                    or labels.get("trace_id") != (meta or {}).get("trace_id")):
                problems.append(f"entry {eid} is not byte-exact: ts {e.ts}, labels {labels}, "
                                f"line {raw[:80]!r}")
                continue
            rec = self.entries.get(eid)
            if rec is not None and (rec[0], rec[1]) != (sidx, ts):
                problems.append(f"entry {eid} written as stream {rec[0]} ts {rec[1]}, "
                                f"found stream {sidx} ts {ts}")
                continue
            present[eid] = (sidx, ts)
            by_stream[sidx].append((ts, eid, raw))
        # nothing covered by an acknowledged delete comes back
        for sidx, rows in enumerate(by_stream):
            if not rows:
                continue
            rows.sort()
            keys = [r[0] for r in rows]
            for d in self.deletes:
                if not d.acked or sidx not in d.sel:
                    continue
                lo = bisect.bisect_left(keys, d.start)
                hi = bisect.bisect_left(keys, d.end)
                for ts, eid, raw in rows[lo:hi]:
                    if d.covers(sidx, ts, raw):
                        problems.append(f"entry {eid} (stream {sidx}, ts {ts}) was deleted by an "
                                        f"acknowledged delete [{d.start}, {d.end}) and came back")
        # nothing acknowledged is lost
        must = 0
        durable_at = self.durable_at
        for eid, (sidx, ts, acked) in list(self.entries.items()):
            if ts < self.cutoffs[sidx]:
                del self.entries[eid]  # expired or expiring: never required again
                continue
            if eid in present:
                if acked is None and promote:
                    self.entries[eid][2] = float("-inf")
                must += acked is not None
                continue
            if acked is None:
                if promote:  # the crash lost it: recovery may not bring it back later
                    self.gone.add(eid)
                    del self.entries[eid]
                continue
            if horizon is not None and acked > horizon and not (
                    durable_at is not None and acked <= durable_at):
                continue
            raw = line_for(eid, sidx, ts).encode()
            if any(d.covers(sidx, ts, raw) for d in self.deletes):
                continue
            problems.append(f"acknowledged entry {eid} (stream {sidx}, ts {ts}) is lost")
        if problems:
            more = f" (and {len(problems) - 12} more)" if len(problems) > 12 else ""
            raise CheckFailed(f"{len(problems)} problem(s){more}:\n  " + "\n  ".join(problems[:12]))
        n = len(present) + must
        self.checked += n
        return n


# ---------------------------------------------------------------------------
# child process entry point


def main(argv: list[str]) -> int:
    path, seed, cursor, next_id, floor = argv[1], int(argv[2]), int(argv[3]), int(argv[4]), \
        int(argv[5])
    max_ops = int(argv[6]) if len(argv) > 6 else 1_000_000
    out = sys.stdout

    def emit(kind: str, n: int, payload) -> None:
        if payload is None:
            out.write(f"{kind} {n}\n")
        else:
            out.write(f"{kind} {n} {json.dumps(payload, separators=(',', ':'))}\n")
        out.flush()

    w = Workload(path, seed, emit=emit, cursor=cursor, next_id=next_id, floor=floor)
    with patched_clock(w.now):
        w.open()
        w.run(max_ops)
        w.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
