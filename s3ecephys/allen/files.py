"""Which copy of a dataset file to read: the remote object, a local one, or a fresh download.

A cache folder has AllenSDK's layout (``manifest.json`` and the bucket's relative paths), so the
same folder serves AllenSDK, s3ecephys and anyone who wants plain files.

A file that is in the cache folder is read from there, under every policy, without a request
(AllenSDK's rule): downloads land in ``<name>.part`` and are renamed into place only once verified,
so a file at its final name is complete unless something else cut it short. The one check made is
local and costs one small read: an HDF5 file shorter than its own superblock says (an interrupted
AllenSDK download, say) is not used. ``s3ecephys verify`` compares the folder with the remote
objects. One policy says what happens to a file that is *not* there:

- ``"lazy"`` and ``"auto"`` (the same since a local file needs no remote check; ``"auto"`` is the
  default with a cache folder): an NWB file is read in place from the remote location; a small
  table (CSV) is downloaded once into the cache folder.
- ``"local"``: nothing is requested from the network; the missing file is an error that names it.
- ``"download"``: the file is downloaded (verified) into the cache folder, then read.

A folder that cannot be written (a bucket mounted read-only on AWS, say) is only read: files that
are not there come from the remote location, held in memory when small.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from s3ecephys.allen import manifest
from s3ecephys.hdf5.superblock import missing_bytes
from s3ecephys.storage.download import DownloadResult, download_file
from s3ecephys.storage.location import DataLocation
from s3ecephys.storage.ranges import ObjectInfo, RangeStore

POLICIES = ("lazy", "local", "download", "auto")
POLICY_VARIABLE = "S3ECEPHYS_CACHE_POLICY"

log = logging.getLogger(__name__)


class MissingLocalFileError(FileNotFoundError):
    """A file the ``"local"`` policy needs is not in the cache folder."""


class IncompleteLocalFileError(MissingLocalFileError):
    """A file the ``"local"`` policy needs is in the cache folder but cut short."""


def resolve_policy(policy: str | None, default: str) -> str:
    """``policy``, else ``$S3ECEPHYS_CACHE_POLICY``, else ``default``; checked against POLICIES."""
    chosen = policy or os.environ.get(POLICY_VARIABLE) or default
    if chosen not in POLICIES:
        source = "policy" if policy else POLICY_VARIABLE
        raise ValueError(f"{source}={chosen!r} is not a cache policy; use one of {POLICIES}")
    return chosen


@dataclass(frozen=True)
class FileSource:
    """One file to open: a local path, or an ``s3://`` URL with its s3fs options."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return not self.url.startswith("s3://")


