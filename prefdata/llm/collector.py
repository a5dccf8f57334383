"""The garbage collector kept out of the way while requests are in flight.

One event loop reads every reply. A full collection walks every object the process holds (imported libraries, the
prompts read, the dataset writer): ~100 ms during which no reply is read and no request is sent, so all requests in
flight wait. The young collections the client's allocations trigger every ~700 objects add ~5 % of the CPU per request.
Objects that exist when the run starts live until it ends, so they are frozen out of every collection, and young
objects are collected less often; both are restored when the run ends (`bench/generate_throughput.py`, which prints
the collector's time per run).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG_THRESHOLD = 10_000  # allocations between young collections during a run (Python's default: 700)


@contextlib.contextmanager
def collector_out_of_the_way() -> Iterator[None]:
    """Freeze the objects alive now, and collect young objects every `YOUNG_THRESHOLD` allocations, until exit.

    Nested or inside a process that froze its own objects already, only the outermost scope that froze unfreezes:
    objects a caller froze stay frozen.
    """
    threshold = gc.get_threshold()
    unfreeze = gc.get_freeze_count() == 0
    gc.freeze()
    gc.set_threshold(max(threshold[0], YOUNG_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if unfreeze:
            gc.unfreeze()
