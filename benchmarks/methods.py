"""The ways of reading an HDF5 file on S3 that the benchmark compares, behind one interface.

Each :class:`Method` opens a file (``"lfp"`` or ``"session"``) and answers the four kinds of
workload: metadata, a box of a dataset, runs of a ragged column, and a per-channel RMS of a whole
2-D dataset with dask. Every method is used the way its documentation shows, with its defaults
unless its name says otherwise; where a method has a better call for a job (s3ecephys'
``read_slices`` for several runs at once, ``to_dask`` for dask) it is used, because that is what
its users would do. A method instance lives in one worker process (:mod:`benchmarks.worker`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Decoded bytes per dask task for readers without their own dask integration: 64 MiB, what
# s3ecephys' to_dask() used when their W7 figures were measured (it now makes 16 MiB blocks, to
# bound memory; with fewer, larger tasks these readers pay fewer lock hand-overs).
DASK_BLOCK_BYTES = 64 * 2**20
S3FS_BLOCK_CACHE = 2 * 2**20


@dataclass(frozen=True)
class Context:
    """What a worker needs to reach the data: the proxy's endpoint and where things are."""

    endpoint_url: str
    bucket: str
    keys: dict[str, str]  # role ("lfp", "session") -> S3 key
    sizes: dict[str, int]
    etags: dict[str, str]
    scratch_dir: str  # a private, empty folder for this run (downloads, a cold index cache)
    warm_cache_dir: str  # s3ecephys' index cache, filled before the runs
    references_dir: str  # kerchunk references, built before the runs
    layouts_file: str  # chunk tables from the local files (for the ideal reader)
    local_files: dict[str, str]  # role -> the local file the S3 object was uploaded from

    def url(self, role: str) -> str:
        return f"s3://{self.bucket}/{self.keys[role]}"

    def http_url(self, role: str) -> str:
        return f"{self.endpoint_url}/{self.bucket}/{self.keys[role]}"

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"anon": True, "endpoint_url": self.endpoint_url}

    def references_file(self, role: str) -> Path:
        return Path(self.references_dir) / f"{role}.json"


class Method:
    """A way of reading; subclasses say how to open a file and read what workloads ask for."""

    name = ""
    label = ""
    # Why a workload kind cannot be measured for this method (kind -> reason), if so.
    not_applicable: dict[str, str] = {}
    # Whether the method's answers are values read from the file, to be checked against the
    # reference; a method that only moves bytes has nothing to check.
    decodes = True

    def __init__(self, context: Context):
        self.context = context

    def import_modules(self) -> None:
        """Import what the method uses, before the clock and the memory baseline start."""

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
        return _rms(array)

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


def _rms(array: Any) -> np.ndarray:
    import dask.array as da

    squares = (array.astype(np.float64) ** 2).mean(axis=0)
    return da.sqrt(squares).compute()


# -- s3ecephys ------------------------------------------------------------------------------------


class S3ecephys(Method):
    """s3ecephys' engine: cached index, one concurrent fetch per read."""

    name = "s3ecephys-cold"
    label = "s3ecephys, cold (empty index cache)"

    def import_modules(self) -> None:
        import s3fs  # noqa: F401

        import s3ecephys.hdf5  # noqa: F401
        import s3ecephys.hdf5.indexer  # noqa: F401

    def cache_dir(self) -> str:
        return str(Path(self.context.scratch_dir) / "index-cache")

    def open(self, role: str) -> Any:
        from s3ecephys.hdf5 import open_hdf5

        return open_hdf5(
            self.context.url(role),
            storage_options=self.context.storage_options,
            cache_dir=self.cache_dir(),
        )

    def metadata(self, handle: Any, path: str) -> dict[str, Any]:
        return super().metadata(handle, path)

    def read_ragged(
        self, handle: Any, data_path: str, index_path: str, units: tuple[int, ...]
    ) -> list[np.ndarray]:
        ends = handle[index_path][()]
        slices = [slice(int(ends[u - 1]) if u else 0, int(ends[u])) for u in units]
        # All runs in one concurrent fetch: the engine's call for ragged columns.
        return handle[data_path].read_slices(slices)

    def channel_rms(self, handle: Any, path: str) -> np.ndarray:
        return _rms(handle[path].to_dask())

    def own_stats(self, handle: Any) -> dict[str, int] | None:
        stats = handle.store.stats
        return {"requests": stats.requests, "bytes": stats.bytes, "round_trips": stats.round_trips}


