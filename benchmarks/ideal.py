"""The ideal reader: the floor every method is measured against.

It knows where every chunk is before it starts (the index comes from the local file, see
:mod:`benchmarks.chunk_index`, and the object's ETag and size are given, so not even a HEAD is
sent), asks for exactly the stored chunks a selection touches in **one** call to
:meth:`RangeStore.fetch` (neighbours merged, all requests concurrent: one round trip), and decodes
them in threads. A read cannot need fewer round trips or bytes than this, short of decoding partial
compressed chunks. Reads whose ranges depend on data (a ragged column's index) need one round more.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from benchmarks.chunk_index import Box, DatasetLayout
from s3ecephys.storage.ranges import ObjectInfo, RangeStore, coalesce_ranges


def _decode(layout: DatasetLayout, stored: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """One stored chunk as an array of ``shape`` (filters undone in reverse order)."""
    data = stored
    for name, options in reversed(layout.filters):
        if name == "gzip":
            data = zlib.decompress(data)
        elif name == "shuffle":
            from numcodecs import Shuffle

            data = bytes(Shuffle(elementsize=options).decode(data))
        else:
            raise NotImplementedError(f"{layout.path}: the ideal reader does not undo {name}")
    return np.frombuffer(data, dtype=layout.dtype).reshape(shape)


class IdealReader:
    """Reads boxes of the datasets in ``layouts`` from one object in a single round each."""

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any],
        info: ObjectInfo,
        layouts: dict[str, DatasetLayout],
    ):
        # ``expected`` pins the version: no HEAD is needed before the first read.
        self.store = RangeStore(url, storage_options, expected=info)
        self.layouts = layouts
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)

    def close(self) -> None:
        self._pool.shutdown()

    def read_boxes(self, path: str, boxes: Sequence[Box]) -> list[np.ndarray]:
        """The values of each box of dataset ``path``, all fetched in one round."""
        layout = self.layouts[path]
        if layout.layout == "contiguous":
            runs = [layout.ranges_for(box) for box in boxes]
            bodies = self.store.fetch([run for box_runs in runs for run in box_runs])
            return [np.frombuffer(body, dtype=layout.dtype).copy() for body in bodies]
        chosen = [layout.chunks_touching(box) for box in boxes]
        every = sorted({int(i) for positions in chosen for i in positions})
        assert layout.chunk_offsets is not None and layout.chunk_sizes is not None
        bodies = self.store.fetch(
            [(int(layout.chunk_offsets[i]), int(layout.chunk_sizes[i])) for i in every]
        )
        values = self._pool.map(lambda i, body: self._chunk(layout, i, body), every, bodies)
        decoded = dict(zip(every, values, strict=True))
        return [
            self._assemble(layout, box, positions, decoded)
            for box, positions in zip(boxes, chosen, strict=True)
        ]

    def read_box(self, path: str, box: Box) -> np.ndarray:
        return self.read_boxes(path, [box])[0]

    def channel_rms(self, path: str) -> np.ndarray:
        """Root mean square of every column of a 2-D dataset: all chunks fetched in one round,
        each decoded and folded into per-column sums of squares (nothing else is kept)."""
        layout = self.layouts[path]
        assert layout.layout == "chunked" and layout.chunk_offsets is not None
        assert layout.chunk_sizes is not None and layout.chunk_origins is not None
        rows, columns = layout.shape
        every = list(range(len(layout.chunk_offsets)))
        bodies = self.store.fetch(
            [(int(layout.chunk_offsets[i]), int(layout.chunk_sizes[i])) for i in every]
        )

        def squares(position: int) -> tuple[int, np.ndarray]:
            origin = layout.chunk_origins[position]
            values = self._chunk(layout, position, bodies[position])
            # Edge chunks are stored whole; only the part inside the dataset counts.
            values = values[: rows - origin[0], : columns - origin[1]].astype(np.float64)
            return int(origin[1]), np.einsum("ij,ij->j", values, values)

        total = np.zeros(columns, dtype=np.float64)
        for column, partial in self._pool.map(squares, every):
            total[column : column + len(partial)] += partial
        bodies.clear()
        return np.sqrt(total / rows)

    def transfer(self, path: str) -> dict[str, int]:
        """Every stored chunk of ``path`` fetched in one round as :meth:`channel_rms` fetches
        them, nothing decoded: the transfer alone. Returns how many chunks and bytes arrived."""
        layout = self.layouts[path]
        assert layout.layout == "chunked" and layout.chunk_offsets is not None
        assert layout.chunk_sizes is not None
        chunks = list(zip(layout.chunk_offsets.tolist(), layout.chunk_sizes.tolist(), strict=True))
        # Asking for the requests themselves sends exactly the requests the chunks would (merging
        # them again changes nothing), but each body comes back as it arrived instead of being
        # copied out chunk by chunk: no decode-side work in the timing, one copy of the bytes.
        requests = coalesce_ranges(chunks, gap=self.store.gap, max_request=self.store.max_request)
        received = sum(len(body) for body in self.store.fetch(requests))
        return {"chunks": len(chunks), "bytes_received": received}

    def _chunk(self, layout: DatasetLayout, position: int, stored: bytes) -> np.ndarray:
        assert layout.chunks is not None
        return _decode(layout, stored, layout.chunks)

    @staticmethod
    def _assemble(
        layout: DatasetLayout,
        box: Box,
        positions: np.ndarray,
        decoded: dict[int, np.ndarray],
    ) -> np.ndarray:
        assert layout.chunks is not None and layout.chunk_origins is not None
        starts = np.array([start for start, _ in box])
        out = np.zeros(tuple(stop - start for start, stop in box), dtype=layout.dtype)
        for position in positions:
            origin = layout.chunk_origins[position]
            low = np.maximum(origin, starts)
            high = np.minimum(origin + np.array(layout.chunks), [stop for _, stop in box])
            target = tuple(slice(a - s, b - s) for a, b, s in zip(low, high, starts, strict=True))
            source = tuple(slice(a - o, b - o) for a, b, o in zip(low, high, origin, strict=True))
            out[target] = decoded[int(position)][source]
        return out
