"""Query statistics count every line a query looks at, wherever it lives; context reads lazily.

``store.last_query_stats.lines_scanned`` must count the lines of sealed
chunks, cut head blocks and the open head block alike (the open head block
is scanned raw, with nothing decompressed), for log queries and for both
paths of metric queries.  ``store.context`` must read only the blocks
around the entry, not the whole stream before it.
"""

from __future__ import annotations

import chunkstore

S = 1_000_000_000


def test_lines_scanned_counts_the_open_head_block(store_path):
    with chunkstore.open(store_path, maintenance_interval=0) as s:
        for i in range(7):
            s.append({"app": "a"}, f"x={i}", ts=(i + 1) * S)
        list(s.query('{app="a"} |= "x=3"'))
        st = s.last_query_stats
        assert (st.lines_scanned, st.lines_matched, st.lines_returned) == (7, 1, 1)

        s.query_range('count_over_time({app="a"} |= "x" [10s])', 0, 10 * S, "5s")
        assert s.last_query_stats.fast_path and s.last_query_stats.lines_scanned == 7

        s.query_range('count_over_time({app="a"} | logfmt [10s])', 0, 10 * S, "5s")
        assert not s.last_query_stats.fast_path and s.last_query_stats.lines_scanned == 7


def test_lines_scanned_adds_up_across_chunks_cut_blocks_and_head(store_path, small_opts):
    with chunkstore.open(store_path, **small_opts) as s:
        n = 500
        for i in range(n):
            s.append({"app": "a"}, f"line {i:04d} some padding text", ts=(i + 1) * S)
        list(s.query('{app="a"} != "padding"', direction="forward"))  # nothing to skip
        st = s.last_query_stats
        assert st.chunks > 1  # the data spans sealed chunks and the head
        assert st.lines_scanned == n and st.lines_returned == 0


def test_context_before_reads_only_nearby_blocks(store_path, small_opts):
    with chunkstore.open(store_path, **small_opts) as s:
        for i in range(3000):
            s.append({"app": "a"}, f"line {i:05d} with some padding text", ts=(i + 1) * S)
        list(s.query('{app="a"}'))
        whole = s.last_query_stats.blocks_read
        hit = next(iter(s.query('{app="a"} |= "line 02990"')))
        before, after = s.context(hit, before=3, after=0)
        assert [e.line for e in before] == [f"line {i:05d} with some padding text"
                                            for i in (2987, 2988, 2989)]
        assert after == []
        # the last query context ran is the one for the older lines
        assert s.last_query_stats.blocks_read <= 3 < whole // 10, (
            s.last_query_stats.blocks_read, whole)


def test_blocks_outside_the_time_range_are_counted_as_skipped(store_path, small_opts):
    # a log query's stats say which blocks of the chunks it opened lay outside
    # [start, end) and went unread (the CLI prints "N skipped by time")
    with chunkstore.open(store_path, **small_opts) as s:
        n = 500
        for i in range(n):
            s.append({"app": "a"}, f"line {i:04d} some padding text", ts=(i + 1) * S)
        list(s.query('{app="a"}', direction="forward"))
        whole = s.last_query_stats
        assert whole.blocks_skipped == 0
        got = list(s.query('{app="a"}', start=200 * S, end=210 * S, direction="forward"))
        st = s.last_query_stats
        assert [e.ts for e in got] == [i * S for i in range(200, 210)]
        assert st.blocks_skipped > 0 and st.blocks_read < whole.blocks_read
