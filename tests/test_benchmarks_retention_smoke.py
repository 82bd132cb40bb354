"""``benchmarks/bench_retention.py --smoke`` runs end to end and records nothing.

The script runs in a child process (as CI would), exits 0, prints every
figure issue 6 asks for, and leaves ``benchmarks/RESULTS.md`` untouched: only
full runs record.  The script checks its own answers (matches of a literal
in every compacted store, entries removed by a delete) and exits non-zero on
a mismatch, so exit 0 also means compaction kept and removed the right
entries.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "bench_retention.py"
RESULTS = REPO / "benchmarks" / "RESULTS.md"

#: row titles, one per figure of the issue's Benchmarks section (zstd only when installed)
EXPECTED_ROWS = ["gzip -6 of the raw text", "SQLite file of the same rows",
                 "chunkstore as ingested (lz4)", 'chunkstore after compact(codec="lz4hc")',
                 "compaction throughput, lz4 -> lz4hc", "apply a delete with a line filter",
                 "retention: expire 1 day of 10", "retention: expire 1 day of 5"]


def test_bench_retention_smoke_prints_every_figure_and_records_nothing():
    before = RESULTS.read_bytes() if RESULTS.exists() else None
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for row in EXPECTED_ROWS:
        assert f"| {row}" in proc.stdout, row
    assert "(not recorded in RESULTS.md)" in proc.stdout
    after = RESULTS.read_bytes() if RESULTS.exists() else None
    assert after == before
