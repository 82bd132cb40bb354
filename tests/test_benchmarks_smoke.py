"""The store and query benchmark scripts run end to end on tiny sizes.

``benchmarks/bench_ingest.py``, ``bench_query.py`` and ``bench_needle.py --smoke``
each run in a child process (as CI would), exit 0, print every figure their
issue asks for, and leave ``benchmarks/RESULTS.md`` untouched: only full
runs record.  Both scripts check their own answers against their baselines
and exit 1 on a mismatch, so exit 0 also means the store answered right.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"

#: Row titles each script must print (one per figure of the issue's Benchmarks section).
EXPECTED_ROWS = {
    "bench_ingest.py": ["push(), ~1,000 entries", "push() + close()", "SQLite executemany",
                        "store.append()", "stream(labels).append()", "bytes on disk",
                        "peak RSS", "open() + close()", "open(read_only=True) + close()"],
    "bench_query.py": ["needle, all", "selective, 1 of", "regex:", "(?i) literal:",
                       "parser: {app=\"api\"} \\| logfmt", "limit 100 backward, whole store",
                       "limit 100 backward, half-size store", "4 needle queries, 1 thread"],
    "bench_needle.py": ["ingest with filters (wall)", "ingest with filters (per CPU-second)",
                        "token filter bytes / stored bytes", "rare id (1 line): with filters",
                        "rare id (1 line): vs grep -F -c", "absent id: with filters",
                        "common word: with filters", "id without separator",
                        "blocks read for absent ids"],
}


def _kernels_missing() -> str | None:
    try:
        import chunkstore  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure skips these runs
        return f"chunkstore does not import: {e}"
    return None


@pytest.mark.skipif(_kernels_missing() is not None, reason=_kernels_missing() or "")
@pytest.mark.parametrize("script", sorted(EXPECTED_ROWS))
def test_store_benchmark_smoke_run_prints_every_figure_and_records_nothing(script):
    results = BENCH / "RESULTS.md"
    before = results.read_bytes() if results.exists() else None
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    out = subprocess.run([sys.executable, str(BENCH / script), "--smoke"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "MISMATCH" not in out.stderr
    assert "(not recorded in RESULTS.md)" in out.stdout
    for row in EXPECTED_ROWS[script]:
        assert f"| {row}" in out.stdout, f"{script} --smoke printed no row {row!r}"
    after = results.read_bytes() if results.exists() else None
    assert before == after, "a --smoke run must not append to RESULTS.md"
