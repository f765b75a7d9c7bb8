"""Opening an HDF5 file in place, and browsing its groups like h5py's.

:func:`open_hdf5` takes a file's index from the local cache when one exists for the object's
version (on S3: the version remembered from the last open, pinned on every read, so reopening
costs no request), and otherwise builds it (one pass over the metadata) and saves it. Groups and
datasets are then answered from the index; only dataset values are read (and, the first time a
large chunked dataset is read, its chunk table: see :mod:`s3ecephys.hdf5.chunk_tables`).
"""

from __future__ import annotations

import functools
import os
import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

import numpy as np

from s3ecephys.hdf5.array import Dataset, read_together
from s3ecephys.hdf5.attributes import Attributes
from s3ecephys.hdf5.chunk_tables import LazyChunkTables
from s3ecephys.hdf5.index import (
    DatasetIndex,
    ExternalLinkError,
    FileIndex,
    GroupIndex,
    LinkInfo,
    NamedDatatypeError,
)
from s3ecephys.hdf5.index_cache import IndexCache
from s3ecephys.hdf5.values import Reference
from s3ecephys.storage.ranges import RangeStore


def open_hdf5(
    url: str | os.PathLike[str],
    storage_options: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    revalidate: bool = False,
    chunk_tables: Literal["background", "on-read", "now"] = "background",
) -> File:
    """Open the HDF5 file at ``url`` (``s3://bucket/key``, ``file://`` URL or local path).

    ``storage_options`` are s3fs options (default: anonymous, us-west-2, endpoint from the
    environment). Indexes are cached under ``cache_dir`` (default ``$S3ECEPHYS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/s3ecephys`` or ``~/.cache/s3ecephys``), keyed by the object's version.

    An S3 object indexed before opens without any request: its remembered version is pinned
    (every read carries ``If-Match``), so if it was replaced meanwhile the first read raises
    :class:`~s3ecephys.storage.ranges.ObjectChangedError` and the next open indexes it again.
    ``revalidate=True`` asks for the object's version first (one HEAD).

    ``chunk_tables``: when the chunk tables the index leaves out (those of large chunked
    datasets, e.g. an LFP array: three round trips more) are read. ``"background"`` (default):
    on S3, right after the open returns, on a background thread, and kept beside the index, so
    that a first read in this process or any later one usually finds its table known (an
    exiting interpreter waits up to 10 s for a walk under way); ``"on-read"``: by the first read
    of each dataset; ``"now"``: all of them before the open returns (as
    :meth:`File.load_chunk_tables`).
    """
    if chunk_tables not in ("background", "on-read", "now"):
        raise ValueError(
            f"chunk_tables must be 'background', 'on-read' or 'now', not {chunk_tables!r}"
        )
    store = RangeStore(url, storage_options)
    cache = IndexCache(cache_dir)
    index = None
    if store.is_s3:
        # A replaced object is forgotten when a read finds it changed: the next open looks again.
        store.on_changed = functools.partial(cache.forget, store)
        known = None if revalidate else cache.recall(store)
        index = cache.load(store, known) if known is not None else None
        if index is not None:
            store.pin(known)
    if index is None and (revalidate or not store.is_s3):
        index = cache.load(store, store.info())  # a stat, or one HEAD
    if index is None:
        index = _index_anew(store, cache)
        if store.is_s3:
            cache.remember(store, store.info())
    file = File(store, index, cache)
    if chunk_tables == "now":
        file.load_chunk_tables()
    elif chunk_tables == "background" and store.is_s3:
        file._chunk_tables.read_in_background(file._datasets())
    return file


def _index_anew(store: RangeStore, cache: IndexCache) -> FileIndex:
    """The index of a file not opened here before: built, unless the file's first fetch (its
    head and tail, which on S3 also tell its version) shows an index of it is cached."""
    # Only building an index needs h5py: reading through a cached one never imports it.
    from s3ecephys.hdf5.indexer import build_index, open_metadata

    handle = open_metadata(store)
    info = store.info()  # known now: no request
    index = cache.load(store, info)
    if index is not None:
        handle.close()
        return index
    index = build_index(store, handle=handle)
    cache.save(store, info, index)
    return index


