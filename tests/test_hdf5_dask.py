"""Dask arrays over indexed datasets: aligned blocks, lazy selections, picklable tasks."""

from __future__ import annotations

import pickle

import cloudpickle
import h5py
import numpy as np
import pytest

from s3ecephys.hdf5 import BlockSource, File
from s3ecephys.hdf5.array import block_shape, landing_order
from s3ecephys.hdf5.indexer import build_index
from s3ecephys.storage.ranges import RangeStore


@pytest.fixture(scope="module")
def lfp_path(tmp_path_factory):
    """An LFP-shaped array: (time, channel) float32, gzip, one channel per chunk."""
    path = tmp_path_factory.mktemp("dask") / "lfp.h5"
    rng = np.random.default_rng(3)
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "data",
            data=rng.normal(size=(20_000, 9)).astype(np.float32),
            chunks=(1500, 1),
            compression="gzip",
        )
        f.create_dataset("timestamps", data=np.arange(20_000) / 1250.0)
    return path


@pytest.fixture
def lfp(lfp_path) -> File:
    store = RangeStore(lfp_path)
    return File(store, build_index(store))


def test_blocks_are_whole_storage_chunks_with_all_channels(lfp):
    data = lfp["data"]
    array = data.to_dask(target_bytes=200_000)
    # 1500 rows x 9 channels x 4 bytes = 54 kB per chunk row: 3 chunk rows fit in 200 kB.
    assert array.chunks[1] == (9,)
    assert set(array.chunks[0][:-1]) == {4500}
    assert array.dtype == data.dtype and array.shape == data.shape


def test_block_shape_grows_trailing_axes_first_then_the_first():
    allen_lfp = block_shape((12_000_000, 95), (46_989, 1), 4, 64 * 2**20)
    assert allen_lfp == (46_989 * 3, 95)
    assert block_shape((100,), (7,), 8, 80) == (7,)  # never below one chunk
    assert block_shape((10, 10), (1, 1), 1, 10**6) == (10, 10)
    assert block_shape((1000, 50), (1, 1), 8, 4000) == (10, 50)
    # One chunk row of all 95 channels is 17.9 MB: one block at 16 MiB, not 89 + 6 channels.
    assert block_shape((12_000_000, 95), (46_989, 1), 4, 16 * 2**20) == (46_989, 95)
    # Far too wide for the target: equal parts (5 x 77 channels), no thin remainder.
    assert block_shape((12_000_000, 384), (46_989, 1), 4, 16 * 2**20) == (46_989, 77)


def test_the_dask_array_equals_h5py(lfp, lfp_path):
    expected = h5py.File(lfp_path)["data"][()]
    array = lfp["data"].to_dask(target_bytes=200_000)
    assert np.array_equal(array.compute(scheduler="threads"), expected)
    assert np.array_equal(
        array[1234:5678:3, [0, 4, 8]].compute(), expected[1234:5678:3][:, [0, 4, 8]]
    )
    means = array.mean(axis=0, dtype=np.float64).compute()
    assert np.allclose(means, expected.mean(axis=0, dtype=np.float64))


def test_blocks_of_narrow_chunks_are_assembled_in_fortran_order(lfp, lfp_path):
    # One channel x 1500 samples per chunk: in a Fortran-order block each chunk is one run.
    assert landing_order((1500, 1), (4500, 9)) == "F"
    assert landing_order((1, 9), (4500, 9)) == "C"
    assert landing_order((100,), (4500,)) == "C"
    source = lfp["data"].to_dask(target_bytes=200_000).dask
    block = next(task for key, task in dict(source).items() if key[1:] == (1, 0))
    values = block()
    assert values.flags.f_contiguous
    assert np.array_equal(values, h5py.File(lfp_path)["data"][4500:9000])


def test_building_and_slicing_the_dask_array_reads_nothing_but_the_chunk_table(lfp):
    lfp.store.stats.reset()
    lfp["data"].to_dask()
    table = lfp.store.stats.copy()
    assert 0 < table.round_trips <= 2  # the chunk B-tree's levels, read once
    window = lfp["data"].to_dask()[1250:2500, :]
    assert lfp.store.stats.requests == table.requests
    window.compute(scheduler="sync")
    assert lfp.store.stats.requests > 0


def test_computing_a_small_window_reads_only_its_chunks(lfp):
    data = lfp["data"]
    plan = data.plan(np.s_[1600:1700, :])
    assert len(plan.ranges) == 9  # one chunk per channel
    lfp.store.stats.reset()
    # Blocks span 4500+ rows, but the slice is fused into the read: 9 chunks, not 27.
    values = data.to_dask(target_bytes=200_000)[1600:1700, :].compute(scheduler="sync")
    assert values.shape == (100, 9)
    assert lfp.store.stats.bytes < 2 * plan.bytes_needed + 9 * 512 * 1024
    assert lfp.store.stats.round_trips == 1


def test_tasks_carry_plain_data_and_only_their_own_chunk_rows(lfp):
    array = lfp["data"].to_dask(target_bytes=200_000)
    graph = dict(array.__dask_graph__())
    sources = [
        argument.value
        for task in graph.values()
        for argument in task.args
        if isinstance(getattr(argument, "value", None), BlockSource)
    ]
    assert len(sources) == len(graph) == array.npartitions
    for source in sources:
        chunk_rows = source.shape[0] // 1500 + (source.shape[0] % 1500 > 0)
        assert len(source.dataset.chunk_table) == chunk_rows * 9
        assert source.dataset.attrs == {}
    payload = pickle.dumps(graph)
    assert b"h5py" not in payload
    again = pickle.loads(cloudpickle.loads(cloudpickle.dumps(payload)))
    assert set(again) == set(graph)


def test_the_graph_computes_after_a_pickle_round_trip(lfp, lfp_path):
    array = lfp["data"].to_dask(target_bytes=200_000)[::100, 2]
    copy = pickle.loads(pickle.dumps(array))
    assert np.array_equal(copy.compute(), h5py.File(lfp_path)["data"][::100, 2])


def test_small_datasets_kept_in_the_index_give_in_memory_dask_arrays(tmp_path):
    with h5py.File(tmp_path / "small.h5", "w") as f:
        f["small"] = np.arange(10)
    store = RangeStore(tmp_path / "small.h5")
    f = File(store, build_index(store))
    assert np.array_equal(f["small"].to_dask().compute(), np.arange(10))


@pytest.mark.slow
def test_process_workers_compute_the_same_values_as_h5py(lfp_path):
    distributed = pytest.importorskip("distributed")
    store = RangeStore(lfp_path)
    array = File(store, build_index(store))["data"].to_dask(target_bytes=200_000)
    expected = h5py.File(lfp_path)["data"]
    with distributed.Client(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as client:
        total = client.compute(array.sum(axis=0, dtype=np.float64)).result()
        window = client.compute(array[5000:6000, 3:7]).result()
    assert np.allclose(total, expected[()].sum(axis=0, dtype=np.float64))
    assert np.array_equal(window, expected[5000:6000, 3:7])
