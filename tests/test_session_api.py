"""``session.api``: AllenSDK 2.16.2's ``EcephysNwbSessionApi`` readers on the synthetic dataset
served by the local S3, checked against plain h5py reads of the same files and against the
session tables AllenSDK builds from them.

The readers' shapes follow ``allensdk/brain_observatory/ecephys/ecephys_session_api/
ecephys_nwb_session_api.py`` (2.16.2) and the ``Probes``/``Channels`` objects it calls.
"""

from __future__ import annotations

import datetime
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from session_files import nwb_path, ragged_extents, record_ranges, s3_project_cache, session_with

from s3ecephys import EcephysProjectCache, EcephysSession

# ``Probes.get_units_table``: the ``Unit`` properties, ``quality`` dropped by the validity filter.
API_UNIT_COLUMNS = [
    "PT_ratio", "amplitude", "amplitude_cutoff", "cluster_id", "cumulative_drift", "d_prime",
    "firing_rate", "isi_violations", "isolation_distance", "l_ratio", "local_index",
    "max_drift", "nn_hit_rate", "nn_miss_rate", "peak_channel_id", "presence_ratio",
    "recovery_slope", "repolarization_slope", "silhouette_score", "snr", "spread",
    "velocity_above", "velocity_below", "waveform_duration",
]
METADATA_KEYS = [
    "specimen_name", "age_in_days", "full_genotype", "strain", "sex", "stimulus_name",
    "subject_id", "age", "species",
]
GAZE_COLUMNS = [
    "eye_area", "pupil_area", "screen_coordinates_x_cm", "screen_coordinates_y_cm",
    "screen_coordinates_spherical_x_deg", "screen_coordinates_spherical_y_deg",
]


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture(scope="module")
def root(synthetic_dataset) -> Path:
    return Path(synthetic_dataset.root)


@pytest.fixture(scope="module")
def cache(project_cache) -> EcephysProjectCache:
    return project_cache


@pytest.fixture(scope="module")
def session_id(synthetic_dataset) -> int:
    return int(synthetic_dataset.session_ids[0])


@pytest.fixture(scope="module")
def session(cache, session_id) -> EcephysSession:
    return cache.get_session_data(session_id)


# -- the tables the session is built from ------------------------------------------------------


def test_the_session_tables_are_the_apis(session):
    api = session.api
    pd.testing.assert_frame_equal(api.get_probes(), session.probes)
    pd.testing.assert_frame_equal(api.get_channels(), session.channels)
    pd.testing.assert_frame_equal(api.get_invalid_times(), session.invalid_times)
    pd.testing.assert_frame_equal(api.get_running_speed(), session.running_speed)
    pd.testing.assert_frame_equal(api.get_pupil_data(), session.get_pupil_data())
    pd.testing.assert_frame_equal(
        api.get_optogenetic_stimulation(), session.optogenetic_stimulation_epochs
    )
    pd.testing.assert_frame_equal(
        api.get_rig_metadata()["geometry"], session.rig_geometry_data
    )
    assert api.get_ecephys_session_id() == session.ecephys_session_id
    assert api.get_session_start_time() == session.session_start_time
    api.test()


def test_a_returned_table_is_the_callers_to_change(session):
    probes = session.api.get_probes()
    probes["description"] = "changed"
    assert not (session.api.get_probes()["description"] == "changed").any()
    assert not (session.probes["description"] == "changed").any()


def test_units_are_the_filtered_file_rows_before_the_sessions_joins(session, root, session_id):
    units = session.api.get_units()
    assert units.index.name == "id"
    assert list(units.columns) == API_UNIT_COLUMNS
    assert set(units.index) == set(session.units.index)
    with h5py.File(nwb_path(root, session_id), "r") as f:
        table = f["units"]
        ids = list(table["id"][()])
        rows = [ids.index(unit_id) for unit_id in units.index]
        np.testing.assert_array_equal(units["snr"], table["snr"][()][rows])
        np.testing.assert_array_equal(units["peak_channel_id"], table["peak_channel_id"][()][rows])
        # AllenSDK's order: probe by probe (the file's electrode group order), file order within.
        electrodes = f["general/extracellular_ephys/electrodes"]
        probe_of = dict(zip(electrodes["id"][()], electrodes["probe_id"][()], strict=True))
        groups = f["general/extracellular_ephys"]
        order = [int(groups[n].attrs["probe_id"]) for n in groups if "probe_id" in groups[n].attrs]
    positions = [(order.index(probe_of[c]), row)
                 for c, row in zip(units["peak_channel_id"], rows, strict=True)]
    assert positions == sorted(positions)


def test_unfiltered_units_keep_quality_and_every_unit(cache, root, session_id):
    session = cache.get_session_data(
        session_id, filter_by_validity=False, filter_out_of_brain_units=False,
        amplitude_cutoff_maximum=None, presence_ratio_minimum=None, isi_violations_maximum=None,
    )
    units = session.api.get_units()
    assert "quality" in units
    with h5py.File(nwb_path(root, session_id), "r") as f:
        table = f["units"]
        metrics = ("amplitude_cutoff", "presence_ratio", "isi_violations")
        # NaN metrics fail even infinite bounds (plain float comparisons in AllenSDK).
        measured = np.all([~np.isnan(table[name][()]) for name in metrics], axis=0)
        assert list(units.index) and set(units.index) == set(table["id"][()][measured])


