"""Background compaction: ``store.compact()`` every ``compaction_interval`` seconds.

The writer starts one daemon thread, ``chunkstore-compaction``, when the
store is opened with ``compaction_interval > 0`` (``chunkstore.open(path,
compaction_interval="1h", compaction_codec="zstd")``).  It is a thread of its
own rather than a step of the maintenance pass so that a long compaction
never delays idle sealing and retention, and so that it works with
``maintenance_interval=0``.

A pass is an ordinary :meth:`Store.compact` call: it takes the store lock, so
it is serialised with writes, retention, deletes and ``close()`` (which waits
for a pass in progress), and it is as crash-safe as a foreground one.  The
thread stops when the store closes (it shares the maintenance thread's stop
event) or after a write failure has broken the store; a failed pass is
logged, not raised, and the next interval tries again.
"""

from __future__ import annotations

import logging
import threading

from chunkstore.errors import StoreClosedError

__all__ = ["start"]

log = logging.getLogger("chunkstore.compaction")


def start(store) -> threading.Thread | None:
    """Start the background compaction thread of a writable store; None when off."""
    interval = store.options.compaction_interval
    if not interval or store.read_only:
        return None
    t = threading.Thread(target=_loop, args=(store, interval, store.options.compaction_codec),
                         name="chunkstore-compaction", daemon=True)
    t.start()
    return t


def _loop(store, interval: float, codec: str) -> None:
    stop = store._maint_stop
    while not stop.wait(interval):
        if store._closed or store._broken is not None:
            return
        try:
            store.compact(codec=codec)
        except StoreClosedError:
            return  # close() took the lock between the wait and this pass
        except Exception:  # keep the thread alive; the error is logged, not lost
            log.exception("store %s: background compaction failed", store.path)