class DatasetFiles:
    """Resolves dataset-relative paths (``session_1/session_1.nwb``) under one policy.

    ``remote`` is where files come from (None: nowhere, only ``"local"`` makes sense);
    ``cache_dir`` the AllenSDK-layout folder. Neither is contacted before a file is asked for.
    """

    def __init__(self, remote: DataLocation | None, cache_dir: str | Path, policy: str):
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r} is not one of {POLICIES}")
        if remote is None and policy != "local":
            raise ValueError(f"policy {policy!r} needs a remote location to read from")
        self.remote = remote
        self.cache_dir = Path(cache_dir)
        self.policy = policy
        self._remote_info: dict[str, ObjectInfo] = {}
        self._reported_incomplete: set[str] = set()

    def __repr__(self) -> str:
        remote = self.remote.url if self.remote else None
        return f"{type(self).__name__}({remote!r}, {str(self.cache_dir)!r}, {self.policy!r})"

    # -- where things are ------------------------------------------------------------------------

    def local_path(self, relative: str) -> Path:
        return self.cache_dir.joinpath(*relative.split("/"))

    def remote_source(self, relative: str) -> FileSource:
        if self.remote is None:
            raise MissingLocalFileError(self._missing_message(relative))
        return FileSource(self.remote.join(relative), dict(self.remote.storage_options))

    def remote_info(self, relative: str) -> ObjectInfo:
        """Size and ETag of the remote object (one HEAD, remembered)."""
        if relative not in self._remote_info:
            source = self.remote_source(relative)
            self._remote_info[relative] = RangeStore(source.url, source.storage_options).info()
        return self._remote_info[relative]

    def writable(self) -> bool:
        """Whether downloads may be written into the cache folder."""
        folder = self.cache_dir
        while not folder.exists():
            if folder.parent == folder:
                return False
            folder = folder.parent
        return os.access(folder, os.W_OK)

    # -- what to read ----------------------------------------------------------------------------

    def source(self, relative: str) -> FileSource:
        """Where to read a large file (an NWB) from: the cache folder's copy when it is there,
        else what the policy says."""
        if self.local_is_complete(relative):
            return FileSource(str(self.local_path(relative)))
        if self.policy == "local":
            raise self._local_error(relative)
        if self.policy == "download" and self.writable():
            return FileSource(str(self.fetch(relative).path))
        return self.remote_source(relative)

    def open_small(self, relative: str) -> BinaryIO:
        """A small file (a CSV) to read: kept locally after the first time where possible."""
        if self.local_is_complete(relative):
            return self.local_path(relative).open("rb")
        if self.policy == "local":
            raise self._local_error(relative)
        if self.writable():
            return self.fetch(relative).path.open("rb")
        source = self.remote_source(relative)
        store = RangeStore(source.url, source.storage_options)
        return io.BytesIO(store.read(0, store.info().size))

    def local_is_complete(self, relative: str) -> bool:
        """Whether the cache folder holds ``relative`` ready to read; never asks the remote.

        A file at its final name is trusted (see the module documentation), except an HDF5 file
        shorter than its superblock says, which is reported once as a warning.
        """
        local = self.local_path(relative)
        if not local.is_file():
            return False
        missing = self._missing_bytes(local)
        if missing and relative not in self._reported_incomplete:
            self._reported_incomplete.add(relative)
            log.warning(
                "%s lacks %d bytes at its end (its HDF5 superblock says so), so it is not used; "
                "repair the cache with: s3ecephys verify --repair --cache %s",
                local, missing, self.cache_dir,
            )
        return not missing

    @staticmethod
    def _missing_bytes(local: Path) -> int:
        try:
            return missing_bytes(local)
        except OSError:  # unreadable (permissions, a mount gone away): the read will say why
            return 0

    def fetch(
        self, relative: str, on_progress: Callable[[int], None] | None = None
    ) -> DownloadResult:
        """Download one file into the cache folder (verified, resumable, atomic)."""
        if self.policy == "local":
            raise MissingLocalFileError(self._missing_message(relative))
        self.ensure_manifest()
        source = self.remote_source(relative)
        store = RangeStore(source.url, source.storage_options)
        if relative in self._remote_info:
            store.expected = self._remote_info[relative]
        result = download_file(
            source.url, self.local_path(relative), store=store, on_progress=on_progress
        )
        self._remote_info[relative] = store.info()
        return result

    def ensure_manifest(self) -> None:
        """Give a writable cache folder AllenSDK's manifest.json, so AllenSDK can open it too."""
        path = self.cache_dir / manifest.MANIFEST_FILENAME
        if not path.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            manifest.write_manifest(self.cache_dir)

    def _local_error(self, relative: str) -> MissingLocalFileError:
        local = self.local_path(relative)
        if local.is_file():
            return IncompleteLocalFileError(
                f"{local} is cut short ({self._missing_bytes(local)} bytes missing at its end) "
                f"and the cache policy is 'local'; repair it with `s3ecephys verify --repair "
                f"--cache {self.cache_dir}`, or use policy 'lazy' or 'auto' to read it in place"
            )
        return MissingLocalFileError(self._missing_message(relative))

    def _missing_message(self, relative: str) -> str:
        where = f" from {self.remote.url}" if self.remote else ""
        return (
            f"{self.local_path(relative)} is not in the cache folder and the cache policy is "
            f"{self.policy!r}; download it{where} with `s3ecephys download --cache "
            f"{self.cache_dir}` (or cache.prefetch(...)), or use policy 'lazy' or 'auto'"
        )
