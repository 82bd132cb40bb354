"""Loading a script by path as a module (a test helper).

Benchmarks (``benchmarks/*.py``) and the golden-file writer are scripts, not
package modules; tests import them with :func:`load`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

__all__ = ["BENCH", "load"]

#: the repository's benchmarks directory
BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str, path: Path, *, extra_path: Path | None = None):
    """Import the file ``path`` as the module ``name`` (registered in ``sys.modules``).

    ``extra_path`` is put on ``sys.path`` while it executes, for scripts
    that import their neighbours (``benchmarks/`` modules import ``corpus``).
    """
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    if extra_path is not None:
        sys.path.insert(0, str(extra_path))
    try:
        spec.loader.exec_module(mod)
    finally:
        if extra_path is not None:
            sys.path.remove(str(extra_path))
    return mod
