"""The ways of reading an HDF5 file on S3 that the benchmark compares, behind one interface.

Each :class:`~benchmarks.method_base.Method` opens a file (``"lfp"`` or ``"session"``) and answers
the four kinds of workload: metadata, a box of a dataset, runs of a ragged column, and a
per-channel RMS of a whole 2-D dataset with dask. Every method is used the way its documentation
shows, with its defaults unless its name says otherwise; where a method has a better call for a job
(s3ecephys' ``read_many`` for several runs at once, ``to_dask`` for dask) it is used, because
that is what its users would do. A method instance lives in one worker process
(:mod:`benchmarks.worker`). The readers with their own HDF5 parser besides s3ecephys (h5coro,
pyfive) are in :mod:`benchmarks.native_readers`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.method_base import Context, Method, rms
from benchmarks.native_readers import H5coro, Pyfive

__all__ = ["ALL_METHODS", "METHODS", "QUICK_METHODS", "Context", "Method"]

S3FS_BLOCK_CACHE = 2 * 2**20

# -- s3ecephys ------------------------------------------------------------------------------------


class S3ecephys(Method):
    """s3ecephys through its public API only, as a user's script calls it: ``import s3ecephys``
    (outside the clock), then ``s3ecephys.open_hdf5(url, storage_options=...)``, ``ds[...]``,
    ``ds.read_many([...])`` and ``to_dask()``. Everything the package imports lazily (s3fs,
    aiobotocore, h5py to index a file, dask) and every client it creates is inside the clock. The
    index cache is the default one, ``$S3ECEPHYS_CACHE_DIR``, which points at this run's private
    folder: empty here (cold), or a copy of a prebuilt cache (the warm methods below)."""

    name = "s3ecephys-cold"
    label = "s3ecephys, cold (empty index cache)"

    def environment(self) -> dict[str, str]:
        return {"S3ECEPHYS_CACHE_DIR": str(self.context.index_cache)}

    def import_modules(self) -> None:
        import s3ecephys  # noqa: F401

    def open(self, role: str) -> Any:
        import s3ecephys

        return s3ecephys.open_hdf5(
            self.context.url(role), storage_options=self.context.storage_options
        )

    def read_ragged(
        self, handle: Any, data_path: str, index_path: str, units: tuple[int, ...]
    ) -> list[np.ndarray]:
        ends = handle[index_path][()]
        slices = [slice(int(ends[u - 1]) if u else 0, int(ends[u])) for u in units]
        # All runs in one concurrent wave: the public call for several selections at once.
        return handle[data_path].read_many(slices)

    def channel_rms(self, handle: Any, path: str) -> np.ndarray:
        return rms(handle[path].to_dask())

    def own_stats(self, handle: Any) -> dict[str, int] | None:
        stats = handle.store.stats
        return {"requests": stats.requests, "bytes": stats.bytes, "round_trips": stats.round_trips}


class S3ecephysWarm(S3ecephys):
    """The index kept by one earlier ``open_hdf5`` of the file in another process, nothing else
    (that process then exits): whatever that open keeps — since issue 16 also the chunk tables
    it reads in the background after returning, which its exit waits for."""

    name = "s3ecephys-warm"
    label = "s3ecephys, warm (index of one earlier open)"
    prebuilt_index = "s3ecephys-open"


class S3ecephysWarmTables(S3ecephys):
    """The index and the chunk tables kept by an earlier process: what a script finds after an
    earlier run that read the same datasets (the library keeps each table it reads beside the
    index), built once with ``open_hdf5`` + ``f.load_chunk_tables()``."""

    name = "s3ecephys-warm-tables"
    label = "s3ecephys, warm (index and chunk tables of an earlier run)"
    prebuilt_index = "s3ecephys-tables"


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
    prebuilt_index = "kerchunk"

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
        return rms(da.from_zarr(array, chunks=self.dask_chunks(array)))


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
        S3ecephysWarmTables,
        H5coro,
        Pyfive,
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
    "s3ecephys-warm-tables",
    "h5coro",
    "pyfive",
    "h5py-s3fs",
    "h5py-s3fs-2mib",
    "ideal",
    "raw-get",
    "local-h5py",
)
# Methods that read the S3 object (everything but the local reference).
REMOTE_METHODS = tuple(name for name in ALL_METHODS if name != "local-h5py")
