"""A dask scan over a dataset on S3 fetches the blocks ahead of the one it reads, whichever way
dask's order goes: no byte is fetched twice, and a window fetches at most two blocks too many."""

from __future__ import annotations

import io
import multiprocessing
import queue
from concurrent.futures import Future, ProcessPoolExecutor

import h5py
import numpy as np
import pytest

from s3ecephys.hdf5 import array as array_module
from s3ecephys.hdf5 import open_hdf5
from s3ecephys.hdf5.array import _reads_ahead_here
from s3ecephys.storage import read_ahead
from s3ecephys.storage.read_ahead import InFlight

ROWS, CHANNELS, BLOCK_ROWS = 60_000, 16, 5_000
BLOCK_BYTES = BLOCK_ROWS * CHANNELS * 4


@pytest.fixture(scope="module")
def lfp(local_s3):
    values = np.random.default_rng(3).normal(size=(ROWS, CHANNELS)).astype("<f4")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("lfp", data=values, chunks=(1000, 2), compression="gzip")
    key = "tests/read_ahead/lfp.h5"
    local_s3.put_object(key, buffer.getvalue())
    return local_s3.url(key), local_s3.storage_options, values


@pytest.fixture(autouse=True)
def nothing_held_between_tests():
    yield
    with read_ahead._lock:
        for _, _, held in read_ahead._held.values():
            held.future.cancel()
        read_ahead._held.clear()
        read_ahead._asked.clear()
    array_module._whole_reads.clear()


@pytest.fixture
def hits(monkeypatch):
    """How many reads found their ranges fetched ahead."""
    counted = {"reads": 0, "ahead": 0}
    take = read_ahead.take

    def counting(key):
        found = take(key)
        counted["reads"] += 1
        counted["ahead"] += found is not None
        return found

    monkeypatch.setattr(read_ahead, "take", counting)
    return counted


def _blocks(url, options, tmp_path):
    f = open_hdf5(url, storage_options=options, cache_dir=tmp_path, chunk_tables="now")
    array = f["lfp"].to_dask(chunks=(BLOCK_ROWS, CHANNELS))
    f.store.stats.reset()
    return f, array


@pytest.mark.parametrize("direction", [1, -1], ids=["forwards", "backwards"])
def test_a_scan_either_way_finds_its_blocks_fetched_ahead_and_fetches_each_byte_once(
    lfp, tmp_path, hits, monkeypatch, direction
):
    url, options, values = lfp
    f, array = _blocks(url, options, tmp_path)
    count = array.numblocks[0]
    for block in range(count)[::direction]:
        expected = values[block * BLOCK_ROWS : (block + 1) * BLOCK_ROWS]
        assert np.array_equal(array.blocks[block].compute(scheduler="sync"), expected)
    # The first two blocks tell the way the scan goes; every block after them was fetched ahead.
    assert hits == {"reads": count, "ahead": count - 2}
    with_ahead = f.store.stats.copy()

    monkeypatch.setattr("s3ecephys.hdf5.array._reads_ahead_here", lambda: False)
    g, plain = _blocks(url, options, tmp_path)
    for block in range(count)[::direction]:
        plain.blocks[block].compute(scheduler="sync")
    assert (with_ahead.requests, with_ahead.bytes) == (g.store.stats.requests, g.store.stats.bytes)


def test_a_scan_that_jumps_reads_both_neighbours_of_where_it_lands(lfp, tmp_path, hits):
    # dask's order for a reduction runs through groups of blocks, jumping between them.
    url, options, values = lfp
    _, array = _blocks(url, options, tmp_path)
    for block in (2, 1, 0, 7, 6, 8):
        expected = values[block * BLOCK_ROWS : (block + 1) * BLOCK_ROWS]
        assert np.array_equal(array.blocks[block].compute(scheduler="sync"), expected)
    # 2 then 1 tell the way, so 0 was fetched ahead; 7 is where the scan jumped to: both its
    # neighbours were fetched ahead.
    assert hits == {"reads": 6, "ahead": 3}


