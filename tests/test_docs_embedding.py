"""The code of docs/EMBEDDING.md runs as written, so the guide cannot rot.

Every ```python block of the guide is executed in document order, in one
namespace, with an empty temporary directory as the working directory (the
snippets continue one another, as the guide says). The complete example at
the end also runs on its own in a fresh interpreter, the way a user would
run it, on whichever backend this test run uses.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import chunkstore

DOC = Path(__file__).resolve().parent.parent / "docs" / "EMBEDDING.md"
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
COMPLETE_EXAMPLE = "## A complete example"


def _blocks(text: str | None = None) -> list[str]:
    return _PYTHON_BLOCK.findall(DOC.read_text() if text is None else text)


def _complete_example() -> str:
    section = DOC.read_text().split(COMPLETE_EXAMPLE, 1)[1]
    return _blocks(section)[0]


def _close_stores(namespace: dict) -> None:
    """Close what a failing block left open, so no lock or thread outlives the test."""
    for value in namespace.values():
        if isinstance(value, chunkstore.Store):
            value.close()


def test_the_guide_has_its_snippets_and_example():
    blocks = _blocks()
    assert len(blocks) >= 10, len(blocks)
    assert "def main():" in _complete_example()


def test_every_python_block_runs_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    try:
        for number, code in enumerate(_blocks(), 1):
            exec(compile(code, f"docs/EMBEDDING.md, python block {number}", "exec"), namespace)
    finally:
        _close_stores(namespace)
    out = capsys.readouterr().out
    # what the comments of the guide say the snippets print
    assert "31536000.0" in out                 # the audit rule's priority wins
    assert "tail: level=error msg=disk full" in out
    assert "too far behind" in out
    assert "stored 5000 lines in 3 streams" in out
    assert "counted from the blocks: True" in out
    assert (tmp_path / "data" / "logs" / "index.log").exists()


def test_the_complete_example_runs_on_its_own(tmp_path):
    script = tmp_path / "collector.py"
    script.write_text(_complete_example())
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=dict(os.environ),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "stored 5000 lines in 3 streams" in run.stdout
    assert "counted from the blocks: True" in run.stdout
    assert "refused" not in run.stdout
    with chunkstore.open(tmp_path / "collector-data", read_only=True) as store:
        assert store.stats().entries == 5000
