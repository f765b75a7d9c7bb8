"""The file index: everything about an HDF5 file a reader needs, as plain data.

Built once by :mod:`s3ecephys.hdf5.indexer` (the only module that runs h5py), cached as JSON by
:mod:`s3ecephys.hdf5.index_cache`, and read by the planner and the lazy arrays. It holds groups with
their attributes and links, and per dataset its element type, shape, storage layout (contiguous
offset, chunk grid with one ``(offset, size, filter mask)`` per allocated chunk, or the values
themselves when small), filters and fill value. Objects are keyed by one canonical path; other
names (hard links, soft links) are links in their groups, resolved by :meth:`FileIndex.resolve`.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from s3ecephys.hdf5.dtypes import Description, dtype_from_description
from s3ecephys.hdf5.values import Encoded, decode_array, decode_value

# Bumped whenever the JSON form changes, so that older cached indexes are rebuilt.
FORMAT_VERSION = 3

# Well-known filter ids (H5Zpublic.h and the registered-filter list).
DEFLATE, SHUFFLE, FLETCHER32, SZIP, NBIT, SCALEOFFSET = 1, 2, 3, 4, 5, 6

_MAX_LINK_DEPTH = 64


class ExternalLinkError(KeyError):
    """A path crosses an external link, which points into another file."""


class NamedDatatypeError(KeyError):
    """A path names a committed (named) datatype, which is listed but not opened here."""


class _LinkCycleError(KeyError):
    """Soft links that lead to one another without end."""


@dataclass(frozen=True)
class FilterInfo:
    """One stage of a dataset's filter pipeline, as the file describes it."""

    id: int
    name: str
    flags: int = 0
    values: tuple[int, ...] = ()


@dataclass(frozen=True)
class LinkInfo:
    """A named link in a group: ``hard`` (to the object at canonical path ``target``), ``soft``
    (``target`` as written, absolute or relative to the group), ``external`` (``file``,
    ``target``) or ``datatype`` (a named datatype, at ``target``: listed, not opened)."""

    kind: str
    target: str
    file: str | None = None


@dataclass(frozen=True)
class ChunkTree:
    """Where a chunked dataset's version-1 chunk B-tree starts: its root node's address, and the
    width of the file's addresses (from the superblock)."""

    address: int
    address_width: int = 8


