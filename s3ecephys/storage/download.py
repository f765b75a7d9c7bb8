"""Whole-file downloads that never leave a truncated file at the final path.

AllenSDK streams a download straight into its final path with one timeout for the whole transfer,
so an interrupted 3 GB download leaves a file that looks complete. Here a download is written into
``<name>.part`` beside the target in concurrent parts, each part recorded in ``<name>.part.json``
once it is on disk; an interrupted download resumes from the recorded parts; the finished file is
checked against the object's size and ETag (its MD5 where the ETag is one) before an atomic rename.
A lock file (removed when released) keeps two processes from writing the same target: the second
waits, then finds the file complete.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from s3ecephys.storage.ranges import ObjectInfo, RangeStore

PART_SIZE = 16 * 2**20
# Kept small enough that concurrency x part size stays well under a laptop's memory.
CONCURRENCY = 8
_HASH_BLOCK = 8 * 2**20


class DownloadError(RuntimeError):
    """A download could not be completed; the message says why and what to do."""


class NotEnoughSpaceError(DownloadError):
    """The target's file system has less free space than the download needs."""


@dataclass(frozen=True)
class DownloadResult:
    """What one :func:`download_file` call did."""

    path: Path
    size: int
    fetched_bytes: int
    resumed_bytes: int
    already_complete: bool


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _journal_path(target: Path) -> Path:
    return target.with_name(target.name + ".part.json")


