"""Downloads never leave a truncated file at the final path, resume, and verify content."""

import hashlib
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from s3ecephys.storage.download import (
    DownloadError,
    NotEnoughSpaceError,
    check_local_file,
    download_file,
    file_md5_matches_etag,
    part_path,
)
from s3ecephys.storage.ranges import ObjectInfo, RangeStore

PART = 64 * 1024


class FailingStore:
    """A store that serves the first ``good_fetches`` fetches, then fails like a dropped link."""

    def __init__(self, store, good_fetches):
        self._store, self._left = store, good_fetches
        self.fetched = []

    def info(self):
        return self._store.info()

    def fetch(self, ranges):
        if self._left <= 0:
            raise ConnectionResetError("connection reset by peer (injected)")
        self._left -= 1
        self.fetched.extend(ranges)
        return self._store.fetch(ranges)


@pytest.fixture
def payload():
    return np.random.default_rng(7).bytes(10 * PART + 123)


@pytest.fixture
def object_key(local_s3, payload):
    key = "downloads/blob.bin"
    local_s3.put_object(key, payload)
    return key


def test_download_from_local_s3_is_complete_and_verified(local_s3, object_key, payload, tmp_path):
    target = tmp_path / "cache" / "blob.bin"
    seen = []
    result = download_file(
        local_s3.url(object_key), target, local_s3.storage_options,
        part_size=PART, on_progress=seen.append,
    )
    assert target.read_bytes() == payload
    assert result.fetched_bytes == len(payload) and not result.already_complete
    assert sum(seen) == len(payload)
    assert not part_path(target).exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["blob.bin"]  # no lock left behind
    assert check_local_file(target, RangeStore(target).info(), checksum=True) == "ok"


def test_a_cut_download_leaves_no_file_and_resumes_where_it_stopped(
    local_s3, object_key, payload, tmp_path
):
    url = local_s3.url(object_key)
    target = tmp_path / "blob.bin"
    flaky = FailingStore(RangeStore(url, local_s3.storage_options), good_fetches=4)
    with pytest.raises(ConnectionResetError):
        download_file(url, target, store=flaky, part_size=PART, concurrency=1)
    assert not target.exists()
    assert part_path(target).exists()
    assert check_local_file(target, ObjectInfo(len(payload), None)) == "partial"

    resumed = FailingStore(RangeStore(url, local_s3.storage_options), good_fetches=100)
    result = download_file(url, target, store=resumed, part_size=PART, concurrency=1)
    assert target.read_bytes() == payload
    assert result.resumed_bytes == 4 * PART
    assert len(resumed.fetched) == 11 - 4


def test_a_complete_file_is_not_downloaded_again(local_s3, object_key, tmp_path):
    target = tmp_path / "blob.bin"
    download_file(local_s3.url(object_key), target, local_s3.storage_options, part_size=PART)
    again = download_file(local_s3.url(object_key), target, local_s3.storage_options)
    assert again.already_complete and again.fetched_bytes == 0


class CorruptingStore(FailingStore):
    def fetch(self, ranges):
        return [bytes(len(chunk)) for chunk in super().fetch(ranges)]


def test_content_that_does_not_match_the_etag_is_rejected(local_s3, object_key, tmp_path):
    url = local_s3.url(object_key)
    target = tmp_path / "blob.bin"
    corrupt = CorruptingStore(RangeStore(url, local_s3.storage_options), good_fetches=100)
    with pytest.raises(DownloadError, match="does not match ETag"):
        download_file(url, target, store=corrupt, part_size=PART)
    assert not target.exists() and not part_path(target).exists()


def test_not_enough_space_is_reported_before_fetching(local_s3, object_key, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(1, 1, 10))
    store = FailingStore(RangeStore(local_s3.url(object_key), local_s3.storage_options), 100)
    with pytest.raises(NotEnoughSpaceError, match="GB free"):
        download_file("unused", tmp_path / "blob.bin", store=store)
    assert store.fetched == []


def _download_in_process(args):
    url, target, options = args
    return download_file(url, target, options, part_size=PART).already_complete


def test_two_processes_downloading_one_file_end_with_one_valid_file(
    local_s3, object_key, payload, tmp_path
):
    target = tmp_path / "blob.bin"
    job = (local_s3.url(object_key), str(target), local_s3.storage_options)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        outcomes = pool.map(_download_in_process, [job, job])
    assert target.read_bytes() == payload
    assert sorted(outcomes) == [False, True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin"]


def test_multipart_etags_are_checked_with_the_usual_part_size(tmp_path):
    data = np.random.default_rng(1).bytes(5 * 2**20 + 17)
    path = Path(tmp_path) / "f"
    path.write_bytes(data)
    parts = [data[i : i + 2**21] for i in range(0, len(data), 2**21)]
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert file_md5_matches_etag(path, f'"{digest}-3"') is True
    assert file_md5_matches_etag(path, f'"{"0" * 32}-3"') is None
    assert file_md5_matches_etag(path, hashlib.md5(data).hexdigest()) is True
    assert file_md5_matches_etag(path, "0" * 32) is False