@dataclass(eq=False)
class ChunkTable:
    """The allocated chunks of a chunked dataset: grid position, byte offset, stored size and
    filter mask (bit i set = filter i was skipped for that chunk), one row per chunk."""

    grid: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    filter_masks: np.ndarray

    @classmethod
    def empty(cls, ndim: int) -> ChunkTable:
        nothing = np.zeros(0, dtype=np.int64)
        return cls(np.zeros((0, ndim), dtype=np.int64), nothing, nothing, nothing)

    def __len__(self) -> int:
        return len(self.offsets)

    def __getstate__(self) -> dict[str, Any]:
        # The lookup cache is derived data: rebuilt on demand, not shipped to dask workers.
        state = dict(self.__dict__)
        state.pop("_sorted_keys", None)
        return state

    @cached_property
    def _sorted_keys(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        radix = self.grid.max(axis=0) + 1 if len(self) else np.ones(self.grid.shape[1], np.int64)
        keys = _grid_keys(self.grid, radix)
        order = np.argsort(keys, kind="stable")
        return keys[order], order, radix

    def lookup(self, grid: np.ndarray) -> np.ndarray:
        """Row of each chunk at the grid positions ``grid`` (shape ``(n, ndim)``), -1 if the chunk
        was never written."""
        keys, order, radix = self._sorted_keys
        grid = np.asarray(grid, dtype=np.int64).reshape(-1, len(radix))
        inside = np.all((grid >= 0) & (grid < radix), axis=1)
        rows = np.full(len(grid), -1, dtype=np.int64)
        if not len(keys) or not inside.any():
            return rows
        wanted = _grid_keys(grid[inside], radix)
        found = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        rows[inside] = np.where(keys[found] == wanted, order[found], -1)
        return rows

    def select(self, rows: np.ndarray) -> ChunkTable:
        """The table of only these rows (what one dask task needs)."""
        rows = np.asarray(rows, dtype=np.int64)
        return ChunkTable(
            self.grid[rows], self.offsets[rows], self.sizes[rows], self.filter_masks[rows]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "count": len(self),
            "ndim": int(self.grid.shape[1]),
            "grid": _pack(self.grid),
            "offsets": _pack(self.offsets),
            "sizes": _pack(self.sizes),
            "filter_masks": _pack(self.filter_masks),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkTable:
        count, ndim = data["count"], data["ndim"]
        return cls(
            _unpack(data["grid"]).reshape(count, ndim),
            _unpack(data["offsets"]),
            _unpack(data["sizes"]),
            _unpack(data["filter_masks"]),
        )


def _grid_keys(grid: np.ndarray, radix: np.ndarray) -> np.ndarray:
    # One sortable integer per grid position (the grid's row-major linear index).
    if grid.shape[1] == 0:
        return np.zeros(len(grid), dtype=np.int64)
    return np.ravel_multi_index(tuple(grid.T), tuple(int(r) for r in radix)).astype(np.int64)


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<i8").tobytes()).decode()


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<i8").astype(np.int64)


@dataclass(eq=False)
class DatasetIndex:
    """What is known about one dataset without reading its data.

    ``layout`` is ``contiguous`` (``offset`` is None when never written), ``chunked``
    (``chunks`` and ``chunk_table``), ``compact``, ``virtual`` or ``external``. A large chunked
    dataset's table may be left out (None) with ``chunk_tree`` saying where to read it when its
    data is first read (see :mod:`s3ecephys.hdf5.chunk_tables`); ``storage_size`` is then 0.
    ``inline`` holds the values themselves when they were read at index time (small or
    non-numeric datasets).
    ``unreadable`` says why the bytes cannot be decoded here, when they cannot and are not inline;
    ``hdf5_library_only`` marks values only h5py can decode (types HDF5 converts), read through it.
    """

    path: str
    dtype_description: Description
    shape: tuple[int, ...] | None
    maxshape: tuple[int | None, ...] | None
    layout: str
    attrs: dict[str, Encoded] = field(default_factory=dict)
    offset: int | None = None
    storage_size: int = 0
    chunks: tuple[int, ...] | None = None
    chunk_table: ChunkTable | None = None
    chunk_tree: ChunkTree | None = None
    filters: tuple[FilterInfo, ...] = ()
    fill_value: Encoded | None = None
    inline: Encoded | None = None
    unreadable: str | None = None
    hdf5_library_only: bool = False

    @cached_property
    def dtype(self) -> np.dtype:
        return dtype_from_description(self.dtype_description)

    def set_chunk_table(self, table: ChunkTable) -> None:
        """Record the chunk table (and so the stored size) of this chunked dataset."""
        self.storage_size = int(table.sizes.sum())
        self.chunk_table = table

    def inline_values(self) -> np.ndarray | None:
        return None if self.inline is None else decode_array(self.inline)

    def fill(self) -> Any:
        """The fill value as a numpy scalar of the dataset's dtype (zero when none is set)."""
        if self.fill_value is None:
            return np.zeros((), dtype=self.dtype)[()]
        return decode_value(self.fill_value)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "dataset",
            "path": self.path,
            "dtype": self.dtype_description,
            "shape": None if self.shape is None else list(self.shape),
            "maxshape": None if self.maxshape is None else list(self.maxshape),
            "layout": self.layout,
            "attrs": self.attrs,
            "offset": self.offset,
            "storage_size": self.storage_size,
            "chunks": None if self.chunks is None else list(self.chunks),
            "chunk_table": None if self.chunk_table is None else self.chunk_table.to_json(),
            "chunk_tree": (
                None
                if self.chunk_tree is None
                else [self.chunk_tree.address, self.chunk_tree.address_width]
            ),
            "filters": [[f.id, f.name, f.flags, list(f.values)] for f in self.filters],
            "fill_value": self.fill_value,
            "inline": self.inline,
            "unreadable": self.unreadable,
            "hdf5_library_only": self.hdf5_library_only,
        }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetIndex:
        return cls(
            path=data["path"],
            dtype_description=data["dtype"],
            shape=None if data["shape"] is None else tuple(data["shape"]),
            maxshape=None if data["maxshape"] is None else tuple(data["maxshape"]),
            layout=data["layout"],
            attrs=data["attrs"],
            offset=data["offset"],
            storage_size=data["storage_size"],
            chunks=None if data["chunks"] is None else tuple(data["chunks"]),
            chunk_table=(
                None if data["chunk_table"] is None else ChunkTable.from_json(data["chunk_table"])
            ),
            chunk_tree=None if data["chunk_tree"] is None else ChunkTree(*data["chunk_tree"]),
            filters=tuple(
                FilterInfo(id_, name, flags, tuple(values))
                for id_, name, flags, values in data["filters"]
            ),
            fill_value=data["fill_value"],
            inline=data["inline"],
            unreadable=data["unreadable"],
            hdf5_library_only=data["hdf5_library_only"],
        )


@dataclass(eq=False)
class GroupIndex:
    """A group: its attributes and its links by name, in the file's (name) order."""

    path: str
    attrs: dict[str, Encoded] = field(default_factory=dict)
    links: dict[str, LinkInfo] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "group",
            "path": self.path,
            "attrs": self.attrs,
            "links": {
                name: [link.kind, link.target, link.file] for name, link in self.links.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GroupIndex:
        return cls(
            path=data["path"],
            attrs=data["attrs"],
            links={
                name: LinkInfo(kind, target, file)
                for name, (kind, target, file) in data["links"].items()
            },
        )


@dataclass(eq=False)
class FileIndex:
    """All groups and datasets of one version of one file, keyed by canonical path.

    ``size``, ``etag`` and ``mtime_ns`` identify the object version the index describes;
    ``build_requests`` and ``build_bytes`` record what building it cost.
    """

    url: str
    size: int
    etag: str | None
    mtime_ns: int | None
    objects: dict[str, GroupIndex | DatasetIndex]
    build_requests: int = 0
    build_bytes: int = 0

    def resolve(self, path: str, *, base: str = "/") -> str:
        """The canonical path of the object at ``path`` (absolute, or relative to the group at
        canonical path ``base``), following hard and soft links.

        Raises ``KeyError`` when nothing is there and :class:`ExternalLinkError` when the path
        leads into another file.
        """
        return self._resolve(path, base, depth=0)

    def _resolve(self, path: str, base: str, depth: int) -> str:
        if depth > _MAX_LINK_DEPTH:
            raise _LinkCycleError(
                f"{path!r}: more than {_MAX_LINK_DEPTH} levels of soft links (a soft link cycle)"
            )
        current = "/" if path.startswith("/") else base
        for name in path.split("/"):
            if name in ("", "."):
                continue
            group = self.objects[current]
            if not isinstance(group, GroupIndex):
                raise KeyError(f"{path!r}: {current} is a dataset, not a group")
            link = group.links.get(name)
            if link is None:
                raise KeyError(f"{path!r}: no object named {name!r} in {current}")
            if link.kind == "hard":
                current = link.target
            elif link.kind == "soft":
                try:
                    current = self._resolve(link.target, current, depth + 1)
                except (_LinkCycleError, ExternalLinkError, NamedDatatypeError):
                    raise
                except KeyError as error:
                    raise KeyError(
                        f"{path!r}: soft link {name!r} to {link.target!r} is dangling"
                    ) from error
            elif link.kind == "datatype":
                raise NamedDatatypeError(
                    f"{path!r}: {name!r} is a named datatype; s3ecephys lists it but does not "
                    "open it (the datasets of that type read as usual)"
                )
            else:
                raise ExternalLinkError(
                    f"{path!r}: {name!r} is an external link to {link.target!r} in file "
                    f"{link.file!r}; open that file instead"
                )
        return current

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "url": self.url,
            "size": self.size,
            "etag": self.etag,
            "mtime_ns": self.mtime_ns,
            "build_requests": self.build_requests,
            "build_bytes": self.build_bytes,
            "objects": [entry.to_json() for entry in self.objects.values()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileIndex:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"index format {data.get('format')!r}, expected {FORMAT_VERSION}")
        objects: dict[str, GroupIndex | DatasetIndex] = {}
        for entry in data["objects"]:
            item = (
                GroupIndex.from_json(entry)
                if entry["type"] == "group"
                else DatasetIndex.from_json(entry)
            )
            objects[item.path] = item
        return cls(
            url=data["url"],
            size=data["size"],
            etag=data["etag"],
            mtime_ns=data["mtime_ns"],
            objects=objects,
            build_requests=data.get("build_requests", 0),
            build_bytes=data.get("build_bytes", 0),
        )

    def dumps(self) -> bytes:
        """The index as gzip-compressed JSON."""
        text = json.dumps(self.to_json(), separators=(",", ":"))
        return gzip.compress(text.encode(), compresslevel=6, mtime=0)

    @classmethod
    def loads(cls, data: bytes) -> FileIndex:
        """An index from :meth:`dumps` output; ``ValueError`` when it is not one."""
        try:
            return cls.from_json(json.loads(gzip.decompress(data)))
        except (
            OSError,
            EOFError,
            zlib.error,  # a damaged byte inside the compressed stream
            KeyError,
            TypeError,
            AttributeError,
            IndexError,
            json.JSONDecodeError,
        ) as error:
            raise ValueError(f"not a file index: {error}") from error
