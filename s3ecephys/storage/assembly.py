"""Which requests bring a set of byte ranges, and each range handed out once its bytes are in.

:func:`coalesce_ranges` decides the requests (neighbours merged across small gaps, long ranges
split); :class:`Assembly` keeps each request's body as it arrives and hands a range out the moment
the body it lies in has reached its end, so callers can decode while the rest is on the wire.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

# Waiting for one more request on S3 costs ~20-60 ms, in which ~1-5 MB arrive on one connection:
# a gap below this is cheaper to download than to skip.
DEFAULT_GAP = 512 * 1024
# Long ranges split into parts of this size, so that one big read runs on several connections.
DEFAULT_MAX_REQUEST = 8 * 2**20


def coalesce_ranges(
    ranges: Sequence[tuple[int, int]],
    *,
    gap: int = DEFAULT_GAP,
    max_request: int = DEFAULT_MAX_REQUEST,
) -> list[tuple[int, int]]:
    """The requests that cover ``ranges``: sorted, merged across gaps <= ``gap``, split at
    ``max_request`` bytes. Overlapping and repeated ranges are fetched once."""
    merged: list[list[int]] = []
    for offset, length in sorted((o, n) for o, n in ranges if n > 0):
        if merged and offset <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], offset + length)
        else:
            merged.append([offset, offset + length])
    requests = []
    for start, end in merged:
        parts = -(-(end - start) // max_request)
        step = -(-(end - start) // parts)
        requests.extend((o, min(step, end - o)) for o in range(start, end, step))
    return requests


class Assembly:
    """Which asked ranges each request carries, handed out as soon as all their bytes are in.

    A request's body is kept as the pieces it arrived in (a retried request goes on from where
    its answer was cut); a range is handed out once, the moment the body it lies in has reached
    its end: as a slice of the piece that holds it, joined only when it straddles pieces or the
    two parts of a split request.
    """

    def __init__(
        self, ranges: Sequence[tuple[int, int]], requests: Sequence[tuple[int, int]], views: bool
    ):
        self.requests = requests
        self.views = views
        self.count = len(ranges)
        self.filled = [0] * len(requests)
        self.empty = [(position, b"") for position, (_, length) in enumerate(ranges) if not length]
        self._pieces: list[list[bytes]] = [[] for _ in requests]
        self._piece_starts: list[list[int]] = [[] for _ in requests]
        # Per request: (end, position, offset) of the ranges inside it, by end; and how many of
        # them have been handed out.
        self._inside: list[list[tuple[int, int, int]]] = [[] for _ in requests]
        self._handed = [0] * len(requests)
        # Per request: the ranges that need it and others (their numbers in ``_spans``), and
        # for each such range how many of its requests are still incomplete.
        self._across: list[list[int]] = [[] for _ in requests]
        self._spans: list[tuple[int, int, int, range]] = []
        self._waiting: list[int] = []
        starts = [offset for offset, _ in requests]
        for position, (offset, length) in enumerate(ranges):
            if not length:
                continue
            first = bisect.bisect_right(starts, offset) - 1
            last = bisect.bisect_left(starts, offset + length) - 1
            if first == last:
                self._inside[first].append((offset + length, position, offset))
                continue
            for index in range(first, last + 1):
                self._across[index].append(len(self._spans))
            self._spans.append((position, offset, length, range(first, last + 1)))
            self._waiting.append(last + 1 - first)
        for inside in self._inside:
            inside.sort()

    def add(self, index: int, data: bytes) -> list[tuple[int, Any]]:
        """The next bytes of request ``index`` have arrived: the ranges now complete."""
        self._piece_starts[index].append(self.filled[index])
        self._pieces[index].append(data)
        self.filled[index] += len(data)
        request_offset, request_length = self.requests[index]
        reached, inside = request_offset + self.filled[index], self._inside[index]
        ready = []
        while self._handed[index] < len(inside) and inside[self._handed[index]][0] <= reached:
            end, position, offset = inside[self._handed[index]]
            ready.append((position, self._cut(index, offset - request_offset, end - offset)))
            self._handed[index] += 1
        if self.filled[index] == request_length:
            for span in self._across[index]:
                self._waiting[span] -= 1
                if not self._waiting[span]:
                    position, offset, length, parts = self._spans[span]
                    ready.append((position, self._join(offset, length, parts)))
        return ready

    def _cut(self, index: int, start: int, length: int) -> Any:
        """``length`` bytes from ``start`` of request ``index``'s body."""
        starts, pieces = self._piece_starts[index], self._pieces[index]
        number = bisect.bisect_right(starts, start) - 1
        within = start - starts[number]
        if within + length <= len(pieces[number]):
            piece = memoryview(pieces[number]) if self.views else pieces[number]
            return piece[within : within + length]
        parts = []
        while length > 0:
            within = start - starts[number]
            part = memoryview(pieces[number])[within : within + length]
            parts.append(part)
            start, length, number = start + len(part), length - len(part), number + 1
        return b"".join(parts)

    def _join(self, offset: int, length: int, parts: range) -> bytes:
        pieces, end = [], offset + length
        for index in parts:
            request_offset, request_length = self.requests[index]
            start = max(offset, request_offset) - request_offset
            stop = min(end, request_offset + request_length) - request_offset
            pieces.append(self._cut(index, start, stop - start))
        return b"".join(pieces)
