"""The AllenSDK API on the synthetic dataset served by the local S3: the project cache, sessions,
spikes, stimuli, LFP, with the results checked against plain h5py reads of the same files and
against the same calls on the local folder.

What "as AllenSDK 2.16.2" means for each table is spelled out in the tests; the source locations
are in ``s3ecephys/allen/session.py``.
"""

from __future__ import annotations

import datetime
import pickle
import warnings
from pathlib import Path

import dask.array as da
import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from session_files import nwb_path, ragged_extents, record_ranges, s3_project_cache, session_with

from s3ecephys import EcephysProjectCache, EcephysSession
from s3ecephys.allen.session import CHANNEL_FILTERING
from s3ecephys.hdf5 import open_hdf5
from s3ecephys.nwb.session_file import SessionFile

NO_BOUNDS = {
    "amplitude_cutoff_maximum": None,
    "presence_ratio_minimum": None,
    "isi_violations_maximum": None,
}
ELECTRODES = "general/extracellular_ephys/electrodes"
# AllenSDK 2.16.2's column orders (see s3ecephys/allen/session.py for where they come from).
PROBE_COLUMNS = ["description", "location", "sampling_rate", "lfp_sampling_rate", "has_lfp_data"]
CHANNEL_COLUMNS = [
    "filtering", "probe_channel_number", "probe_horizontal_position", "probe_id",
    "probe_vertical_position", "structure_acronym", "ecephys_structure_id",
    "ecephys_structure_acronym", "anterior_posterior_ccf_coordinate",
    "dorsal_ventral_ccf_coordinate", "left_right_ccf_coordinate",
]
FILE_ONLY_CHANNEL_COLUMNS = [
    "anterior_posterior_ccf_coordinate", "dorsal_ventral_ccf_coordinate", "filtering",
    "left_right_ccf_coordinate", "probe_channel_number", "probe_horizontal_position",
    "probe_id", "probe_vertical_position", "structure_acronym",
]
UNIT_COLUMNS = [
    "waveform_PT_ratio", "waveform_amplitude", "amplitude_cutoff", "cluster_id",
    "cumulative_drift", "d_prime", "firing_rate", "isi_violations", "isolation_distance",
    "L_ratio", "local_index", "max_drift", "nn_hit_rate", "nn_miss_rate", "peak_channel_id",
    "presence_ratio", "waveform_recovery_slope", "waveform_repolarization_slope",
    "silhouette_score", "snr", "waveform_spread", "waveform_velocity_above",
    "waveform_velocity_below", "waveform_duration",
    *CHANNEL_COLUMNS,
    "probe_description", "location", "probe_sampling_rate", "probe_lfp_sampling_rate",
    "probe_has_lfp_data",
]
PUPIL_COLUMNS = [
    f"{name}_{field}"
    for name in ("corneal_reflection", "pupil", "eye")
    for field in ("center_x", "center_y", "height", "width", "phi")
]


# -- plain h5py reads, the reference ---------------------------------------------------------------


def _lfp_path(root: Path, session_id: int, probe_id: int) -> Path:
    return root / f"session_{session_id}" / f"probe_{probe_id}_lfp.nwb"


def _text(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)


def _h5_table(group: h5py.Group, names: list[str]) -> pd.DataFrame:
    """Scalar columns of a DynamicTable, text decoded, indexed by its ids."""
    columns = {}
    for name in names:
        values = group[name][()]
        columns[name] = _text(values) if values.dtype.kind in "OS" else values
    return pd.DataFrame(columns, index=pd.Index(group["id"][()].astype(np.int64), name="id"))


def _h5_ragged_row(group: h5py.Group, name: str, row: int) -> np.ndarray:
    ends = group[f"{name}_index"][()].astype(np.int64)
    return group[name][(ends[row - 1] if row else 0) : ends[row]]


def _h5_electrodes(root: Path, session_id: int) -> pd.DataFrame:
    with h5py.File(nwb_path(root, session_id), "r") as f:
        return _h5_table(
            f[ELECTRODES],
            ["location", "valid_data", "probe_id", "local_index", "probe_vertical_position",
             "probe_horizontal_position"],
        )


def _h5_units(root: Path, session_id: int) -> pd.DataFrame:
    with h5py.File(nwb_path(root, session_id), "r") as f:
        return _h5_table(
            f["units"],
            ["quality", "peak_channel_id", "amplitude_cutoff", "presence_ratio",
             "isi_violations"],
        )