def file_md5_matches_etag(path: Path, etag: str | None) -> bool | None:
    """Whether ``path``'s content matches an S3 ETag; None when that cannot be decided.

    A single-part upload's ETag is the MD5 of the content. A multipart ETag is
    ``md5(md5(part1) + md5(part2) + ...)-N`` and the part size is not recorded: the usual choices
    (a whole number of MiB, or an even split) are tried, and a miss means "unknown", not "corrupt",
    since the uploader may have used another part size.
    """
    if not etag:
        return None
    etag = etag.strip('"')
    if "-" not in etag:
        return _md5_of_parts(path, None) == etag
    digest, _, count_text = etag.partition("-")
    if not count_text.isdigit() or int(count_text) < 1:
        return None
    count, size = int(count_text), path.stat().st_size
    even_split = -(-size // count)
    for part_size in sorted({-(-even_split // 2**20) * 2**20, even_split}):
        if -(-size // part_size) == count and _md5_of_parts(path, part_size) == digest:
            return True
    return None


def _md5_of_parts(path: Path, part_size: int | None) -> str:
    """MD5 of the file (``part_size`` None), or S3's multipart MD5 of the parts' MD5s."""
    with path.open("rb") as handle:
        if part_size is None:
            whole = hashlib.md5(usedforsecurity=False)
            while block := handle.read(_HASH_BLOCK):
                whole.update(block)
            return whole.hexdigest()
        digests = []
        while True:
            part, remaining = hashlib.md5(usedforsecurity=False), part_size
            while remaining and (block := handle.read(min(_HASH_BLOCK, remaining))):
                part.update(block)
                remaining -= len(block)
            if remaining == part_size:
                break
            digests.append(part.digest())
    return hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()


def check_local_file(path: Path, info: ObjectInfo, *, checksum: bool = False) -> str:
    """The state of a local copy of an object: ``ok``, ``missing``, ``partial`` or ``corrupt``.

    Without ``checksum`` only the size is compared (cheap: what a read-through cache does before
    trusting a file); with it the content is also checked against the ETag where that is possible.
    """
    if not path.exists():
        return "partial" if part_path(path).exists() else "missing"
    if path.stat().st_size != info.size:
        return "corrupt"
    if checksum and file_md5_matches_etag(path, info.etag) is False:
        return "corrupt"
    return "ok"


@contextmanager
def _exclusive_lock(target: Path):
    """Hold ``<name>.lock`` beside ``target`` for the duration; the lock file is removed when
    released, so a finished cache folder holds nothing but AllenSDK's files."""
    lock_path = target.with_name(target.name + ".lock")
    while True:
        lock = lock_path.open("a")
        try:
            # Blocks while another process downloads the same file; flock is released if it dies.
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = os.stat(lock_path).st_ino == os.fstat(lock.fileno()).st_ino
        except FileNotFoundError:
            current = False
        except BaseException:  # interrupted while waiting
            lock.close()
            raise
        if current:
            break
        # The holder we waited for removed this file on release: lock the path afresh.
        lock.close()
    try:
        yield
    finally:
        # Removed while still held: whoever waits on it then finds it gone and tries again.
        lock_path.unlink(missing_ok=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _load_journal(target: Path, info: ObjectInfo, part_size: int) -> set[int]:
    """Part numbers already on disk, when the journal belongs to this very object version."""
    journal = _journal_path(target)
    if not (journal.exists() and part_path(target).exists()):
        return set()
    try:
        saved = json.loads(journal.read_text())
    except (OSError, ValueError):
        return set()
    same = saved.get("size") == info.size and saved.get("etag") == info.etag
    if not same or saved.get("part_size") != part_size:
        return set()
    return {int(n) for n in saved.get("done", [])}


def _save_journal(target: Path, info: ObjectInfo, part_size: int, done: set[int]) -> None:
    journal = _journal_path(target)
    scratch = journal.with_name(journal.name + ".tmp")
    scratch.write_text(
        json.dumps({"size": info.size, "etag": info.etag, "part_size": part_size,
                    "done": sorted(done)})
    )
    os.replace(scratch, journal)


def ensure_free_space(directory: Path, needed: int) -> None:
    """Raise :class:`NotEnoughSpaceError` unless ``directory`` has ``needed`` bytes free."""
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise NotEnoughSpaceError(
            f"{directory} has {free / 1e9:.1f} GB free but the download needs "
            f"{needed / 1e9:.1f} GB more; free some space or choose another cache folder"
        )


def download_file(
    url: str,
    target: str | Path,
    storage_options: dict | None = None,
    *,
    store: RangeStore | None = None,
    part_size: int = PART_SIZE,
    concurrency: int = CONCURRENCY,
    verify_checksum: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> DownloadResult:
    """Download the object at ``url`` to ``target``, verified, resumable and atomic.

    ``on_progress`` is called with the number of bytes that just reached the disk (a tqdm
    ``update`` fits). A complete file already at ``target`` (same size) is left alone. Raises
    :class:`NotEnoughSpaceError` before fetching when the disk is too small, and
    :class:`DownloadError` when the content does not match the object's size or ETag.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    store = store or RangeStore(url, storage_options)
    info = store.info()
    with _exclusive_lock(target):
        if target.exists() and target.stat().st_size == info.size:
            return DownloadResult(target, info.size, 0, 0, already_complete=True)

        count = max(1, -(-info.size // part_size))
        done = _load_journal(target, info, part_size)
        todo = [n for n in range(count) if n not in done]
        resumed = sum(min(part_size, info.size - n * part_size) for n in done)
        ensure_free_space(target.parent, info.size - resumed)
        if on_progress and resumed:
            on_progress(resumed)

        partial = part_path(target)
        descriptor = os.open(partial, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not done:
                os.ftruncate(descriptor, info.size)

            def fetch_part(number: int) -> int:
                offset = number * part_size
                length = min(part_size, info.size - offset)
                (data,) = store.fetch([(offset, length)])
                os.pwrite(descriptor, data, offset)
                return number

            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                futures = [pool.submit(fetch_part, number) for number in todo]
                try:
                    # Journal each part as it lands, so an interruption loses at most the
                    # parts in flight.
                    for future in as_completed(futures):
                        number = future.result()
                        done.add(number)
                        _save_journal(target, info, part_size, done)
                        if on_progress:
                            on_progress(min(part_size, info.size - number * part_size))
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

        if partial.stat().st_size != info.size:
            raise DownloadError(f"{partial} has the wrong size after download; run it again")
        if verify_checksum and file_md5_matches_etag(partial, info.etag) is False:
            partial.unlink()
            _journal_path(target).unlink(missing_ok=True)
            raise DownloadError(
                f"{url}: downloaded content does not match ETag {info.etag}; "
                "the partial file was removed, run the download again"
            )
        os.replace(partial, target)
        _journal_path(target).unlink(missing_ok=True)
    fetched = info.size - resumed
    return DownloadResult(target, info.size, fetched, resumed, already_complete=False)
