"""The peers that read HDF5 natively, as s3ecephys does: their own parser, range reads, no libhdf5.

* **h5coro** (SlideRule): every dataset read in a thread of its own, metadata and chunks read
  through a cache of 4 MiB lines; opened with its HTTP driver (plain range GETs on the object's
  URL, so it goes through the proxy like every other method, as remfile does; its S3 driver has no
  endpoint option).
* **pyfive**: a pure-Python h5py look-alike over an fsspec file object, opened with the s3fs
  options its documentation gives for S3 (1 MiB read-ahead blocks); it fetches the chunks a
  selection touches with one ``cat_ranges`` call and walks B-trees node by node.

Neither keeps an index between processes: every run parses the file's metadata again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.method_base import Method, rms

# h5coro's layout code for contiguous storage (H5Dataset.CONTIGUOUS_LAYOUT).
_H5CORO_CONTIGUOUS = 1
# pyfive's documented s3fs settings for S3 (its "Using S3/Object Storage" example).
PYFIVE_S3_BLOCK = 2**20


class H5coro(Method):
    """h5coro's ``H5Coro`` object with its HTTP driver; reads are ``readDatasets`` with a
    hyperslice, W7's blocks too (h5coro has no dask integration; its xarray backend reads whole
    variables)."""

    name = "h5coro"
    label = "h5coro (HTTP driver)"

    def import_modules(self) -> None:
        from h5coro import h5coro, webdriver  # noqa: F401

    def open(self, role: str) -> Any:
        from h5coro import h5coro, webdriver

        return h5coro.H5Coro(self.context.http_url(role), webdriver.HTTPDriver)

    def metadata(self, handle: Any, path: str) -> dict[str, Any]:
        _, attributes, meta = handle.inspectPath(path, w_attr=True)
        shape = meta.getShape()
        return {
            "shape": shape,
            "dtype": str(meta.getNumpyType()),
            # The layout message's dimensions, as h5coro reads them (their first ndims).
            "chunks": tuple(meta.chunkDimensions[: len(shape)]) if meta.chunkDimensions else None,
            "attributes": sorted(attributes),
        }

    def read_box(self, handle: Any, path: str, box: tuple[tuple[int, int], ...]) -> np.ndarray:
        return _h5coro_read(handle, path, [list(axis) for axis in box])

    def read_ragged(
        self, handle: Any, data_path: str, index_path: str, units: tuple[int, ...]
    ) -> list[np.ndarray]:
        ends = _h5coro_read(handle, index_path, None)
        bounds = [(int(ends[u - 1]) if u else 0, int(ends[u])) for u in units]
        _, _, meta = handle.inspectPath(data_path, w_attr=False)
        if meta.layout == _H5CORO_CONTIGUOUS:
            # h5coro 1.0.7 reads a hyperslice [a, b) of a contiguous dataset as b - a values from
            # the dataset's start (values wrong for a > 0), so the runs are cut from the column
            # read whole: what a user of h5coro has to do (tests/test_benchmark_tools.py checks
            # that the defect is still there).
            column = _h5coro_read(handle, data_path, None)
            return [column[a:b] for a, b in bounds]
        # Every run in a background read of its own (block=False), all in flight together.
        promises = [
            handle.readDatasets([{"dataset": data_path, "hyperslice": [[a, b]]}], block=False)
            for a, b in bounds
        ]
        return [_h5coro_values(promise, data_path) for promise in promises]

    def channel_rms(self, handle: Any, path: str) -> np.ndarray:
        import dask.array as da

        _, _, meta = handle.inspectPath(path, w_attr=False)
        shape = meta.getShape()
        chunks = tuple(meta.chunkDimensions[: len(shape)]) or None
        array = _H5coroArray(handle, path, shape, meta.getNumpyType(), chunks)
        # No lock: h5coro reads datasets from many threads at once by design.
        return rms(da.from_array(array, chunks=self.dask_chunks(array), lock=False))


def _h5coro_values(promise: Any, path: str) -> np.ndarray:
    values = promise[path]
    if values is None:
        # h5coro logs a failed read and hands back a null dataset; say so instead.
        raise RuntimeError(f"h5coro could not read {path} (see its log)")
    return values


def _h5coro_read(handle: Any, path: str, hyperslice: list[list[int]] | None) -> np.ndarray:
    request: dict[str, Any] = {"dataset": path, "hyperslice": hyperslice or []}
    return _h5coro_values(handle.readDatasets([request], block=True), path)


class _H5coroArray:
    """What ``dask.array.from_array`` needs of a dataset read by h5coro: shape, dtype, chunks, and
    ``[slices]`` answered with one hyperslice read."""

    def __init__(
        self,
        handle: Any,
        path: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        chunks: tuple[int, ...] | None,
    ):
        self.handle, self.path, self.shape, self.dtype = handle, path, shape, dtype
        self.chunks, self.ndim = chunks, len(shape)

    def __getitem__(self, selection: Any) -> np.ndarray:
        if not isinstance(selection, tuple):
            selection = (selection,)
        box = []
        for axis, size in enumerate(self.shape):
            part = selection[axis] if axis < len(selection) else slice(None)
            start, stop, step = part.indices(size)
            if step != 1:
                raise ValueError("h5coro reads contiguous hyperslices only")
            box.append([start, stop])
        if any(stop <= start for start, stop in box):
            # dask asks for an empty corner to learn the array type; h5coro fails on it.
            return np.empty([max(0, stop - start) for start, stop in box], dtype=self.dtype)
        return _h5coro_read(self.handle, self.path, box)


class Pyfive(Method):
    """pyfive over an s3fs file object (``pyfive.File(fs.open(...))``), h5py-style reads."""

    name = "pyfive"
    label = "pyfive + s3fs (1 MiB read-ahead, as its docs)"

    def import_modules(self) -> None:
        import pyfive  # noqa: F401
        import s3fs  # noqa: F401

    def open(self, role: str) -> Any:
        import pyfive
        import s3fs

        filesystem = s3fs.S3FileSystem(
            **self.context.storage_options,
            skip_instance_cache=True,
            default_fill_cache=False,
            default_cache_type="readahead",
            default_block_size=PYFIVE_S3_BLOCK,
        )
        remote = filesystem.open(f"{self.context.bucket}/{self.context.keys[role]}", "rb")
        return _PyfiveFile(pyfive.File(remote, "r"), remote)

    def dataset(self, handle: Any, path: str) -> Any:
        return handle.file[path]

    def close(self, handle: Any) -> None:
        handle.file.close()
        handle.remote.close()

    def channel_rms(self, handle: Any, path: str) -> np.ndarray:
        import dask.array as da

        dataset = self.dataset(handle, path)
        # No lock: pyfive's datasets are thread-safe (its documentation's parallel example).
        return rms(da.from_array(dataset, chunks=self.dask_chunks(dataset), lock=False))


class _PyfiveFile:
    """A pyfive file and the s3fs file object under it (pyfive leaves that one open)."""

    def __init__(self, file: Any, remote: Any):
        self.file, self.remote = file, remote
