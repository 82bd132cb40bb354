"""Shared test configuration: Hypothesis profiles and small store helpers.

``HYPOTHESIS_PROFILE=ci`` (what ``.ci/run`` sets) keeps example counts small
enough for two backends in CI; ``dev`` (the default) is a little larger;
``thorough`` is for long local runs.
"""

from __future__ import annotations

import os
import pathlib

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def small_opts():
    """Options that make every code path run on small data: tiny blocks and chunks."""
    return dict(block_size=512, chunk_target_size=2048, maintenance_interval=0)
