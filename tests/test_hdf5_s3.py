"""The HDF5 engine over the local S3: what opening and reading cost in requests and round trips."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest

from s3ecephys.hdf5 import open_hdf5
from s3ecephys.hdf5.table_prefetch import wait_for_pending
from s3ecephys.storage.ranges import ObjectChangedError

RATE = 1250  # LFP samples per second
CHANNELS = 95


def lfp_file_bytes(seconds: int = 10, seed: int = 0) -> tuple[bytes, np.ndarray]:
    """An Allen-like LFP file: (time, 95 channels) float32, gzip, one channel x 2 s per chunk,
    written in one call so that the chunks of one time range lie side by side."""
    rng = np.random.default_rng(seed)
    data = (rng.integers(-300, 300, size=(seconds * RATE, CHANNELS)) * 1e-6).astype(np.float32)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        group = f.create_group("acquisition/probe_1_lfp/probe_1_lfp_data")
        group.create_dataset(
            "data", data=data, chunks=(2 * RATE, 1), compression="gzip", compression_opts=9
        )
        group.create_dataset("timestamps", data=np.arange(len(data)) / RATE + 13.58)
        f["acquisition/probe_1_lfp_data"] = h5py.SoftLink(
            "/acquisition/probe_1_lfp/probe_1_lfp_data"
        )
    return buffer.getvalue(), data


@pytest.fixture(scope="module")
def lfp_object(local_s3):
    content, data = lfp_file_bytes()
    key = "tests/hdf5/probe_1_lfp.nwb"
    local_s3.put_object(key, content)
    return local_s3.url(key), local_s3.storage_options, data


def test_a_second_open_costs_no_request(lfp_object, tmp_path):
    url, options, _ = lfp_object
    first = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    cost = first.store.stats
    # The file's first and last MiB, in one wave that also tells the object's version (no HEAD),
    # then one wave per level of metadata found elsewhere; the chunk table is left for later.
    assert cost.round_trips <= 4
    second = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    assert second["acquisition/probe_1_lfp_data/data"].shape == (10 * RATE, CHANNELS)
    assert (second.store.stats.requests, second.store.stats.bytes) == (0, 0)
    checked = open_hdf5(url, storage_options=options, cache_dir=tmp_path, revalidate=True)
    assert (checked.store.stats.requests, checked.store.stats.bytes) == (1, 0)  # the HEAD


def test_one_second_of_all_channels_is_one_round_trip_of_just_the_chunks_needed(
    lfp_object, tmp_path
):
    url, options, data = lfp_object
    lfp = open_hdf5(url, storage_options=options, cache_dir=tmp_path)[
        "acquisition/probe_1_lfp_data/data"
    ]
    store = lfp.store
    window = np.s_[3 * RATE : 4 * RATE, :]  # inside the second row of chunks
    plan = lfp.plan(window)
    assert len(plan.ranges) == CHANNELS
    store.stats.reset()
    values = lfp[window]
    assert np.array_equal(values, data[window])
    assert store.stats.round_trips == 1
    # The 95 chunks lie side by side: their bytes, plus at most a B-tree node between them.
    assert plan.bytes_needed <= store.stats.bytes <= plan.bytes_needed + 64 * 1024
    assert store.stats.bytes < lfp.index.storage_size / 4


def test_one_channel_over_the_whole_recording_is_one_round_trip(lfp_object, tmp_path):
    url, options, data = lfp_object
    lfp = open_hdf5(url, storage_options=options, cache_dir=tmp_path)[
        "acquisition/probe_1_lfp_data/data"
    ]
    assert len(lfp.plan(np.s_[:, 17]).ranges) == 5  # one chunk per 2 s
    lfp.store.stats.reset()
    assert np.array_equal(lfp[:, 17], data[:, 17])
    assert lfp.store.stats.round_trips == 1


def test_a_replaced_object_is_reindexed_and_old_handles_refuse_to_mix_versions(local_s3, tmp_path):
    key = "tests/hdf5/replaced.nwb"
    local_s3.put_object(key, lfp_file_bytes(seconds=2, seed=1)[0])
    url, options = local_s3.url(key), local_s3.storage_options
    old = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    content, data = lfp_file_bytes(seconds=3, seed=2)
    local_s3.put_object(key, content)
    with pytest.raises(ObjectChangedError):
        old["acquisition/probe_1_lfp_data/data"][:10]
    new = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    assert new.store.stats.requests > 1  # indexed again, not taken from the cache
    assert np.array_equal(new["acquisition/probe_1_lfp_data/data"][-5:], data[-5:])


def test_a_warm_open_of_a_replaced_object_fails_on_its_first_read_then_reindexes(
    local_s3, tmp_path
):
    key = "tests/hdf5/replaced-while-cached.nwb"
    local_s3.put_object(key, lfp_file_bytes(seconds=2, seed=3)[0])
    url, options = local_s3.url(key), local_s3.storage_options
    open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    wait_for_pending()  # the chunk tables it reads after the open too, before the replacement
    content, data = lfp_file_bytes(seconds=3, seed=4)
    local_s3.put_object(key, content)

    stale = open_hdf5(url, storage_options=options, cache_dir=tmp_path)  # no request: trusted
    assert stale.store.stats.requests == 0
    with pytest.raises(ObjectChangedError, match="open it again"):
        stale["acquisition/probe_1_lfp_data/data"][:10]
    fresh = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    assert np.array_equal(fresh["acquisition/probe_1_lfp_data/data"][-5:], data[-5:])


@pytest.mark.slow
def test_dask_process_workers_read_from_s3(lfp_object, tmp_path):
    url, options, data = lfp_object
    lfp = open_hdf5(url, storage_options=options, cache_dir=tmp_path)[
        "acquisition/probe_1_lfp_data/data"
    ]
    array = lfp.to_dask(target_bytes=2 * 2**20)
    assert array.npartitions > 1
    assert np.array_equal(
        array[::7, 40:50].compute(scheduler="processes", num_workers=2), data[::7, 40:50]
    )


def test_an_array_read_whole_again_and_again_is_kept_beside_the_index(lfp_object, tmp_path):
    url, options, data = lfp_object
    path = "acquisition/probe_1_lfp_data/timestamps"
    first = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    expected = np.arange(len(data)) / RATE + 13.58
    assert np.array_equal(first.cached_values(path), expected)
    assert first.store.stats.bytes > 0

    again = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    assert np.array_equal(again.cached_values(path), expected)
    assert (again.store.stats.requests, again.store.stats.bytes) == (0, 0)
