"""Results of reads that depend only on rollup rows, kept per database and served again.

A fleet-wide read of a window served wholly from rollup rows (whole hours and days inside the
materialized region, no dirty mark among them: `Window.version()`) reads exactly the rows its
plan names at the rollups' generation (migration 0006), so the same key gives the same result
for as long as that generation lasts: a later refresh, a late event's mark, a retention pass
all change the key, never the answer. Windows with raw minutes (edges, the open hour, dirty
hours) are computed every time.

One memo per gateway (one per database and worker), least recently used first out. A result
being computed is computed once: concurrent reads of the same key (the dashboard's fleet page
reads the summary and the attention list side by side, both needing every vehicle's fit) wait
for the first one (`shared`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

_MISSING = object()


class Memo:
    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self.joined = 0  # reads that waited for another's computation instead of their own
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._computing: dict[Hashable, asyncio.Future[Any]] = {}

    def get(self, key: Hashable | None) -> Any:
        """The value kept for `key`, or None (also for a None key: not memoizable)."""
        if key is None:
            return None
        value = self._entries.get(key, _MISSING)
        if value is _MISSING:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable | None, value: Any) -> None:
        if key is None or self.size <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    async def shared(self, key: Hashable | None, compute: Callable[[], Awaitable[Any]]) -> Any:
        """The value kept for `key`, else the one a concurrent read is computing, else
        `compute()`'s, kept. A read whose computation it waited for failed or was cancelled
        computes on its own; a None key is computed every time."""
        if key is None or self.size <= 0:
            return await compute()
        if (value := self.get(key)) is not None:
            return value
        if (pending := self._computing.get(key)) is not None:
            await asyncio.wait([pending])  # cancels this read if it is cancelled, not pending
            if not pending.cancelled():
                self.joined += 1
                return pending.result()
            return await compute()
        pending = asyncio.get_running_loop().create_future()
        self._computing[key] = pending
        try:
            value = await compute()
        except BaseException:
            pending.cancel()  # its waiters compute on their own
            raise
        finally:
            del self._computing[key]
        pending.set_result(value)
        self.put(key, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)
