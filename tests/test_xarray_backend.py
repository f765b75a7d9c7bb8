"""``xr.open_dataset(url, engine="s3ecephys")``: the LFP file as a lazy Dataset, any group."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import xarray as xr


def _first_lfp(synthetic_dataset) -> tuple[int, int, str]:
    for session_id in synthetic_dataset.session_ids:
        for probe_id in synthetic_dataset.lfp_probe_ids[session_id]:
            return session_id, probe_id, f"session_{session_id}/probe_{probe_id}_lfp.nwb"
    pytest.fail("no LFP file in the synthetic dataset")


def test_the_engine_is_registered():
    assert "s3ecephys" in xr.backends.list_engines()


def test_an_lfp_file_on_s3_opens_lazily_with_time_and_channel_coordinates(
    s3_dataset, synthetic_dataset, tmp_path
):
    _, probe_id, relative = _first_lfp(synthetic_dataset)
    dataset = xr.open_dataset(
        s3_dataset.url + relative, engine="s3ecephys",
        storage_options=s3_dataset.storage_options, cache_dir=tmp_path / "indexes",
    )
    assert any((tmp_path / "indexes").rglob("*")), "the index is kept in cache_dir"
    assert not dataset["LFP"].variable._in_memory
    with h5py.File(synthetic_dataset.root / relative) as file:
        series = file[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data"]
        electrodes = file["general/extracellular_ephys/electrodes"]
        assert np.array_equal(dataset["time"], series["timestamps"][()])
        assert np.array_equal(dataset["channel"], electrodes["id"][()])
        assert np.array_equal(dataset["probe_vertical_position"],
                              electrodes["probe_vertical_position"][()])
        window = dataset["LFP"].isel(time=slice(1000, 1250), channel=[0, 3, 5]).to_numpy()
        assert np.array_equal(window, series["data"][1000:1250][:, [0, 3, 5]])
        chunks = series["data"].chunks
    assert dataset["LFP"].encoding["preferred_chunks"] == dict(zip(("time", "channel"), chunks,
                                                                 strict=True))
    assert dataset.attrs["probe_id"] == probe_id


def test_dask_chunks_follow_the_storage_chunks(synthetic_dataset, tmp_path):
    _, _, relative = _first_lfp(synthetic_dataset)
    path = synthetic_dataset.root / relative
    dataset = xr.open_dataset(path, engine="s3ecephys", cache_dir=tmp_path, chunks={})
    storage = dataset["LFP"].encoding["chunksizes"]
    assert dataset["LFP"].data.chunksize == storage
    with h5py.File(path) as file:
        name = next(n for n in file["acquisition"] if n.endswith("_lfp"))
        data = file[f"acquisition/{name}/{name}_data/data"][()]
    assert np.allclose(dataset["LFP"].std("time").compute(), data.std(axis=0), rtol=1e-5)

    # "auto" grows blocks by whole storage chunks (text coordinates are no obstacle).
    auto = xr.open_dataset(path, engine="s3ecephys", cache_dir=tmp_path, chunks="auto")
    for sizes, chunk, total in zip(auto["LFP"].data.chunks, storage, data.shape, strict=True):
        assert all(size % chunk == 0 for size in sizes[:-1]) and sum(sizes) == total


def test_group_reaches_any_hdf5_group(synthetic_dataset, tmp_path):
    session_id = synthetic_dataset.session_ids[0]
    path = synthetic_dataset.root / f"session_{session_id}" / f"session_{session_id}.nwb"
    units = xr.open_dataset(path, engine="s3ecephys", group="units", cache_dir=tmp_path,
                            drop_variables=["waveform_mean"])
    with h5py.File(path) as file:
        assert np.array_equal(units["id"], file["units/id"][()])
        assert np.array_equal(units["firing_rate"], file["units/firing_rate"][()])
        assert units["firing_rate"].dims == ("id",)
        assert "waveform_mean" not in units
        ends = file["units/spike_times_index"][()]
    spikes = units["spike_times"]
    assert spikes.sizes[spikes.dims[0]] == ends[-1]
    assert units["spike_times_index"].dims == ("id",)

    with pytest.raises(KeyError, match="no group 'nowhere'"):
        xr.open_dataset(path, engine="s3ecephys", group="nowhere", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="is a dataset"):
        xr.open_dataset(path, engine="s3ecephys", group="units/id", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="not a probe LFP file"):
        xr.open_dataset(path, engine="s3ecephys", cache_dir=tmp_path)


def test_a_time_series_group_takes_its_timestamps_as_time(synthetic_dataset, tmp_path):
    _, probe_id, relative = _first_lfp(synthetic_dataset)
    group = f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data"
    series = xr.open_dataset(synthetic_dataset.root / relative, engine="s3ecephys",
                             group=group, cache_dir=tmp_path)
    assert series["data"].dims[0] == "time"
    assert series["data"].attrs["unit"] == "volts"
    assert series.sizes["time"] == series["data"].shape[0]
