"""Many selections, one round trip: ``ds.read_many`` and ``f.read_many`` over the local S3."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest

from s3ecephys.hdf5 import open_hdf5
from s3ecephys.nwb.ragged import RaggedColumn
from s3ecephys.nwb.tables import read_datasets

UNITS = 40


def units_file_bytes() -> bytes:
    """A units table with a contiguous ragged column, and a gzip LFP array beside it."""
    rng = np.random.default_rng(2)
    counts = rng.integers(50, 5000, size=UNITS)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f["units/id"] = np.arange(UNITS) * 3 + 100
        f["units/spike_times"] = np.sort(rng.random(int(counts.sum()))) * 1000
        f["units/spike_times_index"] = np.cumsum(counts).astype(np.uint32)
        f["units/depth"] = rng.random(UNITS).astype(np.float32)
        f["units/quality"] = np.array([b"good", b"noise"] * (UNITS // 2), dtype=object)
        f.create_dataset(
            "lfp/data",
            data=rng.normal(size=(20_000, 8)).astype(np.float32),
            chunks=(2500, 1),
            compression="gzip",
            compression_opts=9,
        )
        f["meta/rate"] = 1250.0
        f.create_dataset("meta/nothing", data=h5py.Empty("f4"))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def remote(local_s3, tmp_path_factory):
    content = units_file_bytes()
    key = "tests/read_many/units.nwb"
    local_s3.put_object(key, content)
    return local_s3.url(key), local_s3.storage_options, h5py.File(io.BytesIO(content), "r")


@pytest.fixture
def f(remote, tmp_path):
    url, options, _ = remote
    handle = open_hdf5(url, storage_options=options, cache_dir=tmp_path)
    handle.load_chunk_tables()  # the round trips counted below are the data's alone
    handle.store.stats.reset()
    return handle


def unit_rows(local) -> list[slice]:
    ends = local["units/spike_times_index"][()].astype(np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    return [slice(int(starts[u]), int(ends[u])) for u in range(0, UNITS, 4)]


def same(ours, theirs) -> None:
    assert np.asarray(ours).dtype == np.asarray(theirs).dtype
    assert np.array_equal(ours, theirs)


def test_ten_rows_of_a_ragged_column_cost_one_round_trip_not_ten(f, remote):
    local = remote[2]
    rows = unit_rows(local)
    spikes = f["units/spike_times"]
    values = spikes.read_many(rows)
    assert f.store.stats.round_trips == 1
    for row, value in zip(rows, values, strict=True):
        same(value, local["units/spike_times"][row])
    f.store.stats.reset()
    for row in rows:
        spikes[row]
    assert f.store.stats.round_trips == len(rows) == 10  # what read_many saves


def test_selections_of_several_datasets_are_one_wave(f, remote):
    local = remote[2]
    window = np.s_[4000:6000, :]
    values = f.read_many(
        [
            "units/id",
            ("units/depth", np.s_[5:9]),
            (f["lfp/data"], window),
            ("lfp/data", np.s_[:, 3]),
            ("units/spike_times", unit_rows(local)[2]),
            ("units/quality", ()),
            "meta/rate",
            "meta/nothing",
        ]
    )
    assert f.store.stats.round_trips == 1
    same(values[0], local["units/id"][()])
    same(values[1], local["units/depth"][5:9])
    same(values[2], local["lfp/data"][window])
    same(values[3], local["lfp/data"][:, 3])
    same(values[4], local["units/spike_times"][unit_rows(local)[2]])
    assert list(values[5]) == list(local["units/quality"][()])
    assert values[6] == local["meta/rate"][()] and values[7] is None


def test_chunks_shared_by_selections_are_fetched_once(f):
    data = f["lfp/data"]
    whole = data.plan(np.s_[:2500, :]).bytes_needed
    first, second = data.read_many([np.s_[:2500, :], np.s_[100:200, :]])
    assert f.store.stats.bytes == whole
    same(second, first[100:200])


def test_nothing_to_read_and_wrong_items(f, remote, tmp_path):
    assert f.read_many([]) == [] and f["units/id"].read_many([]) == []
    assert f.store.stats.requests == 0
    with pytest.raises(TypeError, match="group"):
        f.read_many(["units"])
    with pytest.raises(TypeError, match="pairs"):
        f.read_many([("units/id", (), "extra")])
    with pytest.raises(TypeError, match="pairs"):
        f.read_many([3])
    url, options, _ = remote
    other = open_hdf5(url, storage_options=options, cache_dir=tmp_path / "other")
    with pytest.raises(ValueError, match="not a dataset of"):
        f.read_many([other["units/id"]])
    with pytest.raises(IndexError):
        f["units/id"].read_many([np.s_[:3], np.s_[UNITS + 5]])


def test_the_nwb_layer_batches_through_read_many(f, remote):
    local = remote[2]
    units = f["units"]
    # Two large datasets (small ones are kept in the index: no request at all).
    spikes, lfp = read_datasets([units["spike_times"], f["lfp/data"]])
    assert f.store.stats.round_trips == 1
    same(spikes, local["units/spike_times"][()])
    same(lfp, local["lfp/data"][()])
    ends, ids = read_datasets([units["spike_times_index"], units["id"]])
    column = RaggedColumn(units["spike_times"], ends, ids)
    f.store.stats.reset()
    wanted = [int(i) for i in ids[::4]]
    column.prefetch(wanted)
    assert f.store.stats.round_trips == 1
    for unit, row in zip(wanted, unit_rows(local), strict=True):
        same(column[unit], local["units/spike_times"][row])
    assert f.store.stats.round_trips == 1  # kept: no further reads