def test_a_whole_reduction_on_threads_reads_ahead_and_agrees(lfp, tmp_path, hits):
    url, options, values = lfp
    f, array = _blocks(url, options, tmp_path)
    total = array.sum(axis=0).compute(scheduler="threads")
    np.testing.assert_allclose(total, values.sum(axis=0, dtype=np.float64), rtol=1e-4)
    assert hits["reads"] == array.numblocks[0] and hits["ahead"] > 0
    assert f.store.stats.bytes <= f["lfp"].index.storage_size + 512 * 1024


def test_a_window_fetches_at_most_two_blocks_it_does_not_use(lfp, tmp_path):
    url, options, values = lfp
    f, array = _blocks(url, options, tmp_path)
    window = array[2 * BLOCK_ROWS : 7 * BLOCK_ROWS]  # blocks 2 to 6, of 12
    for block in range(window.numblocks[0]):
        assert np.array_equal(
            window.blocks[block].compute(scheduler="sync"),
            values[(2 + block) * BLOCK_ROWS : (3 + block) * BLOCK_ROWS],
        )
    for _, _, held in list(read_ahead._held.values()):  # what was fetched ahead, counted
        held.future.result(timeout=60)
    stored_per_block = f["lfp"].index.storage_size / array.numblocks[0]
    assert 6 * stored_per_block < f.store.stats.bytes <= (5 + 2) * stored_per_block * 1.2


def test_a_small_slice_does_not_read_ahead(lfp, tmp_path, hits):
    url, options, values = lfp
    _, array = _blocks(url, options, tmp_path)
    for start in (12_000, 17_000, 22_000):  # inside blocks 2, 3, 4: slices fused into reads
        np.testing.assert_array_equal(
            array[start : start + 10].compute(scheduler="sync"), values[start : start + 10]
        )
    assert hits["ahead"] == 0 and not read_ahead._held


def test_worker_processes_do_not_read_ahead():
    assert _reads_ahead_here()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(_reads_ahead_here).result(timeout=60) is False


def test_a_block_sent_to_another_process_carries_its_own_rows_only(lfp, tmp_path):
    import pickle

    url, options, _ = lfp
    _, array = _blocks(url, options, tmp_path)
    task = next(iter(dict(array.__dask_graph__()).values()))
    source = next(arg.value for arg in task.args if hasattr(arg, "value") and arg.value is not None)
    assert source.before or source.after
    copy = pickle.loads(pickle.dumps(source))
    assert (copy.before, copy.after) == ((), ()) and copy.origin == source.origin


# -- the registry ---------------------------------------------------------------------------------


class _Fake(InFlight):
    def __init__(self):
        super().__init__(Future(), queue.SimpleQueue(), [])


def test_what_is_fetched_ahead_is_handed_out_once():
    fake = _Fake()
    read_ahead.start("block 3", 100, lambda: fake)
    assert read_ahead.take("block 3") is fake
    assert read_ahead.take("block 3") is None
    read_ahead.start("block 3", 100, _Fake)  # asked for moments ago: its read has it
    assert read_ahead.take("block 3") is None


def test_nothing_is_fetched_ahead_past_the_limit_and_what_nobody_takes_expires(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(read_ahead.time, "monotonic", lambda: now[0])
    first = _Fake()
    read_ahead.start("a", read_ahead.LIMIT - 10, lambda: first)
    read_ahead.start("b", 11, _Fake)
    assert list(read_ahead._held) == ["a"]
    now[0] += read_ahead.MAX_AGE + 1
    read_ahead.start("b", 11, _Fake)
    assert list(read_ahead._held) == ["b"] and first.future.cancelled()
    assert read_ahead.asked("b") is False
    read_ahead.take("b")
    assert read_ahead.asked("b")
    now[0] += read_ahead.ASKED_MEMORY + 1
    assert not read_ahead.asked("b")