def _expected_units(
    root: Path,
    session_id: int,
    bounds: tuple[float, float, float] = (0.1, 0.95, 0.5),
    validity: bool = True,
) -> list[int]:
    """AllenSDK 2.16.2's session units, worked out from h5py reads: good units whose peak
    channel is valid and has an acronym in the file, passing the bounds, sorted (stably) by
    probe name and position, probe by probe in file order before."""
    units = _h5_units(root, session_id)
    electrodes = _h5_electrodes(root, session_id)
    with h5py.File(nwb_path(root, session_id), "r") as f:
        names = {
            int(f["general/extracellular_ephys"][g].attrs["probe_id"]): g
            for g in f["general/extracellular_ephys"]
            if g != "electrodes"
        }
    peak = electrodes.loc[units["peak_channel_id"]].set_axis(units.index)
    amplitude_cutoff, presence_ratio, isi_violations = bounds
    keep = (
        (units["amplitude_cutoff"] <= amplitude_cutoff)
        & (units["presence_ratio"] >= presence_ratio)
        & (units["isi_violations"] <= isi_violations)
        & ~peak["location"].isin(["", "None"])
    )
    if validity:
        keep &= (units["quality"] == "good") & peak["valid_data"].astype(bool)
    chosen = peak[keep].assign(probe_name=peak["probe_id"].map(names))
    chosen = chosen.sort_values("probe_name", kind="stable").sort_values(
        ["probe_name", "probe_vertical_position", "probe_horizontal_position"], kind="stable"
    )
    return list(chosen.index)


def _probe_without_lfp(synthetic_dataset) -> tuple[int, int]:
    for session_id, probes in synthetic_dataset.probe_ids.items():
        missing = sorted(set(probes) - set(synthetic_dataset.lfp_probe_ids[session_id]))
        if missing:
            return session_id, missing[0]
    pytest.fail("the dataset has no probe without LFP")


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(synthetic_dataset) -> Path:
    return Path(synthetic_dataset.root)


@pytest.fixture(scope="module")
def cache(project_cache) -> EcephysProjectCache:
    return project_cache


@pytest.fixture(scope="module")
def local_cache(root, tmp_path_factory) -> EcephysProjectCache:
    """The same project from the dataset folder itself, with no network."""
    return EcephysProjectCache(
        manifest=root / "manifest.json",
        policy="local",
        index_cache_dir=tmp_path_factory.mktemp("local-indexes"),
    )


@pytest.fixture(scope="module")
def session_id(synthetic_dataset) -> int:
    return int(synthetic_dataset.session_ids[0])


@pytest.fixture(scope="module")
def session(cache, session_id) -> EcephysSession:
    return cache.get_session_data(session_id)


# -- project tables --------------------------------------------------------------------------------


def test_tables_are_the_same_in_place_and_from_the_local_folder(cache, local_cache):
    pd.testing.assert_frame_equal(cache.get_session_table(), local_cache.get_session_table())
    pd.testing.assert_frame_equal(cache.get_probes(), local_cache.get_probes())
    pd.testing.assert_frame_equal(cache.get_channels(), local_cache.get_channels())
    pd.testing.assert_frame_equal(
        cache.get_units(**NO_BOUNDS), local_cache.get_units(**NO_BOUNDS)
    )


def test_the_tutorials_sst_visl_filter_finds_sessions(cache):
    sessions = cache.get_session_table()
    sst_visl = sessions[
        sessions["full_genotype"].str.contains("Sst", na=False)
        & sessions["ecephys_structure_acronyms"].apply(lambda acronyms: "VISl" in list(acronyms))
    ]
    assert len(sst_visl) >= 1
    assert {"unit_count", "channel_count", "probe_count"} <= set(sessions.columns)


def test_project_units_without_bounds_keep_more_but_never_nan_metrics(cache):
    default = cache.get_units()
    everything = cache.get_units(**NO_BOUNDS)
    assert set(default.index) < set(everything.index)
    assert everything[["amplitude_cutoff", "presence_ratio", "isi_violations"]].notna().all().all()


def test_an_unknown_session_names_the_nearest_ids(cache, root):
    known = sorted(int(p.name.removeprefix("session_")) for p in root.glob("session_*"))
    with pytest.raises(ValueError, match=rf"unknown session id 1.*{known[0]}"):
        cache.get_session_data(1)


# -- probes and channels ---------------------------------------------------------------------------


def test_probes_are_the_files_electrode_groups(session, root, session_id, cache):
    probes = session.probes
    assert list(probes.columns) == PROBE_COLUMNS
    assert probes.index.name == "id" and probes.index.dtype == np.int64
    assert probes["has_lfp_data"].dtype == bool
    with h5py.File(nwb_path(root, session_id), "r") as f:
        for probe_id, row in probes.iterrows():
            group = f["general/extracellular_ephys"][row["description"]]
            assert group.attrs["probe_id"] == probe_id
            assert row["lfp_sampling_rate"] == group.attrs["lfp_sampling_rate"]
            assert row["has_lfp_data"] == bool(group.attrs["has_lfp_data"])
            assert row["sampling_rate"] == group["device"].attrs["sampling_rate"]
    project = cache.get_probes()
    in_session = project.index[project["ecephys_session_id"] == session_id]
    assert sorted(probes.index) == sorted(in_session)


