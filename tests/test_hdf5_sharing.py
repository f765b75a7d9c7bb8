"""One File shared by many threads, and an index cache that is damaged, read-only or full.

Threads: the same selections read at once from a thread pool and through dask's threaded
scheduler give what one thread reads (chunk tables read on first use, values read through h5py,
values kept in the index, all raced). Cache: a damaged file is discarded with a warning and
rebuilt; a folder that cannot be written costs one warning and no caching, never a failure.
"""

from __future__ import annotations

import errno
import gzip
import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import dask
import h5py
import numpy as np
import pytest
from hdf5_cases import assert_same, random_selections

from s3ecephys.hdf5 import FileIndex, open_hdf5
from s3ecephys.hdf5 import index_cache as index_cache_module

DATASETS = ["lfp", "lfp_new_index", "lzf", "contiguous", "names", "small"]


@pytest.fixture(scope="module")
def shared_file(tmp_path_factory, local_s3):
    """A file with datasets read by every path of the engine, on the local S3 and on disk."""
    path = tmp_path_factory.mktemp("sharing") / "shared.h5"
    rng = np.random.default_rng(3)
    lfp = rng.normal(size=(6000, 12)).astype("<f4")
    with h5py.File(path, "w") as f:
        # A chunk B-tree of several levels, read on first use.
        f.create_dataset("lfp", data=lfp, chunks=(100, 2), compression="gzip", shuffle=True)
        f.create_dataset("lzf", data=lfp[:3000], chunks=(250, 3), compression="lzf")
        f.create_dataset("contiguous", data=rng.integers(0, 10**6, size=(20_000, 5)))
        f.create_dataset("names", data=np.array([f"unit {i}" for i in range(500)], dtype="O"),
                         dtype=h5py.string_dtype())  # fmt: skip
        f.create_dataset("small", data=np.arange(10.0))
    with h5py.File(path, "a", libver="latest") as f:
        f.create_dataset("lfp_new_index", data=lfp, chunks=(100, 2), maxshape=(None, 12),
                         compression="gzip")  # fmt: skip
    key = "tests/sharing/shared.h5"
    local_s3.put_object(key, path.read_bytes())
    return path, local_s3.url(key), local_s3.storage_options


def _selections(path) -> list[tuple[str, object]]:
    rng = np.random.default_rng(11)
    chosen = []
    with h5py.File(path) as f:
        for name in DATASETS:
            chosen += [(name, s) for s in random_selections(f[name].shape, rng, 12)]
    return chosen


def test_many_threads_read_what_one_thread_reads(shared_file, tmp_path):
    path, url, options = shared_file
    selections = _selections(path) * 3
    single = open_hdf5(url, storage_options=options, cache_dir=tmp_path / "one")
    expected = [single[name][selection] for name, selection in selections]
    shared = open_hdf5(url, storage_options=options, cache_dir=tmp_path / "many")
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda item: shared[item[0]][item[1]], selections))
        # Values kept beside the index, read and saved by many threads at once.
        kept = list(pool.map(lambda _: shared.cached_values("lfp_new_index"), range(16)))
    with h5py.File(path) as theirs:
        for (name, selection), got, wanted in zip(selections, results, expected, strict=True):
            assert_same(got, wanted, theirs, f"{name}{selection}")
            assert_same(got, theirs[name][selection], theirs, f"{name}{selection}")
        for values in kept:
            assert np.array_equal(values, theirs["lfp_new_index"][()])
    saved = open_hdf5(url, storage_options=options, cache_dir=tmp_path / "many")
    assert np.array_equal(saved.cached_values("lfp_new_index"), kept[0])
    assert saved.store.stats.requests == 0


def test_dask_threads_compute_what_one_thread_reads(shared_file, tmp_path):
    path, url, options = shared_file
    f = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    with h5py.File(path) as theirs:
        for name in ("lfp", "lfp_new_index", "lzf", "contiguous"):
            array = f[name].to_dask(chunks=(500, -1))
            sums = array.sum(axis=0)
            window = array[1234:2345:3]
            with dask.config.set(scheduler="threads", num_workers=8):
                total, part = dask.compute(sums, window)
            with dask.config.set(scheduler="sync"):
                assert np.array_equal(total, sums.compute())
            assert np.array_equal(part, theirs[name][1234:2345:3])


def test_a_damaged_index_is_discarded_with_a_warning_and_rebuilt(shared_file, tmp_path, caplog):
    path, _, _ = shared_file
    open_hdf5(path, cache_dir=tmp_path)
    (cached,) = (tmp_path / "hdf5-index").glob("*.json.gz")
    good = cached.read_bytes()
    older = json.loads(gzip.decompress(good))
    older["format"] -= 1  # what an older s3ecephys wrote
    damages = {
        "truncated": good[: len(good) // 2],
        "garbage": bytes(range(256)) * 10,
        "empty": b"",
        "older format": gzip.compress(json.dumps(older).encode()),
        "flipped byte": good[:100] + bytes([good[100] ^ 0xFF]) + good[101:],
    }
    for damage, content in damages.items():
        cached.write_bytes(content)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=index_cache_module.__name__):
            reopened = open_hdf5(path, cache_dir=tmp_path)
        assert "discarding damaged" in caplog.text, damage
        assert reopened.store.stats.requests > 0, damage  # indexed again
        assert np.array_equal(reopened["small"][()], np.arange(10.0)), damage
        assert FileIndex.loads(cached.read_bytes()).url == reopened.index.url, damage


