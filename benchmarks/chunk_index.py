"""Where a dataset's bytes are, read from the local copy with h5py: the benchmark's ground truth.

Two things come from here, independent of the s3ecephys engine under test:

* **bytes needed** for a selection: the stored chunks (or, for contiguous data, the byte runs)
  that intersect it. No reader can fetch less without reading partial compressed chunks, so this is
  the floor every method's "bytes fetched" is compared with;
* the index the **ideal reader** uses (see :mod:`benchmarks.ideal`).

The chunk table comes from ``DatasetID.chunk_iter`` (one call for all chunks) and contiguous data
from ``get_offset``/``get_storage_size``, on the local file the benchmark serves, so it describes
exactly the bytes on the (local) S3.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# A selection is one (start, stop) pair per axis: every benchmark workload is a box.
Box = tuple[tuple[int, int], ...]


@dataclass
class DatasetLayout:
    """A dataset's storage as plain data: enough to plan and decode reads without h5py."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    layout: str  # "chunked" or "contiguous"
    chunks: tuple[int, ...] | None = None
    # Filters in pipeline order as (name, options): ("gzip", level), ("shuffle", itemsize).
    filters: list[tuple[str, Any]] = field(default_factory=list)
    # chunked: per stored chunk its first element per axis, byte offset and stored size.
    chunk_origins: np.ndarray | None = None
    chunk_offsets: np.ndarray | None = None
    chunk_sizes: np.ndarray | None = None
    # contiguous: where the data starts (None: never written) and its stored size.
    offset: int | None = None
    size: int = 0

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    def to_dict(self) -> dict[str, Any]:
        def listed(array: np.ndarray | None) -> list | None:
            return None if array is None else array.tolist()

        return {
            "path": self.path,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layout": self.layout,
            "chunks": None if self.chunks is None else list(self.chunks),
            "filters": [list(f) for f in self.filters],
            "chunk_origins": listed(self.chunk_origins),
            "chunk_offsets": listed(self.chunk_offsets),
            "chunk_sizes": listed(self.chunk_sizes),
            "offset": self.offset,
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetLayout:
        def array(values: list | None, columns: int | None = None) -> np.ndarray | None:
            if values is None:
                return None
            values = np.asarray(values, dtype=np.int64)
            return values if columns is None else values.reshape(-1, columns)

        ndim = len(data["shape"])
        return cls(
            path=data["path"],
            shape=tuple(data["shape"]),
            dtype=data["dtype"],
            layout=data["layout"],
            chunks=None if data["chunks"] is None else tuple(data["chunks"]),
            filters=[(name, options) for name, options in data["filters"]],
            chunk_origins=array(data["chunk_origins"], ndim),
            chunk_offsets=array(data["chunk_offsets"]),
            chunk_sizes=array(data["chunk_sizes"]),
            offset=data["offset"],
            size=data["size"],
        )

    # -- planning --------------------------------------------------------------------------------

    def chunks_touching(self, box: Box) -> np.ndarray:
        """Positions (into the chunk arrays) of the stored chunks that intersect ``box``."""
        assert self.layout == "chunked" and self.chunk_origins is not None and self.chunks
        starts = np.array([start for start, _ in box])
        stops = np.array([stop for _, stop in box])
        ends = self.chunk_origins + np.array(self.chunks)
        inside = np.all((self.chunk_origins < stops) & (ends > starts), axis=1)
        return np.flatnonzero(inside)

    def ranges_for(self, box: Box) -> list[tuple[int, int]]:
        """The stored byte ranges ``(offset, size)`` that hold ``box``, in file order."""
        if any(stop <= start for start, stop in box):
            return []
        if self.layout == "chunked":
            assert self.chunk_offsets is not None and self.chunk_sizes is not None
            chosen = self.chunks_touching(box)
            pairs = zip(self.chunk_offsets[chosen], self.chunk_sizes[chosen], strict=True)
            return sorted((int(o), int(s)) for o, s in pairs)
        if self.offset is None:
            return []
        # Contiguous: C order, so a box is one run per combination of its leading rows; every
        # workload on contiguous data is one-dimensional, which is one run.
        if len(self.shape) != 1:
            raise NotImplementedError("contiguous boxes are planned for 1-D datasets only")
        (start, stop), item = box[0], self.itemsize
        return [(self.offset + start * item, (stop - start) * item)]

    def bytes_for(self, boxes: Sequence[Box]) -> int:
        """Stored bytes needed to read all ``boxes`` (a range shared by two boxes counts once)."""
        ranges = {r for box in boxes for r in self.ranges_for(box)}
        return sum(size for _, size in ranges)


def _filters(dataset: Any) -> list[tuple[str, Any]]:
    """The filter pipeline of an h5py dataset, in the order the filters were applied."""
    import h5py

    known = {
        h5py.h5z.FILTER_DEFLATE: "gzip",
        h5py.h5z.FILTER_SHUFFLE: "shuffle",
        h5py.h5z.FILTER_FLETCHER32: "fletcher32",
    }
    plist = dataset.id.get_create_plist()
    pipeline = []
    for position in range(plist.get_nfilters()):
        code, _flags, values, _name = plist.get_filter(position)
        name = known.get(code, f"filter-{code}")
        if name == "gzip":
            pipeline.append((name, int(values[0]) if values else 4))
        elif name == "shuffle":
            pipeline.append((name, dataset.dtype.itemsize))
        else:
            pipeline.append((name, None))
    return pipeline


def read_layout(dataset: Any) -> DatasetLayout:
    """The :class:`DatasetLayout` of an open h5py dataset."""
    import h5py

    layout = dataset.id.get_create_plist().get_layout()
    common = {
        "path": dataset.name,
        "shape": tuple(int(n) for n in dataset.shape),
        "dtype": dataset.dtype.str,
        "filters": _filters(dataset),
    }
    if layout == h5py.h5d.CHUNKED:
        origins, offsets, sizes = [], [], []

        def visit(chunk: Any) -> None:
            origins.append(chunk.chunk_offset)
            offsets.append(chunk.byte_offset)
            sizes.append(chunk.size)

        dataset.id.chunk_iter(visit)
        ndim = len(dataset.shape)
        return DatasetLayout(
            layout="chunked",
            chunks=tuple(int(n) for n in dataset.chunks),
            chunk_origins=np.asarray(origins, dtype=np.int64).reshape(-1, ndim),
            chunk_offsets=np.asarray(offsets, dtype=np.int64),
            chunk_sizes=np.asarray(sizes, dtype=np.int64),
            **common,
        )
    if layout == h5py.h5d.CONTIGUOUS:
        offset = dataset.id.get_offset()
        return DatasetLayout(
            layout="contiguous",
            offset=None if offset is None else int(offset),
            size=int(dataset.id.get_storage_size()),
            **common,
        )
    raise ValueError(f"{dataset.name}: layout {layout} is not one the benchmark reads")


def build_layouts(local_file: str | Path, paths: Sequence[str]) -> dict[str, DatasetLayout]:
    """The layouts of ``paths`` in the local HDF5 file, keyed by the paths as given."""
    import h5py

    with h5py.File(local_file, "r") as handle:
        return {path: read_layout(handle[path]) for path in paths}


def save_layouts(layouts: dict[str, DatasetLayout], target: str | Path) -> None:
    Path(target).write_text(json.dumps({k: v.to_dict() for k, v in layouts.items()}))


def load_layouts(source: str | Path) -> dict[str, DatasetLayout]:
    data = json.loads(Path(source).read_text())
    return {key: DatasetLayout.from_dict(value) for key, value in data.items()}