def test_channels_are_the_valid_electrodes_with_the_projects_structures(
    session, root, session_id, cache
):
    channels = session.channels
    assert list(channels.columns) == CHANNEL_COLUMNS
    assert channels.index.name == "id"
    electrodes = _h5_electrodes(root, session_id)
    valid = electrodes[electrodes["valid_data"].astype(bool)]
    assert len(valid) < len(electrodes), "the dataset has invalid channels"
    assert list(channels.index) == list(valid.index), "valid channels only, in file order"
    # The file's acronyms, None where the file has none ...
    file_acronyms = [None if a in ("", "None") else a for a in valid["location"]]
    assert list(channels["structure_acronym"]) == file_acronyms
    assert channels["structure_acronym"].isna().any()
    # ... and channels.csv's structure and coordinates beside them.
    project = cache.get_channels().loc[channels.index]
    pd.testing.assert_frame_equal(channels[CHANNEL_COLUMNS[6:]], project[CHANNEL_COLUMNS[6:]])
    assert (channels["filtering"] == CHANNEL_FILTERING).all()
    assert (channels["probe_channel_number"] == valid["local_index"]).all()
    assert channels["probe_channel_number"].dtype == np.int64
    assert channels["structure_acronym"].dtype == object


def test_without_the_validity_filter_channels_keep_invalid_rows(cache, session_id, root):
    channels = cache.get_session_data(session_id, filter_by_validity=False).channels
    electrodes = _h5_electrodes(root, session_id)
    assert list(channels.index) == list(electrodes.index)
    assert channels["valid_data"].dtype == bool
    assert (~channels["valid_data"]).sum() == (~electrodes["valid_data"].astype(bool)).sum()


# -- units -----------------------------------------------------------------------------------------


def test_session_units_are_the_good_in_brain_units_that_pass_the_filters(
    session, root, session_id
):
    units = session.units
    expected = _expected_units(root, session_id)
    assert len(expected) > 0
    assert list(units.index) == expected, "same units, same order"
    assert units.index.name == "unit_id"
    assert list(units.columns) == UNIT_COLUMNS
    # 2.16.2's Unit has no waveform_halfwidth property, so the column never reaches the table.
    assert "waveform_halfwidth" not in units and "quality" not in units
    assert units["peak_channel_id"].dtype == np.int64
    assert units["firing_rate"].dtype == np.float64


def test_unit_columns_are_the_files_values(session, root, session_id):
    units = session.units
    with h5py.File(nwb_path(root, session_id), "r") as f:
        table = _h5_table(f["units"], ["PT_ratio", "l_ratio", "snr", "cluster_id"])
    table = table.loc[units.index]
    np.testing.assert_array_equal(units["waveform_PT_ratio"], table["PT_ratio"])
    np.testing.assert_array_equal(units["L_ratio"], table["l_ratio"])
    np.testing.assert_array_equal(units["snr"], table["snr"])
    np.testing.assert_array_equal(units["cluster_id"], table["cluster_id"])
    probes = session.probes.loc[units["probe_id"]]
    np.testing.assert_array_equal(units["probe_description"], probes["description"])


def test_nan_metrics_fail_even_infinite_bounds(cache, root, session_id):
    units = _h5_units(root, session_id)
    nan_metric = units.index[units["amplitude_cutoff"].isna()]
    assert len(nan_metric), "the dataset has units without an amplitude cutoff"
    unbounded = cache.get_session_data(session_id, **NO_BOUNDS).units
    assert not set(nan_metric) & set(unbounded.index)
    assert list(unbounded.index) == _expected_units(root, session_id, (np.inf, -np.inf, np.inf))


def test_a_zero_bound_means_no_bound_in_a_session(cache, session_id):
    # Probes.get_units_table applies ``bound or inf``: 0 disables a bound (not so in
    # cache.get_units, where 0 is a bound).
    zero = cache.get_session_data(session_id, amplitude_cutoff_maximum=0).units
    none = cache.get_session_data(session_id, amplitude_cutoff_maximum=None).units
    assert list(zero.index) == list(none.index)
    assert len(zero) > len(cache.get_session_data(session_id).units)


def test_without_the_validity_filter_noise_units_stay(cache, root, session_id):
    session = cache.get_session_data(session_id, filter_by_validity=False, **NO_BOUNDS)
    units = session.units
    assert "noise" in set(units["quality"])
    assert {"quality", "valid_data"} <= set(units.columns)
    assert list(units.index) == _expected_units(
        root, session_id, (np.inf, -np.inf, np.inf), validity=False
    )


