"""A reference model of the store, and a state machine that checks a store against it.

:class:`ReferenceStore` implements chunkstore's public write and read API
over plain Python lists, with the same rules for what is accepted and what
is returned, and none of the machinery (no WAL, blocks, chunks, index or
scanner).  Use it as an oracle: do the same things to a real store and to
the model, and compare.  Label validation, LogQL parsing and the pipeline
stages are shared with the real store (they are the specification); the
store's scanner, index, merge, deletion and retention paths are not.  Metric
queries (``query_range``, ``query_instant``) run the store's evaluator over
the model's own entries, read through a
:class:`~chunkstore.logql.evaluator.SampleSource` of the model's.

:class:`StoreStateMachine` is a Hypothesis ``RuleBasedStateMachine`` that
does exactly that, step by step: append, push, flush, log and metric
queries, delete, compact, apply_retention, close and reopen, and a
simulated crash.
Subclass it to plug in your own options or store::

    class MyStoreMachine(StoreStateMachine):
        options = {"block_size": 1024, "retention": "30d"}

    TestMyStore = MyStoreMachine.TestCase

Requires Hypothesis (``pip install 'chunkstore[hypothesis]'``).

The code lives in two modules, one per responsibility: ``chunkstore._reference``
(the model; ``_reference_metric`` for its metric queries) and
``chunkstore._state_machine``; this module is the public face of both.
"""

from __future__ import annotations

# Only re-exports: the private helpers are imported by chunkstore's tests.
# ruff: noqa: E402, F401, I001

from chunkstore._reference import (
    _MAX_METADATA_PAIRS,
    _entry_ts,
    _Held,
    _LogQuery,
    _ReferenceStreamHandle,
    _Stream,
    _validate_entry,
    ReferenceStore,
)
from chunkstore._reference_metric import ReferenceSamples
from chunkstore._state_machine import (
    _DELTA_MS,
    _MINUTE,
    _entry_row,
    _exact_selector,
    _key,
    _outcome,
    _raw_key,
    _same_result,
    StoreStateMachine,
)

__all__ = ["ReferenceStore", "ReferenceSamples", "StoreStateMachine"]

# What this module imported when it held all of the above, still importable
# from here for code written against it.
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import chunkstore
from chunkstore import logql
from chunkstore import strategies as cs
from chunkstore.compaction import CompactionReport
from chunkstore.deletion import DeleteReport, validate_delete_query
from chunkstore.errors import (ChunkstoreError, EntryRejected, LabelError, LimitError,
                               QueryError, StoreClosedError)
from chunkstore.labels import Labels
from chunkstore.logql import ast
from chunkstore.logql import line_filters as _lines
from chunkstore.logql.pipeline import Pipeline
from chunkstore.logql_plan import _line_filter, _stage, parse_selector_matchers, to_matchers
from chunkstore.options import StoreOptions
from chunkstore.querier import time_range
from chunkstore.results import Entry, Stats
from chunkstore.retention import RetentionReport, coerce_policy
from chunkstore.store import PushResult
from chunkstore.timeutil import I64_MAX, I64_MIN, to_ns
