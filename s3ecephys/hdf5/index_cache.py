"""File indexes kept on local disk, one per object version.

An index is stored as gzip'ed JSON under ``<cache_dir>/hdf5-index/``, named by a hash of the
object's URL, the S3 endpoint and the object version (ETag or mtime, and size): a replaced object
gets a new name, so a stale index is never used, only left behind. Beside an index, under the
same name and a hash of a dataset's path, is kept what is read later and needed again: chunk
tables left out of the index (``chunk-tables/``) and arrays read whole again and again
(``values/``). Writes go to a temporary file renamed into place, so readers never see half an
index.

The cache only ever saves work, never causes a failure: a file that does not read back (cut
short, garbage: gzip's and numpy's own checks catch it; an index from another s3ecephys format
version) is discarded with a warning and rebuilt from the file; a cache folder that cannot be
written (read-only, full disk) costs one warning, and the session goes on without caching.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from s3ecephys.hdf5.index import FORMAT_VERSION, ChunkTable, FileIndex
from s3ecephys.storage.cache_dir import user_cache_dir as default_cache_dir
from s3ecephys.storage.ranges import ObjectInfo, RangeStore

_log = logging.getLogger(__name__)
_TABLE_COLUMNS = ("grid", "offsets", "sizes", "filter_masks")
# Cache folders found unwritable in this process (warned about once).
_UNWRITABLE: set[Path] = set()


class IndexCache:
    """Where file indexes are saved and found again (``directory`` None: the default)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None):
        root = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.directory = root / "hdf5-index"
        # False once a write failed (read-only folder, full disk): no more attempts, no more
        # warnings; what is cached already is still read.
        self.writable = True

    def _write(self, path: Path, write: Callable[[BinaryIO], object]) -> bool:
        """Write ``path`` atomically; the first failure turns writing off, with a warning."""
        if not self.writable:
            return False
        try:
            _write_atomically(path, write)
        except OSError as error:
            self.writable = False
            # Once per folder and process: a session opening many files says it once.
            level = logging.DEBUG if self.directory in _UNWRITABLE else logging.WARNING
            _UNWRITABLE.add(self.directory)
            _log.log(
                level,
                "cannot write the s3ecephys index cache in %s (%s); continuing without caching "
                "(set cache_dir= or S3ECEPHYS_CACHE_DIR to a writable folder to keep indexes)",
                self.directory,
                error,
            )
            return False
        return True

    def path_for(self, store: RangeStore, info: ObjectInfo) -> Path:
        """The cache file for this version of the object behind ``store``."""
        return self.directory / f"{_key(store, info.fingerprint)}.json.gz"

    def _latest_path(self, store: RangeStore) -> Path:
        return self.directory / "latest" / f"{_key(store)}.json"

    def remember(self, store: RangeStore, info: ObjectInfo) -> None:
        """Note ``info`` as the version of ``store``'s object last indexed."""
        text = json.dumps(dataclasses.asdict(info)).encode()
        self._write(self._latest_path(store), lambda handle: handle.write(text))

    def recall(self, store: RangeStore) -> ObjectInfo | None:
        """The version of ``store``'s object last indexed here, or None."""
        path = self._latest_path(store)
        try:
            return ObjectInfo(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as error:
            _discard(path, error)
            return None

    def forget(self, store: RangeStore) -> None:
        """Drop the remembered version (the object was replaced): the next open looks again."""
        try:
            self._latest_path(store).unlink(missing_ok=True)
        except OSError as error:  # a read-only cache: the next open checks the version anyway
            _log.debug("could not forget %s: %s", store.url, error)

    def _beside_path(self, store: RangeStore, info: ObjectInfo, name: str, kind: str) -> Path:
        """Where something kept beside the index about dataset ``name`` goes."""
        stem = self.path_for(store, info).name.removesuffix(".json.gz")
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        folder, suffix = {"values": ("values", ".npy"), "chunks": ("chunk-tables", ".npz")}[kind]
        return self.directory / folder / f"{stem}-{digest}{suffix}"

    def load_values(self, store: RangeStore, info: ObjectInfo, name: str) -> np.ndarray | None:
        """The saved values of dataset ``name`` of this object version, or None."""
        path = self._beside_path(store, info, name, "values")
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            _discard(path, error)
            return None

    def save_values(
        self, store: RangeStore, info: ObjectInfo, name: str, values: np.ndarray
    ) -> None:
        """Keep the values of dataset ``name`` beside the index (atomically; best effort)."""
        self._write(
            self._beside_path(store, info, name, "values"),
            lambda handle: np.save(handle, values, allow_pickle=False),
        )

    def load_chunk_table(self, store: RangeStore, info: ObjectInfo, name: str) -> ChunkTable | None:
        """The saved chunk table of dataset ``name`` of this object version, or None."""
        path = self._beside_path(store, info, name, "chunks")
        try:
            with np.load(path, allow_pickle=False) as saved:
                table = ChunkTable(**{column: saved[column] for column in _TABLE_COLUMNS})
            count = len(table.offsets)
            if table.grid.ndim != 2 or any(
                len(getattr(table, column)) != count for column in _TABLE_COLUMNS
            ):
                raise ValueError("columns of different lengths")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            _discard(path, error)
            return None
        return table

    def chunk_table_path(self, store: RangeStore, info: ObjectInfo, name: str) -> Path:
        """Where the chunk table of dataset ``name`` of this object version is kept."""
        return self._beside_path(store, info, name, "chunks")

    def save_chunk_table(
        self, store: RangeStore, info: ObjectInfo, name: str, table: ChunkTable
    ) -> None:
        """Keep the chunk table of dataset ``name`` beside the index (atomically; best effort)."""
        columns = {column: getattr(table, column) for column in _TABLE_COLUMNS}
        self._write(
            self._beside_path(store, info, name, "chunks"),
            lambda handle: np.savez(handle, allow_pickle=False, **columns),
        )

    def load(self, store: RangeStore, info: ObjectInfo) -> FileIndex | None:
        """The saved index of this object version, or None (absent, unreadable, another version)."""
        path = self.path_for(store, info)
        try:
            index = FileIndex.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:  # damaged, or another format version
            _discard(path, error)
            return None
        same = (index.url, index.size, index.etag, index.mtime_ns) == (
            store.url,
            info.size,
            info.etag,
            info.mtime_ns,
        )
        return index if same else None

    def save(self, store: RangeStore, info: ObjectInfo, index: FileIndex) -> Path | None:
        """Save ``index`` atomically; a cache that cannot be written only costs a warning."""
        path = self.path_for(store, info)
        data = index.dumps()
        return path if self._write(path, lambda handle: handle.write(data)) else None


def _key(store: RangeStore, *version: str) -> str:
    """A file name for ``store``'s object (URL and S3 endpoint), and a version if given."""
    options = store.storage_options if store.is_s3 else {}
    endpoint = options.get("endpoint_url") or options.get("client_kwargs", {}).get("endpoint_url")
    key = json.dumps([FORMAT_VERSION, store.url, endpoint, *version])
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def _write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a temporary file renamed into place, so readers never see half of
    it (a failed write leaves no temporary file behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, scratch = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def _discard(path: Path, error: Exception) -> None:
    """Drop a cache file that does not read back (it is rebuilt), with a warning."""
    _log.warning("discarding damaged s3ecephys cache file %s (%s); rebuilding it", path, error)
    try:
        path.unlink(missing_ok=True)
    except OSError as unlink_error:  # a read-only cache: it is ignored all the same
        _log.debug("could not remove %s: %s", path, unlink_error)