def test_structurewise_unit_counts(session):
    counts = session.structurewise_unit_counts
    assert counts.sum() == len(session.units)
    assert counts.to_dict() == session.units["ecephys_structure_acronym"].value_counts().to_dict()
    assert counts.is_monotonic_decreasing


# -- ragged unit data ------------------------------------------------------------------------------


def test_opening_a_session_reads_none_of_the_ragged_unit_arrays(
    s3_dataset, tmp_path, root, monkeypatch
):
    cache = s3_project_cache(s3_dataset, tmp_path)
    session_id = session_with(root, "units/spike_times")
    cache.get_session_data(session_id)  # builds and keeps the file's index
    asked = record_ranges(monkeypatch)
    session = cache.get_session_data(session_id)
    assert len(session.units) > 0
    assert len(session.channels) > 0 and len(session.probes) > 0
    extents = ragged_extents(nwb_path(root, session_id))
    for offset, length in asked:
        for start, size in extents:
            assert offset + length <= start or offset >= start + size, "read a ragged array"
    assert session._nwb.root.store.stats.bytes < min(size for _, size in extents)
    # The recorder sees the reads: asking for one unit's spikes shows up, inside spike_times.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the note on invalid intervals
        session.spike_times[session.units.index[0]]
    start, size = extents[0]
    assert any(start <= offset < start + size for offset, _ in asked)


def test_spike_times_are_the_files_rows_fetched_together(session, root, session_id):
    unit_ids = list(session.units.index[:5])
    with h5py.File(nwb_path(root, session_id), "r") as f:
        rows = list(f["units/id"][()])
        expected = {u: _h5_ragged_row(f["units"], "spike_times", rows.index(u)) for u in unit_ids}
    with pytest.warns(UserWarning, match="invalid time intervals"):
        spike_times = session.spike_times
    store = session._nwb.root.store
    before = store.stats.copy()
    spike_times.prefetch(unit_ids)
    spent = store.stats - before
    assert spent.round_trips == 1
    assert spent.requests <= len(unit_ids)
    for unit_id in unit_ids:
        times = spike_times[unit_id]
        assert times.dtype == np.float64
        np.testing.assert_array_equal(times, expected[unit_id])
    assert (store.stats - before).round_trips == 1, "read again instead of kept"
    assert set(spike_times) == set(session.units.index)


def test_spike_dictionaries_follow_allensdks_unit_order(session, root, session_id):
    # Probe by probe, file order within a probe: not the sorted order of session.units.
    units = _h5_units(root, session_id)
    electrodes = _h5_electrodes(root, session_id)
    probe_order = {p: i for i, p in enumerate(session.probes.index)}
    position = units["peak_channel_id"].map(electrodes["probe_id"]).map(probe_order)
    file_order = list(position.sort_values(kind="stable").index)
    chosen = set(session.units.index)
    assert list(session.spike_times) == [u for u in file_order if u in chosen]
    assert list(session.mean_waveforms) == list(session.spike_times)
    # Amplitudes keep every unit of the file, filters notwithstanding (as AllenSDK).
    assert list(session.spike_amplitudes) == file_order


def test_spike_amplitudes_are_the_files_rows(session, root, session_id):
    with h5py.File(nwb_path(root, session_id), "r") as f:
        rows = list(f["units/id"][()])
        noise = next(u for u in session.spike_amplitudes if u not in session.units.index)
        for unit_id in (session.units.index[0], noise):
            np.testing.assert_array_equal(
                session.spike_amplitudes[unit_id],
                _h5_ragged_row(f["units"], "spike_amplitudes", rows.index(unit_id)),
            )


def test_mean_waveforms_are_channel_by_time_on_the_sessions_channels(
    session, root, session_id
):
    unit_id = session.units.index[0]
    probe_id = session.units.loc[unit_id, "probe_id"]
    waveform = session.mean_waveforms[unit_id]
    assert waveform.dims == ("channel_id", "time")
    assert waveform["channel_id"].dtype == np.int64
    with h5py.File(nwb_path(root, session_id), "r") as f:
        rows = list(f["units/id"][()])
        stored = _h5_ragged_row(f["units"], "waveform_mean", rows.index(unit_id))
    electrodes = _h5_electrodes(root, session_id)
    on_probe = electrodes[electrodes["probe_id"] == probe_id]
    by_number = pd.Series(on_probe.index, index=on_probe["local_index"])
    channel_ids = by_number.reindex(np.arange(stored.shape[0]))
    kept = channel_ids.isin(session.channels.index).to_numpy()
    assert not kept.all(), "rows of invalid channels are dropped"
    np.testing.assert_array_equal(waveform.values, stored[kept])
    np.testing.assert_array_equal(waveform["channel_id"], channel_ids[kept].to_numpy())
    rate = session.probes.loc[probe_id, "sampling_rate"]
    np.testing.assert_allclose(waveform["time"], np.arange(stored.shape[1]) / rate)


