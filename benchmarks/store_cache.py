"""Stores, SQLite databases and raw files of a corpus, cached under ``benchmarks/.cache``.

Building a 1 GB store or SQLite database takes longer than the queries that
read it, so the read-path benchmarks (``bench_query.py``, ``bench_metric.py``)
build each once and reuse it across runs.  A cached store is reused only if
it opens and holds exactly the corpus's entries and text bytes; every cache
entry is built aside and renamed into place, so a concurrent run sees all of
it or none.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import corpus as corpus_mod
import harness
from bench_ingest import make_batches

__all__ = ["cached_store", "cached_file"]


def _push_all(chunkstore, corpus, path: Path, who: str) -> None:
    """Load ``corpus`` into a new store at ``path``, as ``bench_ingest`` pushes it."""
    with chunkstore.open(path, maintenance_interval=0) as store:
        for batch in make_batches(corpus):
            r = store.push(batch)
            if r.rejected:
                raise RuntimeError(f"{who}: push rejected {r.rejected[:3]}")


def cached_store(chunkstore, corpus, name: str, who: str = "benchmark") -> Path:
    """The store of ``corpus`` under ``.cache/<name>``, built unless a complete one is there."""
    path = harness.BENCH_DIR / ".cache" / name
    lines = corpus_mod.corpus_lines(corpus)
    text = corpus_mod.corpus_bytes(corpus) - lines
    if path.exists():
        try:
            with chunkstore.open(path, read_only=True) as s:
                st = s.stats()
            if st.entries == lines and st.bytes_raw == text:
                return path
        except Exception as e:  # noqa: BLE001 - any failure means "rebuild"
            print(f"{who}: cached store {path} unusable ({e}); rebuilding", file=sys.stderr)
        shutil.rmtree(path, ignore_errors=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    t = time.perf_counter()
    _push_all(chunkstore, corpus, tmp, who)
    try:
        os.replace(tmp, path)
    except OSError:  # another run built it meanwhile: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"built store {path.name} in {time.perf_counter() - t:.1f}s")
    return path


def cached_file(name: str, build) -> Path:
    """``.cache/<name>`` made by ``build(tmp_path)`` unless present (SQLite's -wal/-shm dropped)."""
    path = harness.BENCH_DIR / ".cache" / name
    if not path.exists():
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        build(tmp)
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        os.replace(tmp, path)  # atomic: a concurrent run sees all of it or none
    return path
