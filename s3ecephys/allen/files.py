"""Which copy of a dataset file to read: the remote object, a local one, or a fresh download.

A cache folder has AllenSDK's layout (``manifest.json`` and the bucket's relative paths), so the
same folder serves AllenSDK, s3ecephys and anyone who wants plain files. What is read from where
follows one policy:

- ``"lazy"``: NWB files are read in place from the remote location; small tables (CSVs) are
  downloaded once into the cache folder.
- ``"local"``: only the cache folder; nothing is requested from the network, and a missing file is
  an error that names it.
- ``"download"``: every file is downloaded (verified) into the cache folder before it is read.
- ``"auto"``: a complete local copy when there is one, else the remote object read in place.

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
from s3ecephys.storage.download import DownloadResult, check_local_file, download_file
from s3ecephys.storage.location import DataLocation
from s3ecephys.storage.ranges import ObjectInfo, RangeStore

POLICIES = ("lazy", "local", "download", "auto")
POLICY_VARIABLE = "S3ECEPHYS_CACHE_POLICY"

log = logging.getLogger(__name__)


class MissingLocalFileError(FileNotFoundError):
    """A file the ``"local"`` policy needs is not in the cache folder."""


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
        """Where to read a large file (an NWB) from, under the policy."""
        local = self.local_path(relative)
        if self.policy == "local":
            if not local.is_file():
                raise MissingLocalFileError(self._missing_message(relative))
            return FileSource(str(local))
        if self.policy == "lazy":
            return self.remote_source(relative)
        if self.policy == "download" and self.writable():
            return FileSource(str(self.fetch(relative).path))
        if self.local_is_complete(relative):
            return FileSource(str(local))
        return self.remote_source(relative)

    def open_small(self, relative: str) -> BinaryIO:
        """A small file (a CSV) to read: kept locally after the first time where possible."""
        local = self.local_path(relative)
        if self.policy == "local":
            if not local.is_file():
                raise MissingLocalFileError(self._missing_message(relative))
            return local.open("rb")
        if self.local_is_complete(relative):
            return local.open("rb")
        if self.writable():
            return self.fetch(relative).path.open("rb")
        source = self.remote_source(relative)
        store = RangeStore(source.url, source.storage_options)
        return io.BytesIO(store.read(0, store.info().size))

    def local_is_complete(self, relative: str) -> bool:
        """Whether the local copy exists with the remote object's size (the remote is asked once;
        when it cannot be reached, an existing local file is trusted)."""
        local = self.local_path(relative)
        if not local.is_file():
            return False
        try:
            info = self.remote_info(relative)
        except (OSError, ValueError) as error:
            log.warning("cannot check %s against the remote copy (%s); using it as it is", local,
                        error)
            return True
        state = check_local_file(local, info)
        if state != "ok":
            log.warning(
                "%s is %s (size %d, remote %d); reading the remote copy instead. Repair the cache "
                "with: s3ecephys verify --repair --cache %s",
                local, state, local.stat().st_size, info.size, self.cache_dir,
            )
        return state == "ok"

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

    def _missing_message(self, relative: str) -> str:
        where = f" from {self.remote.url}" if self.remote else ""
        return (
            f"{self.local_path(relative)} is not in the cache folder and the cache policy is "
            f"{self.policy!r}; download it{where} with `s3ecephys download --cache "
            f"{self.cache_dir}` (or cache.prefetch(...)), or use policy 'lazy' or 'auto'"
        )