def test_many_units_spikes_arrive_in_one_round(cache, session_id):
    session = cache.get_session_data(session_id)
    store = session._nwb.root.store
    presentations = session.stimulus_presentations.index[:6]
    units = session.units.index
    with pytest.warns(UserWarning):
        session.spike_times  # noqa: B018 - the warning, and the column's row ends
    before = store.stats.copy()
    counts = session.presentationwise_spike_counts(
        bin_edges=np.linspace(0, 0.25, 11),
        stimulus_presentation_ids=presentations,
        unit_ids=units,
    )
    assert (store.stats - before).round_trips == 1
    assert counts.dims == (
        "stimulus_presentation_id", "time_relative_to_stimulus_onset", "unit_id"
    )
    assert counts.shape == (6, 10, len(units))
    assert counts.dtype == np.uint16


# -- stimuli, behaviour, metadata ------------------------------------------------------------------


def test_stimulus_presentations_are_one_sorted_table(session):
    presentations = session.stimulus_presentations
    assert presentations.index.name == "stimulus_presentation_id"
    assert presentations["start_time"].is_monotonic_increasing
    valid = presentations["stimulus_name"] != "invalid_presentation"
    assert np.allclose(
        presentations.loc[valid, "duration"],
        (presentations["stop_time"] - presentations["start_time"])[valid],
    )
    assert presentations["stimulus_condition_id"].dropna().isin(
        session.stimulus_conditions.index
    ).all()
    assert not presentations[valid].isna().any().any(), "missing values must read 'null'"


def test_a_presentation_inside_an_invalid_interval_is_renamed(cache, root):
    session = cache.get_session_data(session_with(root, "intervals/invalid_times"))
    presentations = session.stimulus_presentations
    invalid = presentations[presentations["stimulus_name"] == "invalid_presentation"]
    assert len(invalid) > 0
    assert invalid["stimulus_condition_id"].isna().all(), "blanked, times kept"
    assert invalid["start_time"].notna().all()


def test_invalid_times_are_the_files_table(cache, root):
    session_id = session_with(root, "intervals/invalid_times")
    invalid = cache.get_session_data(session_id).invalid_times
    assert list(invalid.columns) == ["start_time", "stop_time", "tags"]
    assert invalid.index.name == "id"
    with h5py.File(nwb_path(root, session_id), "r") as f:
        table = f["intervals/invalid_times"]
        np.testing.assert_array_equal(invalid["start_time"], table["start_time"][()])
        np.testing.assert_array_equal(invalid["stop_time"], table["stop_time"][()])
        tags = np.split(_text(table["tags"][()]), table["tags_index"][()][:-1].astype(np.int64))
    assert [list(t) for t in invalid["tags"]] == [list(t) for t in tags]
    none = cache.get_session_data(session_with(root, "intervals/invalid_times", False))
    assert none.invalid_times.empty and list(none.invalid_times.columns) == []


def test_running_speed_is_the_files_series(session, root, session_id):
    running = session.running_speed
    assert list(running.columns) == ["start_time", "end_time", "velocity"]
    with h5py.File(nwb_path(root, session_id), "r") as f:
        module = f["processing/running"]
        np.testing.assert_array_equal(running["start_time"], module["running_speed/timestamps"])
        np.testing.assert_array_equal(
            running["end_time"], module["running_speed_end_times/timestamps"]
        )
        np.testing.assert_array_equal(running["velocity"], module["running_speed/data"])


def test_pupil_data_gives_full_axes_per_frame(cache, root):
    session_id = session_with(root, "processing/eye_tracking")
    pupil = cache.get_session_data(session_id).get_pupil_data()
    assert list(pupil.columns) == PUPIL_COLUMNS
    assert pupil.index.name == "Time (s)"
    with h5py.File(nwb_path(root, session_id), "r") as f:
        np.testing.assert_array_equal(
            pupil.index, f["processing/raw_gaze_mapping/eye_area/timestamps"][()]
        )
        fits = f["processing/eye_tracking/pupil_ellipse_fits"]
        np.testing.assert_array_equal(pupil["pupil_height"], 2 * fits["height"][()])
        np.testing.assert_array_equal(pupil["pupil_center_x"], fits["center_x"][()])


