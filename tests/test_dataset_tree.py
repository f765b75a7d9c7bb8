"""Many sessions as one lazy object: the LFP tree, event alignment, the spikes of many units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import h5py
import numpy as np
import pytest
import xarray as xr

from s3ecephys import EcephysProjectCache, UnitSpikeTimes, align_to_events


def _cache(s3_dataset, tmp_path) -> EcephysProjectCache:
    return EcephysProjectCache.from_s3(
        s3_dataset.url,
        storage_options=s3_dataset.storage_options,
        cache_dir=tmp_path / "cache",
        index_cache_dir=tmp_path / "indexes",
    )


@pytest.fixture
def cache(s3_dataset, tmp_path) -> EcephysProjectCache:
    return _cache(s3_dataset, tmp_path)


def _h5py_lfp(root: Path, session_id: int, probe_id: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """Timestamps, channel ids and data of a probe's LFP file, read with h5py."""
    file = h5py.File(root / f"session_{session_id}" / f"probe_{probe_id}_lfp.nwb")
    series = file[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data"]
    ids = file["general/extracellular_ephys/electrodes/id"][()]
    return series["timestamps"][()], ids, series["data"]


def _visp(cache: EcephysProjectCache):
    channels = cache.get_channels()
    return channels[channels["ecephys_structure_acronym"] == "VISp"]


def test_open_lfp_puts_each_probe_of_the_selected_channels_in_one_tree(cache, synthetic_dataset):
    visp = _visp(cache)
    with pytest.warns(UserWarning, match="without LFP"):
        tree = cache.open_lfp(visp, mask_invalid_intervals=False)

    expected = set()
    for (session_id, probe_id), rows in visp.groupby(["ecephys_session_id", "ecephys_probe_id"]):
        if probe_id not in synthetic_dataset.lfp_probe_ids[session_id]:
            continue
        _, ids, _ = _h5py_lfp(synthetic_dataset.root, session_id, probe_id)
        if rows.index.isin(ids).any():
            expected.add(f"/session_{session_id}/probe_{probe_id}")
    leaves = {node.path for node in tree.subtree if "LFP" in node.data_vars}
    assert leaves == expected and leaves

    for path in sorted(leaves):
        node = tree[path]
        session_id, probe_id = node.attrs["ecephys_session_id"], node.attrs["ecephys_probe_id"]
        times, ids, data = _h5py_lfp(synthetic_dataset.root, session_id, probe_id)
        channels = node["channel"].to_numpy()
        assert set(channels) <= set(visp.index) and set(channels) <= set(ids)
        assert (node["structure_acronym"] == "VISp").all()
        depths = visp.loc[channels, "probe_vertical_position"].to_numpy()
        assert np.array_equal(node["probe_vertical_position"].to_numpy(), depths)
        assert isinstance(node["LFP"].data, da.Array)
        columns = np.searchsorted(ids, channels) if np.all(np.diff(ids) > 0) else [
            int(np.flatnonzero(ids == c)[0]) for c in channels
        ]
        window = node["LFP"].isel(time=slice(100, 140)).compute()
        assert np.array_equal(window.to_numpy(), data[100:140][:, columns])
        assert np.array_equal(window["time"].to_numpy(), times[100:140])


def test_a_reduction_of_the_tree_equals_numpy_on_the_files(cache, synthetic_dataset):
    tree = cache.open_lfp(_visp(cache), session_types="brain_observatory_1.1",
                          mask_invalid_intervals=False, time=(20.0, 30.0))
    sessions = cache.get_session_table()
    kept = {node.attrs["ecephys_session_id"] for node in tree.subtree if "LFP" in node.data_vars}
    assert kept and all(sessions.loc[s, "session_type"] == "brain_observatory_1.1" for s in kept)

    spread = tree.std("time").compute()
    for node in spread.subtree:
        if "LFP" not in node.data_vars:
            continue
        lfp = tree[node.path]["LFP"]
        assert lfp["time"].min() >= 20.0 and lfp["time"].max() <= 30.0
        expected = np.std(lfp.compute().to_numpy(), axis=0)
        assert np.allclose(node["LFP"].to_numpy(), expected, rtol=1e-5)


def test_align_to_events_takes_the_nearest_sample_of_each_onset_and_offset(cache):
    tree = cache.open_lfp(_visp(cache), stimulus_name="flashes", mask_invalid_intervals=False)
    # Inside the stimulus span the tree was cut to (before it, windows would be NaN).
    aligned = align_to_events(tree, window=(0.0, 0.2))
    leaves = [node for node in aligned.subtree if "LFP" in node.data_vars]
    assert leaves
    grids = {tuple(np.round(node["time_from_onset"].to_numpy(), 9)) for node in leaves}
    assert len(grids) == 1, "every probe is on one time base"
    for node in leaves:
        lfp = tree[node.path]["LFP"]
        presentations = tree[node.parent.path]
        onsets = presentations["start_time"].to_numpy()
        assert node["LFP"].dims == ("presentation", "time_from_onset", "channel")
        assert np.array_equal(node["presentation"], presentations["presentation"])
        offsets = node["time_from_onset"].to_numpy()
        expected = lfp.sel(time=(onsets[:, None] + offsets).ravel(), method="nearest").compute()
        got = node["LFP"].compute().to_numpy().reshape(-1, lfp.sizes["channel"])
        assert np.array_equal(got, expected.to_numpy())
    # The event-aligned average is a lazy reduction like any other.
    average = aligned.mean("presentation")
    assert average[leaves[0].path]["LFP"].dims == ("time_from_onset", "channel")


def test_align_one_probe_to_onsets_marks_windows_outside_the_recording(cache, synthetic_dataset):
    session_id = synthetic_dataset.session_ids[0]
    probe_id = synthetic_dataset.lfp_probe_ids[session_id][0]
    lfp = cache.get_session_data(session_id).get_lfp(probe_id, mask_invalid_intervals=False)
    times = lfp["time"].to_numpy()
    onsets = [times[50], times[-1] + 10.0]
    aligned = align_to_events(lfp, onsets, window=(0.0, 0.01)).compute()
    assert aligned.sizes["presentation"] == 2
    assert np.array_equal(aligned[0].to_numpy(), lfp.isel(time=slice(50, 50 + aligned.sizes[
        "time_from_onset"])).to_numpy())
    assert np.isnan(aligned[1]).all()
    with pytest.raises(ValueError, match="stop > start"):
        align_to_events(lfp, onsets, window=(0.1, 0.0))
    with pytest.raises(ValueError, match="one array of onsets"):
        align_to_events(lfp, None)


def test_bad_selections_are_named(cache):
    channels = cache.get_channels()
    with pytest.raises(ValueError, match="ecephys_session_id"):
        cache.open_lfp(channels.drop(columns="ecephys_session_id"))
    with pytest.raises(ValueError, match="unknown session type"):
        cache.open_lfp(channels, session_types="no_such_type")
    with pytest.raises(ValueError, match="no channel selected"):
        cache.open_lfp(channels.iloc[:0])
    with pytest.raises(ValueError, match="no presentations of 'no_such_stimulus'"):
        cache.open_lfp(channels, stimulus_name="no_such_stimulus")


@pytest.mark.slow
def test_the_tree_reduces_on_distributed_process_workers(cache):
    distributed = pytest.importorskip("distributed")
    tree = cache.open_lfp(_visp(cache), stimulus_name="flashes", mask_invalid_intervals=False)
    graph = align_to_events(tree, window=(-0.05, 0.2)).mean("presentation")
    threaded = graph.compute(scheduler="threads")
    with distributed.LocalCluster(
        processes=True, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as cluster, distributed.Client(cluster):
        on_workers = graph.compute()
    xr.testing.assert_identical(threaded, on_workers)


def test_open_spikes_reads_nothing_until_used_then_equals_the_sessions(cache, monkeypatch):
    units = cache.get_units()
    opened = []
    real = cache.get_session_data
    monkeypatch.setattr(
        cache, "get_session_data", lambda s, **kw: opened.append(s) or real(s, **kw)
    )
    spikes = cache.open_spikes(units, time=(20.0, 40.0))
    assert isinstance(spikes, UnitSpikeTimes) and len(spikes) == len(units)
    assert opened == []

    session_id = spikes.session_ids[0]
    ids = [u for u in units.index if spikes.session_of[u] == session_id][:5]
    spikes.prefetch(ids)
    assert opened == [session_id]
    with pytest.warns(UserWarning, match="invalid time"):
        reference = real(session_id).spike_times
    for unit_id in ids:
        times = np.asarray(reference[unit_id])
        expected = times[(times >= 20.0) & (times < 40.0)]
        assert np.array_equal(spikes[unit_id], expected)
    with pytest.raises(KeyError):
        spikes[-1]
    assert dict(spikes.items()).keys() == set(units.index)


def test_opening_again_costs_no_request(cache, s3_dataset, tmp_path, monkeypatch, capsys):
    from s3ecephys.storage import ranges

    stores: list[ranges.RangeStore] = []
    real_init = ranges.RangeStore.__init__

    def counted_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        stores.append(self)

    monkeypatch.setattr(ranges.RangeStore, "__init__", counted_init)
    visp = _visp(cache)
    cache.open_lfp(visp, mask_invalid_intervals=False)
    first = sum(store.stats.requests for store in stores)
    stores.clear()
    # A new cache object over the same index folder: nothing is kept in memory between them.
    tree = _cache(s3_dataset, tmp_path).open_lfp(visp, mask_invalid_intervals=False,
                                                 progress=True)
    assert "opening sessions" in capsys.readouterr().err
    assert first > 0 and len(stores) > 1
    assert sum(store.stats.requests for store in stores) == 0
    assert tree.attrs["channels_selected"] == len(visp)


def test_align_a_tree_to_onsets_given_per_session(cache):
    tree = cache.open_lfp(_visp(cache), time=(20.0, 40.0), mask_invalid_intervals=False)
    leaves = [node for node in tree.subtree if "LFP" in node.data_vars]
    session_ids = {node.attrs["ecephys_session_id"] for node in leaves}
    onsets = {session_id: [25.0 + i, 30.0 + i] for i, session_id in enumerate(session_ids)}
    aligned = align_to_events(tree, onsets, window=(0.0, 0.1))
    for node in leaves:
        lfp = node["LFP"]
        got = aligned[node.path]["LFP"]
        assert got.dims == ("presentation", "time_from_onset", "channel")
        first = onsets[node.attrs["ecephys_session_id"]][0]
        expected = lfp.sel(time=first + got["time_from_onset"].to_numpy(), method="nearest")
        assert np.array_equal(got.isel(presentation=0).to_numpy(), expected.to_numpy())
    with pytest.raises(KeyError, match="no onsets given for session"):
        align_to_events(tree, {}, window=(0.0, 0.1))
    with pytest.raises(ValueError, match="no presentations on its session node"):
        align_to_events(tree, window=(0.0, 0.1))