def test_damaged_chunk_tables_and_values_beside_the_index_are_rebuilt(
    shared_file, tmp_path, caplog
):
    path, _, _ = shared_file
    f = open_hdf5(path, cache_dir=tmp_path)
    expected = f["lfp"][:, 3]
    timestamps = f.cached_values("contiguous")
    (table,) = (tmp_path / "hdf5-index" / "chunk-tables").iterdir()
    (values,) = (tmp_path / "hdf5-index" / "values").iterdir()
    for content in (table.read_bytes()[:200], b"garbage"):
        table.write_bytes(content)
        values.write_bytes(content)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=index_cache_module.__name__):
            again = open_hdf5(path, cache_dir=tmp_path)
            assert np.array_equal(again["lfp"][:, 3], expected)
            assert np.array_equal(again.cached_values("contiguous"), timestamps)
        assert caplog.text.count("discarding damaged") == 2
        assert np.load(values).shape == timestamps.shape  # written anew


def test_a_damaged_remembered_version_on_s3_is_discarded(shared_file, tmp_path, caplog):
    _, url, options = shared_file
    open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    (latest,) = (tmp_path / "hdf5-index" / "latest").iterdir()
    latest.write_text('{"size": ')
    with caplog.at_level(logging.WARNING, logger=index_cache_module.__name__):
        f = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    assert "discarding damaged" in caplog.text
    assert f["small"][4] == 4.0
    assert json.loads(latest.read_text())["size"] == f.index.size


class _FullDisk:
    """A file handle whose writes fail as on a full disk (everything else is the real one's)."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._handle.close()


def _fill_the_disk(monkeypatch):
    real = os.fdopen
    monkeypatch.setattr(index_cache_module.os, "fdopen", lambda *a, **k: _FullDisk(real(*a, **k)))
    return "No space left on device"


def _make_read_only(monkeypatch):
    def refuse(*arguments, **keywords):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(index_cache_module.tempfile, "mkstemp", refuse)
    return "Read-only file system"


def _forbid(monkeypatch):
    def refuse(*arguments, **keywords):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(index_cache_module.Path, "mkdir", refuse)
    return "Permission denied"


@pytest.mark.parametrize("failure", [_fill_the_disk, _make_read_only, _forbid],
                         ids=["full", "read-only", "permission"])  # fmt: skip
@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_cache_that_cannot_be_written_means_no_caching_with_one_warning(
    shared_file, tmp_path, caplog, monkeypatch, failure, where
):
    path, url, options = shared_file
    target, opts = (path, None) if where == "local" else (url, options)
    reason = failure(monkeypatch)  # simulated: chmod does not stop a test run as root
    with caplog.at_level(logging.WARNING, logger=index_cache_module.__name__):
        f = open_hdf5(target, storage_options=opts, cache_dir=tmp_path)
        assert np.array_equal(f["lfp"][:50, 1], h5py.File(path)["lfp"][:50, 1])
        f.cached_values("small")
        again = open_hdf5(target, storage_options=opts, cache_dir=tmp_path)
        assert again["contiguous"][7, 2] == h5py.File(path)["contiguous"][7, 2]
    warnings = [
        r
        for r in caplog.records
        if "continuing without caching" in r.getMessage() and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1  # once for the folder, not per write nor per open
    assert reason in caplog.text
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no temporary file left behind


def test_a_cache_folder_that_is_not_a_folder_means_no_caching(shared_file, tmp_path, caplog):
    path, _, _ = shared_file
    blocker = tmp_path / "a file"
    blocker.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger=index_cache_module.__name__):
        f = open_hdf5(path, cache_dir=blocker)
        assert f["small"][3] == 3.0
    assert "continuing without caching" in caplog.text


def test_a_process_that_read_through_h5py_exits_cleanly(shared_file, tmp_path):
    # h5py files left open over the store used to be closed by the final garbage collection,
    # after the store's event loop was gone: the interpreter crashed on its way out.
    path, url, options = shared_file
    script = (
        "import json, sys\n"
        "from s3ecephys import open_hdf5\n"
        "url, options, cache = json.loads(sys.argv[1])\n"
        "f = open_hdf5(url, storage_options=options, cache_dir=cache)\n"
        "print(float(f['lzf'][:10].sum()), f['names'][3])\n"
    )
    argument = json.dumps([url, options, str(tmp_path)])
    done = subprocess.run([sys.executable, "-c", script, argument], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    with h5py.File(path) as theirs:
        assert done.stdout.split()[0] == str(float(theirs["lzf"][:10].sum()))