# -- per-unit arrays ---------------------------------------------------------------------------


def test_the_readers_fetch_no_ragged_array_until_a_unit_is_asked_for(
    s3_dataset, tmp_path, root, monkeypatch
):
    cache = s3_project_cache(s3_dataset, tmp_path)
    session_id = session_with(root, "processing/filtered_gaze_mapping")
    cache.get_session_data(session_id)  # builds and keeps the file's index
    asked = record_ranges(monkeypatch)
    api = cache.get_session_data(session_id).api
    for reader in ("get_probes", "get_channels", "get_units", "get_metadata",
                   "get_stimulus_presentations", "get_invalid_times", "get_raw_running_data",
                   "get_screen_gaze_data", "get_pupil_data", "get_rig_metadata"):
        getattr(api, reader)()
    api.get_running_speed(include_rotation=True)
    mappings = [api.get_spike_times(), api.get_spike_amplitudes(), api.get_mean_waveforms()]
    extents = ragged_extents(nwb_path(root, session_id))
    touched = [
        (offset, length) for offset, length in asked for start, size in extents
        if offset < start + size and offset + length > start
    ]
    # (The small tables are kept in the file's index: they may cost no request at all.)
    assert not touched, "read a ragged array"
    unit_id = next(iter(mappings[0]))
    mappings[0][unit_id]
    start, size = extents[0]
    inside = [(o, n) for o, n in asked if o < start + size and o + n > start]
    assert inside and sum(n for _, n in inside) < size, "one unit's range, not the column"


def test_ragged_readers_cover_every_unit_and_share_what_the_session_read(
    session, root, session_id
):
    spike_times = session.api.get_spike_times()
    with h5py.File(nwb_path(root, session_id), "r") as f:
        table = f["units"]
        ids = list(table["id"][()])
        assert sorted(spike_times) == sorted(ids)
        for name, reader in (
            ("spike_times", session.api.get_spike_times),
            ("spike_amplitudes", session.api.get_spike_amplitudes),
            ("waveform_mean", session.api.get_mean_waveforms),
        ):
            ends = table[f"{name}_index"][()].astype(np.int64)
            row = len(ids) - 1
            expected = table[name][ends[row - 1] : ends[row]]
            np.testing.assert_array_equal(reader()[ids[row]], expected)
    # The session's units are a subset, in the API's order, and read once for both.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        session_times = session.spike_times
    assert list(session_times) == [u for u in spike_times if u in set(session.units.index)]
    unit_id = session.units.index[0]
    assert session_times[unit_id] is spike_times[unit_id]
    waveform = session.api.get_mean_waveforms()[unit_id]
    assert isinstance(waveform, np.ndarray) and waveform.ndim == 2
    assert session.mean_waveforms[unit_id].shape[1] == waveform.shape[1]


# -- stimuli -----------------------------------------------------------------------------------


def test_stimulus_presentations_are_the_files_tables_before_the_sessions_renames(
    session, root, session_id
):
    table = session.api.get_stimulus_presentations()
    assert list(table.index) == list(range(len(table)))
    assert table["start_time"].is_monotonic_increasing
    assert "stimulus_condition_id" not in table and "stimulus_index" in table
    with h5py.File(nwb_path(root, session_id), "r") as f:
        names = [n for n in f["intervals"] if n.endswith("_presentations")]
        assert len(table) == sum(len(f[f"intervals/{n}/id"]) for n in names)
        raw_names = {_text(v) for n in names for v in f[f"intervals/{n}/stimulus_name"][()]}
    # The names as stored: the session renames some (natural_movie_3 …) and blanks others.
    assert set(table["stimulus_name"]) == raw_names
    assert len(session.stimulus_presentations) == len(table)


# -- behaviour ---------------------------------------------------------------------------------


def test_running_speed_with_rotation_and_the_raw_running_data(session, root, session_id):
    running = session.api.get_running_speed(include_rotation=True)
    assert list(running.columns) == ["start_time", "end_time", "velocity", "net_rotation"]
    raw = session.api.get_raw_running_data()
    assert list(raw.columns) == ["frame_time", "net_rotation", "signal_voltage", "supply_voltage"]
    with h5py.File(nwb_path(root, session_id), "r") as f:
        np.testing.assert_array_equal(
            running["net_rotation"], f["processing/running/running_wheel_rotation/data"][()]
        )
        acquisition = f["acquisition"]
        np.testing.assert_array_equal(
            raw["frame_time"], acquisition["raw_running_wheel_rotation/timestamps"][()]
        )
        np.testing.assert_array_equal(
            raw["net_rotation"], acquisition["raw_running_wheel_rotation/data"][()]
        )
        np.testing.assert_array_equal(
            raw["signal_voltage"], acquisition["running_wheel_signal_voltage/data"][()]
        )
        np.testing.assert_array_equal(
            raw["supply_voltage"], acquisition["running_wheel_supply_voltage/data"][()]
        )