def test_optogenetic_stimulation_epochs_are_the_files_table(cache, root):
    session_id = session_with(root, "processing/optotagging/optogenetic_stimulation")
    epochs = cache.get_session_data(session_id).optogenetic_stimulation_epochs
    assert epochs.index.name == "id"
    assert not {"tags", "timeseries"} & set(epochs.columns)
    with h5py.File(nwb_path(root, session_id), "r") as f:
        table = f["processing/optotagging/optogenetic_stimulation"]
        declared = [c for c in _text(table.attrs["colnames"]) if c not in ("tags", "timeseries")]
        assert list(epochs.columns) == declared
        np.testing.assert_array_equal(epochs["start_time"], table["start_time"][()])
        assert list(epochs["stimulus_name"]) == list(_text(table["stimulus_name"][()]))


def test_missing_optional_modules_give_what_allensdk_gives(cache, root):
    no_eyes = cache.get_session_data(session_with(root, "processing/eye_tracking", False))
    assert no_eyes.get_pupil_data() is None
    assert no_eyes.rig_geometry_data is None and no_eyes.rig_equipment_name is None
    # AllenSDK raises KeyError: pynwb finds no optotagging module.
    without = cache.get_session_data(session_with(root, "processing/optotagging", False))
    with pytest.raises(KeyError, match="no optotagging"):
        without.optogenetic_stimulation_epochs  # noqa: B018


def test_metadata_names_the_session(session, session_id, root):
    metadata = session.metadata
    assert list(metadata) == [
        "specimen_name", "session_type", "full_genotype", "sex", "age_in_days",
        "rig_equipment_name", "num_units", "num_channels", "num_probes",
        "num_stimulus_presentations", "session_start_time", "ecephys_session_id",
        "structure_acronyms", "stimulus_names",
    ]
    with h5py.File(nwb_path(root, session_id), "r") as f:
        subject = f["general/subject"]
        assert metadata["full_genotype"] == subject["genotype"][()].decode()
        assert metadata["sex"] == subject["sex"][()].decode()
        assert metadata["specimen_name"] == subject.attrs["specimen_name"]
        assert metadata["age_in_days"] == subject.attrs["age_in_days"]
        assert metadata["session_type"] == f["general/stimulus"][()].decode()
        started = f["session_start_time"][()].decode()
    assert metadata["ecephys_session_id"] == session_id
    assert metadata["session_start_time"] == datetime.datetime.fromisoformat(started)
    assert metadata["session_start_time"].tzinfo is not None
    assert metadata["num_units"] == len(session.units)
    assert metadata["num_channels"] == len(session.channels)
    assert metadata["structure_acronyms"] == list(
        session.channels["ecephys_structure_acronym"].unique()
    )
    assert metadata["stimulus_names"] == list(
        session.stimulus_presentations["stimulus_name"].unique()
    )


# -- LFP and CSD -----------------------------------------------------------------------------------


def _lfp_probe(synthetic_dataset, session_id: int) -> int:
    return int(synthetic_dataset.lfp_probe_ids[session_id][0])