class S3ecephysWarm(S3ecephys):
    name = "s3ecephys-warm"
    label = "s3ecephys, warm (index cached)"

    def cache_dir(self) -> str:
        return self.context.warm_cache_dir


# -- h5py over a file object ----------------------------------------------------------------------


class H5pyOverS3fs(Method):
    """h5py reading an s3fs file object with s3fs' defaults."""

    name = "h5py-s3fs"
    label = "h5py + s3fs (defaults)"
    open_options: dict[str, Any] = {}

    def import_modules(self) -> None:
        import h5py  # noqa: F401
        import s3fs  # noqa: F401

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(
            anon=True, endpoint_url=self.context.endpoint_url, skip_instance_cache=True
        )

    def open(self, role: str) -> Any:
        import h5py

        handle = self.filesystem().open(
            f"{self.context.bucket}/{self.context.keys[role]}", "rb", **self.open_options
        )
        return h5py.File(handle, "r")

    def settings(self) -> dict[str, Any]:
        import s3fs

        return {
            "block_size": self.open_options.get("block_size", s3fs.S3FileSystem.default_block_size),
            "cache_type": self.open_options.get("cache_type", "readahead (fsspec default)"),
        }


class H5pyOverS3fsBlockCache(H5pyOverS3fs):
    name = "h5py-s3fs-2mib"
    label = "h5py + s3fs, 2 MiB block cache"
    open_options = {"cache_type": "blockcache", "block_size": S3FS_BLOCK_CACHE}


class H5pyOverRemfile(Method):
    """h5py over remfile (plain HTTP range requests, its adaptive chunk cache)."""

    name = "remfile"
    label = "h5py + remfile"

    def import_modules(self) -> None:
        import h5py  # noqa: F401
        import remfile  # noqa: F401

    def open(self, role: str) -> Any:
        import h5py
        import remfile

        return h5py.File(remfile.File(self.context.http_url(role)), "r")


class DownloadThenRead(Method):
    """Download the whole object with s3fs, then h5py on the local copy."""

    name = "download"
    label = "download, then h5py locally"

    def import_modules(self) -> None:
        import h5py  # noqa: F401
        import s3fs  # noqa: F401

    def open(self, role: str) -> Any:
        import h5py
        import s3fs

        filesystem = s3fs.S3FileSystem(
            anon=True, endpoint_url=self.context.endpoint_url, skip_instance_cache=True
        )
        target = Path(self.context.scratch_dir) / Path(self.context.keys[role]).name
        filesystem.get_file(f"{self.context.bucket}/{self.context.keys[role]}", str(target))
        return h5py.File(target, "r")


class LocalH5py(Method):
    """h5py on the local file the S3 object came from: no network at all. The reference the other
    methods' results are checked against, and the decode-CPU cost of each workload."""

    name = "local-h5py"
    label = "h5py on local disk (no network; reference)"

    def import_modules(self) -> None:
        import h5py  # noqa: F401

    def open(self, role: str) -> Any:
        import h5py

        return h5py.File(self.context.local_files[role], "r")


# -- kerchunk -------------------------------------------------------------------------------------


class Kerchunk(Method):
    """kerchunk references (built once, before the runs) read as zarr through fsspec's reference
    filesystem, which fetches the chunks of one zarr call concurrently."""

    name = "kerchunk"
    label = "kerchunk refs + zarr (refs prebuilt)"

    def import_modules(self) -> None:
        import fsspec.implementations.reference  # noqa: F401
        import s3fs  # noqa: F401
        import zarr  # noqa: F401

    def open(self, role: str) -> Any:
        import fsspec
        import zarr
        from zarr.storage import FsspecStore

        references = json.loads(self.context.references_file(role).read_text())
        filesystem = fsspec.filesystem(
            "reference",
            fo=references,
            remote_protocol="s3",
            remote_options={
                **self.context.storage_options,
                "skip_instance_cache": True,
                "asynchronous": True,
            },
            asynchronous=True,
        )
        store = FsspecStore(filesystem, read_only=True, path="")
        return zarr.open_group(store=store, mode="r", zarr_format=2)

    def close(self, handle: Any) -> None:
        pass

    def channel_rms(self, handle: Any, path: str) -> np.ndarray:
        import dask.array as da

        array = handle[path]
        return _rms(da.from_zarr(array, chunks=self.dask_chunks(array)))