def test_a_file_without_raw_running_data_names_what_it_lacks(root, session_id, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(root / f"session_{session_id}", folder)
    path = folder / f"session_{session_id}.nwb"
    with h5py.File(path, "r+") as f:
        del f["acquisition/running_wheel_supply_voltage"]
    session = EcephysSession.from_nwb_path(path, cache_dir=tmp_path / "idx")
    # pynwb's get_acquisition raises KeyError in AllenSDK.
    with pytest.raises(KeyError, match="running_wheel_supply_voltage"):
        session.api.get_raw_running_data()


def test_screen_gaze_data_is_the_gaze_mapping_per_frame(cache, root):
    session_id = session_with(root, "processing/filtered_gaze_mapping")
    session = cache.get_session_data(session_id)
    raw = session.get_screen_gaze_data()
    both = session.get_screen_gaze_data(include_filtered_data=True)
    assert list(raw.columns) == [f"raw_{c}" for c in GAZE_COLUMNS]
    assert list(both.columns) == [f"{p}_{c}" for p in ("raw", "filtered") for c in GAZE_COLUMNS]
    assert raw.index.name == "Time (s)"
    pd.testing.assert_frame_equal(session.api.get_screen_gaze_data(True), both)
    with h5py.File(nwb_path(root, session_id), "r") as f:
        gaze = f["processing/raw_gaze_mapping"]
        filtered = f["processing/filtered_gaze_mapping"]
        np.testing.assert_array_equal(raw.index, gaze["eye_area/timestamps"][()])
        np.testing.assert_array_equal(raw["raw_pupil_area"], gaze["pupil_area/data"][()])
        # Stored as (y, x) pairs.
        coordinates = gaze["screen_coordinates/data"][()]
        np.testing.assert_array_equal(raw["raw_screen_coordinates_x_cm"], coordinates[:, 1])
        np.testing.assert_array_equal(raw["raw_screen_coordinates_y_cm"], coordinates[:, 0])
        spherical = filtered["screen_coordinates_spherical/data"][()]
        np.testing.assert_array_equal(
            both["filtered_screen_coordinates_spherical_y_deg"], spherical[:, 0]
        )
        np.testing.assert_array_equal(both["filtered_eye_area"], filtered["eye_area/data"][()])


def test_a_session_without_eye_tracking_has_no_gaze(cache, root):
    session = cache.get_session_data(session_with(root, "processing/raw_gaze_mapping", False))
    assert session.get_screen_gaze_data() is None
    assert session.api.get_screen_gaze_data(include_filtered_data=True) is None
    assert session.api.get_rig_metadata() is None


def test_metadata_is_the_files_subject(session, root, session_id):
    metadata = session.api.get_metadata()
    assert list(metadata) == METADATA_KEYS
    with h5py.File(nwb_path(root, session_id), "r") as f:
        subject = f["general/subject"]
        fields = {**dict(subject.attrs), **{n: subject[n][()] for n in subject}}
        for key, field in (("full_genotype", "genotype"), ("sex", "sex"),
                           ("species", "species"), ("age", "age"),
                           ("subject_id", "subject_id"), ("strain", "strain"),
                           ("specimen_name", "specimen_name"), ("age_in_days", "age_in_days")):
            assert metadata[key] == _text(fields[field]), key
        assert metadata["stimulus_name"] == _text(f["general/stimulus"][()])


def test_optogenetic_stimulation_fails_as_allensdk_without_optotagging(cache, root):
    session = cache.get_session_data(session_with(root, "processing/optotagging", False))
    with pytest.raises(KeyError, match="no optotagging"):
        session.api.get_optogenetic_stimulation()


# -- LFP and CSD -------------------------------------------------------------------------------


def test_lfp_from_the_api_is_unmasked_and_lazy(session, synthetic_dataset, session_id):
    probe_id = int(synthetic_dataset.lfp_probe_ids[session_id][0])
    lfp = session.api.get_lfp(probe_id)
    assert lfp.name == "LFP" and lfp.dims == ("time", "channel")
    assert lfp.chunks is not None, "a dask-backed array"
    window = {"time": slice(20.0, 20.5)}
    xr.testing.assert_identical(
        lfp.sel(window).compute(),
        session.get_lfp(probe_id, mask_invalid_intervals=False).sel(window).compute(),
    )
    xr.testing.assert_identical(
        session.api.get_current_source_density(probe_id),
        session.get_current_source_density(probe_id),
    )


def test_the_start_time_is_timezone_aware(session, root, session_id):
    with h5py.File(nwb_path(root, session_id), "r") as f:
        stored = _text(f["session_start_time"][()])
    started = session.api.get_session_start_time()
    assert started == datetime.datetime.fromisoformat(stored) and started.tzinfo is not None