def _local_lfp(root: Path, session_id: int, probe_id: int) -> tuple[np.ndarray, h5py.Dataset]:
    handle = h5py.File(_lfp_path(root, session_id, probe_id), "r")
    series = handle[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data"]
    return series["timestamps"][()], series["data"]


def test_get_lfp_is_lazy_and_reads_only_a_windows_chunks(
    session, synthetic_dataset, root, session_id
):
    probe_id = _lfp_probe(synthetic_dataset, session_id)
    lfp = session.get_lfp(probe_id, mask_invalid_intervals=False)
    times, data = _local_lfp(root, session_id, probe_id)

    assert isinstance(lfp.data, da.Array)
    assert lfp.name == "LFP" and lfp.dims == ("time", "channel")
    assert lfp.dtype == np.float32 and lfp["time"].dtype == np.float64
    assert lfp["channel"].dtype == np.int64
    np.testing.assert_array_equal(lfp["time"].values, times)
    with h5py.File(_lfp_path(root, session_id, probe_id), "r") as f:
        np.testing.assert_array_equal(lfp["channel"].values, f[f"{ELECTRODES}/id"][()])
    assert lfp.shape == data.shape

    start = float(times[0]) + 10.0
    selected = (times >= start) & (times <= start + 1.0)
    store = session._lfp_file(probe_id).data.store
    before = store.stats.copy()
    window = lfp.sel(time=slice(start, start + 1.0)).compute()
    spent = store.stats - before
    rows = np.flatnonzero(selected)
    np.testing.assert_array_equal(window.values, data[rows[0] : rows[-1] + 1, :])
    chunk_rows = data.chunks[0]
    touched_row_chunks = rows[-1] // chunk_rows - rows[0] // chunk_rows + 1
    n_column_chunks = -(-data.shape[1] // data.chunks[1])
    assert spent.requests <= touched_row_chunks * n_column_chunks
    assert spent.round_trips == 1
    assert spent.bytes < 0.5 * data.id.get_storage_size()


def test_the_lfp_time_coordinate_is_read_once_per_probe(cache, synthetic_dataset, session_id):
    session = cache.get_session_data(session_id)
    probe_id = _lfp_probe(synthetic_dataset, session_id)
    session.get_lfp(probe_id)
    store = session._lfp_file(probe_id).data.store
    before = store.stats.copy()
    again = session.get_lfp(probe_id)
    session.get_lfp(probe_id, mask_invalid_intervals=False)
    assert (store.stats - before).requests == 0
    assert again.sizes["time"] > 0


def test_a_new_session_reopens_a_probes_lfp_without_a_request(
    s3_dataset, synthetic_dataset, session_id, tmp_path
):
    def open_lfp() -> tuple[xr.DataArray, object]:
        cache = EcephysProjectCache.from_s3(
            s3_dataset.url,
            storage_options=s3_dataset.storage_options,
            cache_dir=tmp_path / "files",
            index_cache_dir=tmp_path / "indexes",
        )
        session = cache.get_session_data(session_id)
        probe_id = _lfp_probe(synthetic_dataset, session_id)
        return session.get_lfp(probe_id), session._lfp_file(probe_id).data.store

    first, _ = open_lfp()
    again, store = open_lfp()  # index and timestamps both kept beside the index
    assert (store.stats.requests, store.stats.bytes) == (0, 0)
    assert np.array_equal(again["time"].values, first["time"].values)


def test_lfp_graphs_pickle_without_file_handles(session, synthetic_dataset, session_id):
    lfp = session.get_lfp(_lfp_probe(synthetic_dataset, session_id))
    graph = dict(lfp.data.__dask_graph__())
    assert pickle.loads(pickle.dumps(graph)).keys() == graph.keys()
    window = lfp.isel(time=slice(100, 110))
    restored = pickle.loads(pickle.dumps(window))
    np.testing.assert_array_equal(restored.values, window.values)


def test_invalid_intervals_mask_the_probes_lfp_lazily(cache, root, synthetic_dataset):
    session_id = session_with(root, "intervals/invalid_times")
    session = cache.get_session_data(session_id)
    invalid = session.invalid_times
    masked_any = False
    for probe_id in synthetic_dataset.lfp_probe_ids[session_id]:
        name = session.probes.loc[probe_id, "description"]
        scoped = invalid[invalid["tags"].map(lambda t, n=name: "all_probes" in t or n in t)]
        lfp = session.get_lfp(probe_id)
        assert isinstance(lfp.data, da.Array) and lfp.dtype == np.float32
        if scoped.empty:
            continue
        start, stop = float(scoped["start_time"].iloc[0]), float(scoped["stop_time"].iloc[0])
        inside = lfp.sel(time=slice(start, stop)).compute()
        assert inside.sizes["time"] > 0 and bool(inside.isnull().all())
        outside = lfp.sel(time=slice(stop + 1.0, stop + 2.0)).compute()
        assert bool(outside.notnull().all())
        unmasked = session.get_lfp(probe_id, mask_invalid_intervals=False)
        assert bool(unmasked.sel(time=slice(start, stop)).notnull().all())
        masked_any = True
    assert masked_any, "the dataset's invalid interval covers no probe with LFP"


def test_a_probe_without_lfp_fails_before_any_request(cache, synthetic_dataset):
    session_id, probe_id = _probe_without_lfp(synthetic_dataset)
    session = cache.get_session_data(session_id)
    assert not session.probes.loc[probe_id, "has_lfp_data"]
    store = session._nwb.root.store
    before = store.stats.copy()
    with pytest.raises(ValueError, match="has_lfp_data"):
        session.get_lfp(probe_id)
    with pytest.raises(ValueError, match="has_lfp_data"):
        session.get_current_source_density(probe_id)
    assert (store.stats - before).requests == 0


def test_an_unknown_probe_lists_the_sessions_probes(session):
    with pytest.raises(KeyError, match="its probes are") as failure:
        session.get_lfp(1)
    assert str(session.probes.index[0]) in str(failure.value)


def test_a_session_without_lfp_access_says_how_to_get_it(root, session_id, synthetic_dataset):
    nwb = SessionFile(open_hdf5(nwb_path(root, session_id)))
    session = EcephysSession(nwb)
    with pytest.raises(ValueError, match="without access to its LFP files"):
        session.get_lfp(_lfp_probe(synthetic_dataset, session_id))


def test_current_source_density_is_the_files_csd(session, synthetic_dataset, session_id, root):
    probe_id = _lfp_probe(synthetic_dataset, session_id)
    csd = session.get_current_source_density(probe_id)
    assert isinstance(csd, xr.DataArray) and csd.name == "CSD"
    assert csd.dims == ("virtual_channel_index", "time")
    with h5py.File(_lfp_path(root, session_id, probe_id), "r") as f:
        group = f["processing/current_source_density/ecephys_csd"]
        np.testing.assert_array_equal(csd.values, group["current_source_density/data"][()].T)
        np.testing.assert_array_equal(csd["time"], group["current_source_density/timestamps"])
        np.testing.assert_array_equal(
            csd["vertical_position"], group["virtual_electrode_y_positions"][()]
        )
        np.testing.assert_array_equal(
            csd["horizontal_position"], group["virtual_electrode_x_positions"][()]
        )
    np.testing.assert_array_equal(csd["virtual_channel_index"], np.arange(csd.shape[0]))


# -- one file, and the local folder ----------------------------------------------------------------


def test_from_nwb_path_gives_the_same_units_without_the_project_csvs(
    s3_dataset, session_id, tmp_path, session
):
    url = s3_dataset.join(f"session_{session_id}/session_{session_id}.nwb")
    single = EcephysSession.from_nwb_path(
        url, storage_options=s3_dataset.storage_options, cache_dir=tmp_path
    )
    assert single.ecephys_session_id == session_id
    # The out-of-brain filter reads the file's acronyms, so the units are the same.
    assert list(single.units.index) == list(session.units.index)
    assert list(single.channels.columns) == FILE_ONLY_CHANNEL_COLUMNS
    unit_id = session.units.index[0]
    with pytest.warns(UserWarning, match="invalid time intervals"):
        spike_times = single.spike_times
    np.testing.assert_array_equal(spike_times[unit_id], session.spike_times[unit_id])
    # AllenSDK fails here without channels.csv; the file's acronyms answer instead.
    assert single.structurewise_unit_counts.sum() == len(single.units)
    assert single.metadata["structure_acronyms"] == list(
        single.channels["structure_acronym"].unique()
    )
    probe_id = int(session.probes.index[session.probes["has_lfp_data"]][0])
    np.testing.assert_array_equal(
        single.get_lfp(probe_id)["time"].values, session.get_lfp(probe_id)["time"].values
    )


def test_from_nwb_path_takes_allensdks_api_kwargs(root, session_id, tmp_path):
    default = EcephysSession.from_nwb_path(nwb_path(root, session_id), cache_dir=tmp_path)
    unbounded = EcephysSession.from_nwb_path(
        nwb_path(root, session_id), cache_dir=tmp_path, api_kwargs=NO_BOUNDS
    )
    assert len(unbounded.units) > len(default.units)


@pytest.mark.slow
def test_every_session_reads_the_same_on_the_local_s3_and_from_the_local_folder(
    cache, local_cache, synthetic_dataset
):
    for session_id in synthetic_dataset.session_ids:
        remote = cache.get_session_data(session_id)
        local = local_cache.get_session_data(session_id)
        assert local._nwb.root.url != remote._nwb.root.url
        for name in ("probes", "channels", "units", "running_speed", "invalid_times",
                     "stimulus_presentations", "stimulus_conditions"):
            pd.testing.assert_frame_equal(getattr(local, name), getattr(remote, name))
        for method in ("get_pupil_data",):
            left, right = getattr(local, method)(), getattr(remote, method)()
            if left is None or right is None:
                assert left is right
            else:
                pd.testing.assert_frame_equal(left, right)
        try:
            epochs = local.optogenetic_stimulation_epochs
        except KeyError:
            with pytest.raises(KeyError):
                remote.optogenetic_stimulation_epochs  # noqa: B018
        else:
            pd.testing.assert_frame_equal(epochs, remote.optogenetic_stimulation_epochs)
        assert local.metadata == remote.metadata
        with warnings.catch_warnings():
            # Sessions with invalid intervals warn on spike_times (tested above).
            warnings.simplefilter("ignore", UserWarning)
            remote.spike_times.prefetch(list(remote.units.index))
            for unit_id, times in local.spike_times.items():
                np.testing.assert_array_equal(times, remote.spike_times[unit_id])
        unit_id = local.units.index[0]
        xr.testing.assert_identical(local.mean_waveforms[unit_id], remote.mean_waveforms[unit_id])
        for probe_id in synthetic_dataset.lfp_probe_ids[session_id]:
            window = {"time": slice(20.0, 21.0)}
            xr.testing.assert_identical(
                local.get_lfp(probe_id).sel(window).compute(),
                remote.get_lfp(probe_id).sel(window).compute(),
            )
            xr.testing.assert_identical(
                local.get_current_source_density(probe_id),
                remote.get_current_source_density(probe_id),
            )