def build_references(context: Context, role: str) -> dict[str, Any]:
    """kerchunk's references for one file, read through the proxy (the one-time index build)."""
    import fsspec
    from kerchunk.hdf import SingleHdf5ToZarr

    with fsspec.open(
        context.url(role), "rb", **context.storage_options, skip_instance_cache=True
    ) as handle:
        return SingleHdf5ToZarr(handle, context.url(role)).translate()


# -- the floor ------------------------------------------------------------------------------------


class Ideal(Method):
    """The floor: exact chunk ranges from an index in hand, one concurrent round per read."""

    name = "ideal"
    label = "ideal reader (floor)"

    def import_modules(self) -> None:
        import s3fs  # noqa: F401

        import benchmarks.ideal  # noqa: F401

    def open(self, role: str) -> Any:
        from benchmarks.chunk_index import DatasetLayout
        from benchmarks.ideal import IdealReader
        from s3ecephys.storage.ranges import ObjectInfo

        layouts = json.loads(Path(self.context.layouts_file).read_text())[role]
        info = ObjectInfo(size=self.context.sizes[role], etag=self.context.etags[role])
        return IdealReader(
            self.context.url(role),
            self.context.storage_options,
            info,
            {path: DatasetLayout.from_dict(layout) for path, layout in layouts.items()},
        )

    def metadata(self, handle: Any, path: str) -> dict[str, Any]:
        layout = handle.layouts[path]
        return {
            "shape": tuple(layout.shape),
            "dtype": str(np.dtype(layout.dtype)),
            "chunks": tuple(layout.chunks) if layout.chunks else None,
            "attributes": None,
        }

    def read_box(self, handle: Any, path: str, box: tuple[tuple[int, int], ...]) -> np.ndarray:
        return handle.read_box(path, box)

    def read_ragged(
        self, handle: Any, data_path: str, index_path: str, units: tuple[int, ...]
    ) -> list[np.ndarray]:
        # Round 1: the index entries bounding each unit; round 2: all the runs.
        bounds = handle.read_boxes(index_path, [((max(u - 1, 0), u + 1),) for u in units])
        boxes = [((int(b[0]) if u else 0, int(b[-1])),) for u, b in zip(units, bounds, strict=True)]
        return handle.read_boxes(data_path, boxes)

    def channel_rms(self, handle: Any, path: str) -> np.ndarray:
        return handle.channel_rms(path)

    def own_stats(self, handle: Any) -> dict[str, int] | None:
        stats = handle.store.stats
        return {"requests": stats.requests, "bytes": stats.bytes, "round_trips": stats.round_trips}


class RawGet(Ideal):
    """The transfer alone: the ideal reader's requests for every stored chunk of W7's dataset
    (same store, same coalescing and concurrency, no HEAD), the bodies dropped undecoded. Its wall
    time is what the server and the proxy take to deliver W7's bytes at that concurrency: the raw
    concurrent-GET throughput the W7 readers are compared with."""

    name = "raw-get"
    label = "raw concurrent GETs, no decoding"
    decodes = False
    not_applicable = {
        kind: "measures only the transfer of W7's chunks (the throughput W7 is compared with)"
        for kind in ("metadata", "box", "ragged")
    }

    def channel_rms(self, handle: Any, path: str) -> dict[str, int]:
        return handle.transfer(path)


METHODS: dict[str, type[Method]] = {
    method.name: method
    for method in (
        S3ecephys,
        S3ecephysWarm,
        H5pyOverS3fs,
        H5pyOverS3fsBlockCache,
        H5pyOverRemfile,
        Kerchunk,
        DownloadThenRead,
        Ideal,
        RawGet,
        LocalH5py,
    )
}
ALL_METHODS = tuple(METHODS)
QUICK_METHODS = (
    "s3ecephys-cold",
    "s3ecephys-warm",
    "h5py-s3fs",
    "h5py-s3fs-2mib",
    "ideal",
    "raw-get",
    "local-h5py",
)
# Methods that read the S3 object (everything but the local reference).
REMOTE_METHODS = tuple(name for name in ALL_METHODS if name != "local-h5py")
