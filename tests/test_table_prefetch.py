"""After an open, the chunk tables the index left out are read in the background and kept, so a
first read — in this process or a later one — usually finds them known."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import Counter

import h5py
import numpy as np
import pytest

from s3ecephys.hdf5 import open_hdf5
from s3ecephys.hdf5.chunk_tables import LazyChunkTables
from s3ecephys.hdf5.table_prefetch import wait_for_pending

# Two LFP-like arrays, too large to be inlined in the index: their chunk tables are left out.
SHAPE = (40_000, 8)


def _two_arrays() -> tuple[bytes, dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    arrays = {
        name: rng.integers(-500, 500, size=SHAPE).astype("<f4") for name in ("lfp", "csd")
    }
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for name, values in arrays.items():
            f.create_dataset(name, data=values, chunks=(500, 1), compression="gzip")
    return buffer.getvalue(), arrays


@pytest.fixture(scope="module")
def two_arrays(local_s3):
    content, arrays = _two_arrays()
    key = "tests/prefetch/two_arrays.h5"
    local_s3.put_object(key, content)
    return local_s3.url(key), local_s3.storage_options, arrays


def _tables_known(f) -> dict[str, bool]:
    return {name: f[name].index.chunk_table is not None for name in ("lfp", "csd")}


def test_the_tables_are_read_after_the_open_and_a_later_open_reads_only_chunks(
    two_arrays, tmp_path
):
    url, options, arrays = two_arrays
    first = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    opened = first.store.stats.copy()
    assert wait_for_pending()
    assert _tables_known(first) == {"lfp": True, "csd": True}
    # The walk is counted apart: the file's stats are what the caller's own calls cost.
    assert first.store.stats == opened
    assert first._chunk_tables.background_store.stats.round_trips >= 2  # root, then leaves

    later = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    assert _tables_known(later) == {"lfp": False, "csd": False}  # not in the index itself ...
    assert np.array_equal(later["csd"][1000:3000, :], arrays["csd"][1000:3000, :])
    assert later.store.stats.round_trips == 1  # ... but kept beside it: only chunks are read
    assert wait_for_pending()
    assert later.store.stats.round_trips == 1  # and the later open walked nothing


def test_a_process_that_exits_right_after_the_open_leaves_the_tables_behind(
    two_arrays, tmp_path
):
    url, options, arrays = two_arrays
    script = (
        "import json, sys\n"
        "from s3ecephys import open_hdf5\n"
        "url, options, cache = json.loads(sys.argv[1])\n"
        "open_hdf5(url, storage_options=options, cache_dir=cache)\n"
    )
    arguments = json.dumps([url, options, str(tmp_path)])
    subprocess.run([sys.executable, "-c", script, arguments], check=True, timeout=120)

    later = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    assert later.store.stats.requests == 0
    assert np.array_equal(later["lfp"][:, 3], arrays["lfp"][:, 3])
    assert later.store.stats.round_trips == 1


def test_a_read_right_after_the_open_takes_the_walk_along_and_nothing_is_read_twice(
    two_arrays, tmp_path
):
    url, options, arrays = two_arrays
    f = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    asked: Counter[tuple[int, int]] = Counter()
    fetch = f.store.fetch

    def recording(ranges, **kwargs):
        asked.update(ranges)
        return fetch(ranges, **kwargs)

    f.store.fetch = recording
    f._chunk_tables.background_store.fetch = recording
    assert np.array_equal(f["lfp"][20_000:21_000, :], arrays["lfp"][20_000:21_000, :])
    after_read = f.store.stats.requests
    assert _tables_known(f) == {"lfp": True, "csd": True}
    assert wait_for_pending()
    assert f.store.stats.requests == after_read  # no walk of this file after the read
    assert asked and max(asked.values()) == 1  # each B-tree node fetched once


def test_two_opens_at_once_walk_the_tables_once(two_arrays, tmp_path):
    url, options, _ = two_arrays
    open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    # Either the first open's walk is still under way, or its tables are on disk already.
    second = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    assert wait_for_pending()
    assert second.store.stats.requests == 0


def test_now_reads_every_table_before_the_open_returns(two_arrays, tmp_path):
    url, options, arrays = two_arrays
    f = open_hdf5(url, storage_options=options, cache_dir=tmp_path, chunk_tables="now")
    assert _tables_known(f) == {"lfp": True, "csd": True}
    f.store.stats.reset()
    assert np.array_equal(f["lfp"][5:9, :], arrays["lfp"][5:9, :])
    assert f.store.stats.round_trips == 1


def test_on_read_leaves_each_table_to_the_first_read_of_its_dataset(two_arrays, tmp_path):
    url, options, arrays = two_arrays
    f = open_hdf5(url, storage_options=options, cache_dir=tmp_path, chunk_tables="on-read")
    opened = f.store.stats.requests
    assert wait_for_pending()
    assert f.store.stats.requests == opened
    assert _tables_known(f) == {"lfp": False, "csd": False}
    assert np.array_equal(f["lfp"][5:9, :], arrays["lfp"][5:9, :])
    assert _tables_known(f) == {"lfp": True, "csd": False}


def test_an_unknown_chunk_tables_choice_is_refused(two_arrays, tmp_path):
    url, options, _ = two_arrays
    with pytest.raises(ValueError, match="'background', 'on-read' or 'now'"):
        open_hdf5(url, storage_options=options, cache_dir=tmp_path, chunk_tables="later")


def test_a_walk_that_fails_in_the_background_is_left_to_the_first_read(
    two_arrays, tmp_path, monkeypatch
):
    url, options, arrays = two_arrays
    read = LazyChunkTables._read
    calls = []

    def fails_once(self, entries, size, store):
        calls.append(len(entries))
        if len(calls) == 1:
            raise OSError("the network went away for a moment")
        return read(self, entries, size, store)

    monkeypatch.setattr(LazyChunkTables, "_read", fails_once)
    f = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    assert wait_for_pending()
    assert _tables_known(f) == {"lfp": False, "csd": False}
    assert np.array_equal(f["csd"][:, 7], arrays["csd"][:, 7])
    assert calls == [2, 1]
