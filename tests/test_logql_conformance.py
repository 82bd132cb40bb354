"""Loki's own LogQL conformance scripts, run against chunkstore.

Every ``eval`` of ``shared/conformance/loki-logqltest/*.logqltest`` is one
test, named ``file:line``.  Each scenario (the data loaded up to an eval) is
pushed through the public API into a fresh store, shared by the evals that
read it.  The parser and the comparison live in ``tests/logqltest.py``;
``python tests/logqltest.py`` prints the pass rate per file.

A case we believed Loki got wrong would be listed in ``KNOWN_DIFFERENCES``
with the reason and run as a strict xfail; there are none.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logqltest  # noqa: E402  (a helper module beside this file, not a test)

CONFORMANCE_DIR = (Path(__file__).resolve().parents[1].parent
                   / "shared" / "conformance" / "loki-logqltest")

#: ``file:line`` -> why we believe Loki's expectation is wrong (strict xfail).
KNOWN_DIFFERENCES: dict[str, str] = {}


def _cases():
    if not CONFORMANCE_DIR.is_dir():
        return []
    return logqltest.collect(CONFORMANCE_DIR)


CASES = _cases()


def _params():
    for case in CASES:
        marks = []
        reason = KNOWN_DIFFERENCES.get(case.id)
        if reason is not None:
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
        yield pytest.param(case, id=case.id, marks=marks)


class _Stores:
    """One open store at a time: the scenario of the current case (cases come in file order)."""

    def __init__(self, root: Path):
        self.root = root
        self.scenario = None
        self.store = None
        self.count = 0

    def get(self, case):
        if case.scenario is not self.scenario:
            self.close()
            self.count += 1
            self.store = logqltest.load_store(self.root / f"s{self.count}", case.scenario)
            self.scenario = case.scenario
        return self.store

    def close(self):
        if self.store is not None:
            self.store.close()
            self.store = None
            self.scenario = None


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    s = _Stores(tmp_path_factory.mktemp("logqltest"))
    yield s
    s.close()


@pytest.mark.skipif(not CONFORMANCE_DIR.is_dir(), reason=f"{CONFORMANCE_DIR} not found")
@pytest.mark.parametrize("case", list(_params()) or [pytest.param(None, id="no-scripts")])
def test_loki_conformance(case, stores):
    if case is None:
        pytest.skip("no conformance scripts")
    logqltest.check_case(stores.get(case), case)


@pytest.mark.skipif(not CONFORMANCE_DIR.is_dir(), reason=f"{CONFORMANCE_DIR} not found")
def test_every_script_has_cases():
    files = {p.name for p in CONFORMANCE_DIR.glob("*.logqltest")}
    assert files, "no .logqltest files"
    assert {c.file for c in CASES} == files


def test_script_parser_expansions():
    values = logqltest.parse_samples(["1+2x3", "_", "5x1", "4-1x2"])
    assert values == [1, 3, 5, 7, None, 5, 5, 4, 3, 2]
    assert logqltest.strip_comment('eval x "a # b" `#` # tail') == 'eval x "a # b" `#`'
    assert logqltest.parse_label_set('{a="b", c=""}') == {"a": "b", "c": ""}
    assert logqltest.parse_label_set("{}") == {}