class Group(Mapping[str, Any]):
    """A group: its links by name (``keys()``), members by path (``group["a/b"]``), attributes."""

    def __init__(self, file: File, canonical: str, name: str):
        self._file = file
        self._canonical = canonical
        self.name = name

    @property
    def file(self) -> File:
        return self._file

    @property
    def attrs(self) -> Attributes:
        return self._file._attributes(self._canonical)

    @property
    def _entry(self) -> GroupIndex:
        entry = self._file.index.objects[self._canonical]
        assert isinstance(entry, GroupIndex)
        return entry

    def __getitem__(self, path: str | Reference) -> Group | Dataset:
        if isinstance(path, Reference):
            return self._file._open_reference(path)
        canonical = self._file.index.resolve(path, base=self._canonical)
        name = path if path.startswith("/") else posixpath.join(self.name, path)
        return self._file._object(canonical, posixpath.normpath(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._entry.links)

    def __len__(self) -> int:
        return len(self._entry.links)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        try:
            self._file.index.resolve(path, base=self._canonical)
        except (ExternalLinkError, NamedDatatypeError):  # there, but not opened here
            return True
        except KeyError:
            return False
        return True

    def get_link(self, name: str) -> LinkInfo:
        """How ``name`` is linked in this group (hard, soft with its target, or external)."""
        return self._entry.links[name]

    def visititems(self, function: Callable[[str, Group | Dataset], Any]) -> Any:
        """Call ``function(relative_name, object)`` for every object below this group, each once,
        following hard links only (h5py's rule); stop at the first non-None return value."""
        seen = {self._canonical}
        pending = [("", self._canonical)]
        while pending:
            prefix, canonical = pending.pop(0)
            entry = self._file.index.objects[canonical]
            assert isinstance(entry, GroupIndex)
            for link_name, link in entry.links.items():
                if link.kind != "hard" or link.target in seen:
                    continue
                seen.add(link.target)
                relative = f"{prefix}{link_name}"
                item = self._file._object(link.target, posixpath.join(self.name, relative))
                result = function(relative, item)
                if result is not None:
                    return result
                if isinstance(item, Group):
                    pending.append((relative + "/", link.target))
        return None

    def visit(self, function: Callable[[str], Any]) -> Any:
        """Like :meth:`visititems` with names only."""
        return self.visititems(lambda name, _: function(name))

    def __repr__(self) -> str:
        return f'<s3ecephys Group "{self.name}" ({len(self)} members)>'


class File(Group):
    """An indexed HDF5 file: the root group, plus ``store`` (its :class:`RangeStore`, whose
    ``stats`` count requests) and ``index`` (the :class:`FileIndex`)."""

    def __init__(self, store: RangeStore, index: FileIndex, cache: IndexCache | None = None):
        self.store = store
        self.index = index
        self.cache = cache
        self._chunk_tables = LazyChunkTables(store, cache)
        self._attribute_cache: dict[str, Attributes] = {}
        super().__init__(self, "/", "/")

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def filename(self) -> str:
        return self.store.url

    def cached_values(self, path: str) -> np.ndarray:
        """All values of the numeric dataset at ``path``, kept beside the file's index after the
        first read (for arrays read whole again and again, such as an LFP's timestamps)."""
        dataset = self[path]
        if not isinstance(dataset, Dataset):
            raise TypeError(f"{path} is a group, not a dataset")
        if self.cache is None:
            return np.asarray(dataset[()])
        info = self.store.info()  # known since the open: no request
        values = self.cache.load_values(self.store, info, dataset.name)
        if values is None or values.shape != dataset.shape or values.dtype != dataset.dtype:
            values = np.asarray(dataset[()])
            self.cache.save_values(self.store, info, dataset.name, values)
        return values

    def read_many(self, items: Iterable[tuple[Dataset | str, Any] | Dataset | str]) -> list[Any]:
        """The values of many selections of this file's datasets, in one concurrent wave.

        Each item is ``(dataset, selection)`` (a :class:`Dataset` of this file or its path, and
        anything ``dataset[...]`` takes), or a dataset or path alone for all its values. The
        result is ``[dataset[selection] for ...]``, but the chunk tables not read yet are read
        in one walk and then every byte range goes out at once (neighbours coalesced): N
        selections cost the round trips of one. E.g. two columns of a table and a window::

            ids, depth, window = f.read_many(
                ["units/id", ("units/depth", ()), (f["lfp/data"], np.s_[1000:2250, :])]
            )
        """
        pairs = []
        for item in items:
            if isinstance(item, tuple) and len(item) != 2:
                raise TypeError(f"read_many takes (dataset or path, selection) pairs, got {item!r}")
            target, selection = item if isinstance(item, tuple) else (item, ())
            if isinstance(target, str):
                target = self[target]
            if isinstance(target, Group):
                raise TypeError(f"{target.name} is a group, not a dataset")
            if not isinstance(target, Dataset):
                raise TypeError(f"read_many takes (dataset or path, selection) pairs, got {item!r}")
            if target.store is not self.store:
                raise ValueError(f"{target.name} is not a dataset of {self.url}")
            pairs.append((target, selection))
        return read_together(pairs)

    def load_chunk_tables(self, paths: Iterable[str] | None = None) -> None:
        """Read now the chunk tables the index left for later, of every dataset (or of those at
        ``paths``), in one walk of all their B-trees; they are kept beside the index, so that no
        later open of this file version reads any metadata (e.g. before a cluster run)."""
        if paths is None:
            entries = self._datasets()
        else:
            entries = [self.index.objects[self.index.resolve(path)] for path in paths]
        self._chunk_tables.ensure(e for e in entries if isinstance(e, DatasetIndex))

    def _datasets(self) -> list[DatasetIndex]:
        return [e for e in self.index.objects.values() if isinstance(e, DatasetIndex)]

    def close(self) -> None:
        """Nothing to release (no file handle is held); for h5py-style ``with`` blocks."""

    def __enter__(self) -> File:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f'<s3ecephys File "{self.url}">'

    def _object(self, canonical: str, name: str) -> Group | Dataset:
        entry = self.index.objects[canonical]
        if isinstance(entry, GroupIndex):
            return self if canonical == "/" and name == "/" else Group(self, canonical, name)
        return Dataset(self.store, entry, name, self._chunk_tables)

    def _open_reference(self, reference: Reference) -> Group | Dataset:
        if reference.path is None:
            raise ValueError("cannot open a null reference")
        return self[reference.path]

    def _attributes(self, canonical: str) -> Attributes:
        if canonical not in self._attribute_cache:
            self._attribute_cache[canonical] = Attributes(self.index.objects[canonical].attrs)
        return self._attribute_cache[canonical]
