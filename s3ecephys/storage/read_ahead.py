"""Byte ranges fetched before they are asked for: the next blocks of a scan.

A dask computation over a long dataset reads its blocks on a few threads, one after another.
Each block's task waits a round trip and its transfer before it can decode, and on a link with
real latency that wait, not decoding, sets the pace. So a task reading one block of a scan asks
for the ranges of the blocks it will come to next to be fetched now (:func:`start`; which blocks,
its caller decides); when their own tasks ask for exactly those ranges (:func:`take`), they get
the requests already running, or done.

Bounded: at most :data:`LIMIT` bytes are held ahead (a read-ahead that would pass it is not
made), ranges a read has already asked for are not fetched again, and what nobody takes within
:data:`MAX_AGE` seconds is dropped and its requests cancelled.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Hashable
from concurrent.futures import Future
from typing import Any

LIMIT = 64 * 2**20
MAX_AGE = 30.0
# How long a range set asked for is remembered: not fetched ahead again meanwhile (its own read
# has it), and taken as a sign of which way a scan goes.
ASKED_MEMORY = 5.0

_FINISHED = object()


class InFlight:
    """Requests running on the event loop, and the batches of ``(position, bytes)`` of the ranges
    they have completed (each range once)."""

    def __init__(self, future: Future[None], arrived: queue.SimpleQueue[Any], empty: list):
        self.future = future
        self.arrived = arrived
        self.empty = empty
        future.add_done_callback(lambda _: arrived.put(_FINISHED))

    @classmethod
    def start(
        cls,
        loop: asyncio.AbstractEventLoop,
        get: Callable[[Callable[[list], None]], Any],
        empty: list,
    ) -> InFlight:
        """Run ``get(deliver)`` (a coroutine that delivers batches) on ``loop``."""
        arrived: queue.SimpleQueue[Any] = queue.SimpleQueue()
        return cls(asyncio.run_coroutine_threadsafe(get(arrived.put), loop), arrived, empty)

    def batches(self) -> Generator[list[tuple[int, Any]], None, None]:
        """The batches as they arrive; the requests' error, if they failed."""
        try:
            if self.empty:
                yield self.empty
            while (batch := self.arrived.get()) is not _FINISHED:
                yield batch
            self.future.result()
        finally:
            # A failed or abandoned read leaves no request running behind the caller's back.
            self.future.cancel()


_lock = threading.Lock()
_held: OrderedDict[Hashable, tuple[float, int, InFlight]] = OrderedDict()
_asked: OrderedDict[Hashable, float] = OrderedDict()


def _forget_old(now: float) -> None:
    while _held and next(iter(_held.values()))[0] < now - MAX_AGE:
        _, (_, _, stale) = _held.popitem(last=False)
        stale.future.cancel()
    while _asked and next(iter(_asked.values())) < now - ASKED_MEMORY:
        _asked.popitem(last=False)


def start(key: Hashable, size: int, begin: Callable[[], InFlight]) -> None:
    """Fetch ``size`` bytes ahead under ``key`` with ``begin()``, unless they were asked for or
    fetched ahead already, or would pass :data:`LIMIT`."""
    with _lock:
        _forget_old(time.monotonic())
        if key in _held or key in _asked:
            return
        if sum(held for _, held, _ in _held.values()) + size > LIMIT:
            return
        _held[key] = (time.monotonic(), size, begin())


def take(key: Hashable) -> InFlight | None:
    """The read-ahead of ``key``, if one is held (it is then the caller's); either way ``key``
    counts as asked for."""
    with _lock:
        now = time.monotonic()
        _forget_old(now)
        _asked.pop(key, None)
        _asked[key] = now
        entry = _held.pop(key, None)
    return None if entry is None else entry[2]


def asked(key: Hashable) -> bool:
    """Whether ``key`` was asked for in the last :data:`ASKED_MEMORY` seconds."""
    with _lock:
        _forget_old(time.monotonic())
        return key in _asked
