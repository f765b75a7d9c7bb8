"""What every way of reading has in common: where the data is (:class:`Context`) and the interface
the worker drives (:class:`Method`: open a file, then metadata, a box of a dataset, runs of a ragged
column, or a per-channel RMS with dask). The readers themselves are in :mod:`benchmarks.methods`
and :mod:`benchmarks.native_readers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Decoded bytes per dask task for readers without their own dask integration: 64 MiB, what
# s3ecephys' to_dask() used when their W7 figures were measured (it now makes 16 MiB blocks, to
# bound memory; with fewer, larger tasks these readers pay fewer lock hand-overs).
DASK_BLOCK_BYTES = 64 * 2**20
# The folder of a run's scratch directory that holds s3ecephys' index cache.
INDEX_CACHE_FOLDER = "index-cache"


@dataclass(frozen=True)
class Context:
    """What a worker needs to reach the data: the proxy's endpoint and where things are."""

    endpoint_url: str
    bucket: str
    keys: dict[str, str]  # role ("lfp", "session") -> S3 key
    sizes: dict[str, int]
    etags: dict[str, str]
    # A private folder for this run (downloads; s3ecephys' index cache in INDEX_CACHE_FOLDER,
    # empty or a copy of a prebuilt one: see Method.prebuilt_index).
    scratch_dir: str
    index_dir: str  # the one-time index builds, one folder each (see Method.prebuilt_index)
    layouts_file: str  # chunk tables from the local files (for the ideal reader)
    local_files: dict[str, str]  # role -> the local file the S3 object was uploaded from
    # The S3 server's process (the runner measures its CPU time; workers do not use it).
    server_pid: int | None = None

    def url(self, role: str) -> str:
        return f"s3://{self.bucket}/{self.keys[role]}"

    def http_url(self, role: str) -> str:
        return f"{self.endpoint_url}/{self.bucket}/{self.keys[role]}"

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"anon": True, "endpoint_url": self.endpoint_url}

    def references_file(self, role: str) -> Path:
        return Path(self.index_dir) / "kerchunk" / f"{role}.json"

    @property
    def index_cache(self) -> Path:
        """s3ecephys' index cache of this run (the folder ``$S3ECEPHYS_CACHE_DIR`` names)."""
        return Path(self.scratch_dir) / INDEX_CACHE_FOLDER


class Method:
    """A way of reading; subclasses say how to open a file and read what workloads ask for."""

    name = ""
    label = ""
    # Why a workload kind cannot be measured for this method (kind -> reason), if so.
    not_applicable: dict[str, str] = {}
    # Whether the method's answers are values read from the file, to be checked against the
    # reference; a method that only moves bytes has nothing to check.
    decodes = True
    # The one-time index build the method reads through (a folder of Context.index_dir made
    # before the runs, see benchmarks.run), if any.
    prebuilt_index: str | None = None

    def __init__(self, context: Context):
        self.context = context

    def environment(self) -> dict[str, str]:
        """Environment variables the worker sets before anything is imported."""
        return {}

    def import_modules(self) -> None:
        """Import what a user of the method imports, before the clock and the memory baseline
        start; what the method imports by itself, later, is part of its measured cost."""

    def open(self, role: str) -> Any:
        raise NotImplementedError

    def close(self, handle: Any) -> None:
        close = getattr(handle, "close", None)
        if close is not None:
            close()

    def dataset(self, handle: Any, path: str) -> Any:
        return handle[path]

    def metadata(self, handle: Any, path: str) -> dict[str, Any]:
        dataset = self.dataset(handle, path)
        attributes = {name: dataset.attrs[name] for name in dataset.attrs}
        return {
            "shape": tuple(dataset.shape),
            "dtype": str(dataset.dtype),
            "chunks": tuple(dataset.chunks) if dataset.chunks else None,
            "attributes": sorted(attributes),
        }

    def read_box(self, handle: Any, path: str, box: tuple[tuple[int, int], ...]) -> np.ndarray:
        return self.dataset(handle, path)[tuple(slice(start, stop) for start, stop in box)]

    def read_ragged(
        self, handle: Any, data_path: str, index_path: str, units: tuple[int, ...]
    ) -> list[np.ndarray]:
        """The runs of a ragged column: its index, then one slice per unit, one after another."""
        ends = self.dataset(handle, index_path)[()]
        data = self.dataset(handle, data_path)
        return [data[(int(ends[u - 1]) if u else 0) : int(ends[u])] for u in units]

    def channel_rms(self, handle: Any, path: str) -> np.ndarray:
        """Per-column RMS of a 2-D dataset with dask over the method's array (one lock: h5py
        objects are not thread-safe), in blocks of whole chunk rows and all columns."""
        import dask.array as da

        dataset = self.dataset(handle, path)
        array = da.from_array(dataset, chunks=self.dask_chunks(dataset), lock=True)
        return rms(array)

    def dask_chunks(self, dataset: Any) -> tuple[int, int]:
        rows, columns = dataset.shape
        chunk_rows = dataset.chunks[0] if dataset.chunks else 1
        per_row = columns * dataset.dtype.itemsize
        block_rows = max(chunk_rows, DASK_BLOCK_BYTES // per_row // chunk_rows * chunk_rows)
        return (min(rows, block_rows), columns)

    def own_stats(self, handle: Any) -> dict[str, int] | None:
        """The method's own count of requests, bytes and round trips, if it keeps one."""
        return None

    def settings(self) -> dict[str, Any]:
        """The settings that matter for the figures (block sizes, cache types ...)."""
        return {}


def rms(array: Any) -> np.ndarray:
    import dask.array as da

    squares = (array.astype(np.float64) ** 2).mean(axis=0)
    return da.sqrt(squares).compute()
