"""The synthetic dataset against the real layout (ALLEN_LAYOUT.md §2, 3, 5–8).

Most tests read the session-wide ``synthetic_dataset`` (the small spec, seed 0, NWB 2.2.2 layout).
Paths and dtypes are checked with h5py, as the project's readers see them; pynwb only checks that
every file opens as valid NWB without a warning. The two NWB layouts: ``test_nwb_versions``.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from h5py._hl.filters import guess_chunk
from synthetic_specs import TINY

from s3ecephys.allen import manifest
from s3ecephys.synthetic import SyntheticSpec, write_dataset
from s3ecephys.synthetic.catalog import build_catalog

ELECTRODES = "general/extracellular_ephys/electrodes"
RAGGED_UNIT_COLUMNS = ("spike_times", "spike_amplitudes", "waveform_mean")


@pytest.fixture(scope="module")
def root(synthetic_dataset) -> Path:
    return Path(synthetic_dataset.root)


def session_file(dataset, session_id: int) -> h5py.File:
    return h5py.File(dataset.root / manifest.session_nwb(session_id), "r")


def lfp_file(dataset, session_id: int, probe_id: int) -> h5py.File:
    return h5py.File(dataset.root / manifest.probe_lfp_nwb(session_id, probe_id), "r")


def all_lfp_files(dataset):
    for session_id, probe_ids in dataset.lfp_probe_ids.items():
        for probe_id in probe_ids:
            yield probe_id, lfp_file(dataset, session_id, probe_id)


def read_csv(root: Path, name: str, index: str = "id") -> pd.DataFrame:
    return pd.read_csv(root / name, index_col=index)


def is_contiguous(dataset: h5py.Dataset) -> bool:
    return dataset.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS


# --- files and tables ----------------------------------------------------------------------------


def test_the_files_are_the_allen_cache_layout(synthetic_dataset):
    expected = {
        "manifest.json",
        "sessions.csv",
        "probes.csv",
        "channels.csv",
        "units.csv",
        "brain_observatory_1.1_analysis_metrics.csv",
        "functional_connectivity_analysis_metrics.csv",
    }
    for session_id in synthetic_dataset.session_ids:
        expected.add(f"session_{session_id}/session_{session_id}.nwb")
        for probe_id in synthetic_dataset.lfp_probe_ids[session_id]:
            expected.add(f"session_{session_id}/probe_{probe_id}_lfp.nwb")

    on_disk = {p.relative_to(synthetic_dataset.root).as_posix()
               for p in synthetic_dataset.root.rglob("*") if p.is_file()}
    assert set(synthetic_dataset.files) == expected == on_disk
    assert synthetic_dataset.files == sorted(synthetic_dataset.files)


def test_the_manifest_is_the_text_allensdk_writes(root):
    assert (root / "manifest.json").read_text() == manifest.manifest_text()


def test_the_csvs_have_the_allen_columns(root):
    assert list(read_csv(root, "sessions.csv").columns) == [
        "date_of_acquisition", "isi_experiment_id", "published_at", "specimen_id",
        "session_type", "age_in_days", "sex", "genotype", "has_nwb", "structure_acronyms",
    ]
    assert list(read_csv(root, "probes.csv").columns) == [
        "air_channel_index", "ecephys_session_id", "lfp_sampling_rate",
        "lfp_temporal_subsampling_factor", "name", "phase", "sampling_rate",
        "surface_channel_index", "has_lfp_data",
    ]
    assert list(read_csv(root, "channels.csv").columns) == [
        "ecephys_probe_id", "local_index", "probe_horizontal_position",
        "probe_vertical_position", "anterior_posterior_ccf_coordinate",
        "dorsal_ventral_ccf_coordinate", "left_right_ccf_coordinate", "ecephys_structure_id",
        "ecephys_structure_acronym",
    ]
    units = read_csv(root, "units.csv")
    assert units.columns[:3].tolist() == ["ecephys_channel_id", "quality", "snr"]
    assert {"firing_rate", "isi_violations", "presence_ratio", "amplitude_cutoff", "PT_ratio",
            "velocity_below", "epoch_name_quality_metrics"} <= set(units.columns)
    for name in ("sessions", "probes", "channels", "units"):
        assert (root / f"{name}.csv").read_text().startswith("id,")


def test_the_ids_are_nine_digits_and_unique_across_tables(root):
    ids = np.concatenate(
        [read_csv(root, f"{name}.csv").index.to_numpy()
         for name in ("sessions", "probes", "channels", "units")]
    )
    assert len(np.unique(ids)) == len(ids)
    assert ((ids >= 100_000_000) & (ids < 1_000_000_000)).all()


def test_the_tables_agree_with_each_other(root):
    sessions, probes = read_csv(root, "sessions.csv"), read_csv(root, "probes.csv")
    channels, units = read_csv(root, "channels.csv"), read_csv(root, "units.csv")
    assert set(probes["ecephys_session_id"]) == set(sessions.index)
    assert set(channels["ecephys_probe_id"]) == set(probes.index)
    assert units["ecephys_channel_id"].isin(channels.index).all()
    assert set(sessions["session_type"]) == {"brain_observatory_1.1", "functional_connectivity"}
    assert sessions["genotype"].str.contains("Sst").any()
    assert (sessions["genotype"] == "wt/wt").any()
    assert set(probes["name"]) <= {f"probe{letter}" for letter in "ABCDEF"}
    assert set(probes["phase"]) == {"PXI", "3a"}
    assert np.allclose(probes["lfp_sampling_rate"], 2500.0, rtol=1e-4)
    assert (probes["lfp_temporal_subsampling_factor"] == 2.0).all()
    assert np.allclose(probes["sampling_rate"], 30000.0, rtol=1e-4)
    assert {"VISl", "VISp", "CA1", "LGd", "APN"} <= set(channels["ecephys_structure_acronym"])
    assert channels["ecephys_structure_acronym"].isna().any()
    # One probe without CCF registration: the sentinel coordinate.
    assert (channels["anterior_posterior_ccf_coordinate"] == -1).any()


def test_the_analysis_metrics_are_nan_for_stimuli_a_session_type_does_not_show(root):
    bo = read_csv(root, "brain_observatory_1.1_analysis_metrics.csv", "ecephys_unit_id")
    fc = read_csv(root, "functional_connectivity_analysis_metrics.csv", "ecephys_unit_id")
    units = read_csv(root, "units.csv")
    assert bo.index.name == fc.index.name == "ecephys_unit_id"
    assert list(bo.columns) == list(fc.columns)
    assert {"pref_ori_dg", "g_osi_dg", "p_value_rf", "on_screen_rf"} <= set(bo.columns)
    assert bo["pref_sf_sg"].notna().all() and fc["pref_sf_sg"].isna().all()
    assert fc["pref_speed_dm"].notna().all() and bo["pref_speed_dm"].isna().all()
    assert not set(bo.index) & set(fc.index)
    assert (units.loc[bo.index.union(fc.index), "quality"] == "good").all()


def test_units_csv_holds_the_nwb_units_and_channels_csv_the_nwb_electrodes(
    synthetic_dataset, root
):
    units, channels = read_csv(root, "units.csv"), read_csv(root, "channels.csv")
    nwb_units, nwb_channels = [], []
    for session_id in synthetic_dataset.session_ids:
        with session_file(synthetic_dataset, session_id) as f:
            nwb_units.append(f["units/id"][()])
            nwb_channels.append(f[f"{ELECTRODES}/id"][()])
            rates = pd.Series(f["units/firing_rate"][()], index=f["units/id"][()])
            assert np.allclose(rates, units.loc[rates.index, "firing_rate"])
    assert np.array_equal(np.concatenate(nwb_units), units.index.to_numpy())
    assert np.array_equal(np.concatenate(nwb_channels), channels.index.to_numpy())


# --- NWB files -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_nwb_file_opens_with_pynwb_without_warnings(synthetic_dataset):
    import pynwb

    nwb_files = [p for p in synthetic_dataset.files if p.endswith(".nwb")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for relative in nwb_files:
            with pynwb.NWBHDF5IO(str(synthetic_dataset.root / relative), "r",
                                 load_namespaces=True) as io:
                nwbfile = io.read()
                assert nwbfile.identifier == Path(relative).stem.split("_")[1]


def test_the_session_header_subject_and_probes(synthetic_dataset, root):
    sessions = read_csv(root, "sessions.csv")
    session_id = synthetic_dataset.session_ids[0]
    probe_id = synthetic_dataset.probe_ids[session_id][0]
    with session_file(synthetic_dataset, session_id) as f:
        assert f["identifier"].asstr()[()] == str(session_id)
        assert f["general/stimulus"].asstr()[()] == sessions.at[session_id, "session_type"]
        subject = f["general/subject"]
        assert subject.attrs["neurodata_type"] == "EcephysSpecimen"
        assert subject.attrs["namespace"] == "ndx-aibs-ecephys"
        assert {"specimen_name", "age_in_days", "strain"} <= set(subject.attrs)
        assert subject["genotype"].asstr()[()] == sessions.at[session_id, "genotype"]
        assert subject["age"].asstr()[()] == f"P{int(sessions.at[session_id, 'age_in_days'])}D"
        device = f["general/devices/probeA"]
        assert device.attrs["neurodata_type"] == "EcephysProbe"
        assert int(device.attrs["probe_id"]) == probe_id
        group = f["general/extracellular_ephys/probeA"]
        assert group.attrs["neurodata_type"] == "EcephysElectrodeGroup"
        assert {"probe_id", "has_lfp_data", "lfp_sampling_rate", "location", "description"} <= set(
            group.attrs
        )
        assert group["device"] == device
        electrodes = f[ELECTRODES]
        assert {"x", "y", "z", "imp", "location", "filtering", "group", "group_name",
                "probe_vertical_position", "probe_horizontal_position", "probe_id",
                "local_index", "valid_data"} <= set(electrodes)
        assert electrodes["valid_data"].dtype == bool
        assert not electrodes["valid_data"][()].all()
        assert (electrodes["location"].asstr()[()] == "").any()


def test_the_units_ragged_columns_are_contiguous_uncompressed_and_sorted(synthetic_dataset):
    for session_id in synthetic_dataset.session_ids:
        with session_file(synthetic_dataset, session_id) as f:
            units = f["units"]
            n_channels = len(f[f"{ELECTRODES}/id"]) // len(synthetic_dataset.probe_ids[session_id])
            for name in RAGGED_UNIT_COLUMNS:
                data, index = units[name], units[f"{name}_index"]
                assert data.dtype == np.float64
                assert is_contiguous(data) and data.chunks is None and data.compression is None
                assert index[-1] == len(data) and len(index) == len(units["id"])
            assert units["waveform_mean"].shape[1] == 82
            assert np.array_equal(
                np.diff(units["waveform_mean_index"][()], prepend=0),
                np.full(len(units["id"]), n_channels),
            )
            times, ends = units["spike_times"][()], units["spike_times_index"][()]
            for row in np.split(times, ends[:-1].astype(np.int64)):
                assert np.all(np.diff(row) >= 0)
            duration = synthetic_dataset.spec.duration
            rates = np.diff(ends.astype(np.int64), prepend=0) / duration
            assert rates.min() > 0.01 and rates.max() < 40


def test_vector_indexes_are_int64_as_in_the_real_files(synthetic_dataset):
    # The 2.2.2 layout (default); today's layout, with its unsigned indexes: test_nwb_versions.
    for session_id in synthetic_dataset.session_ids:
        with session_file(synthetic_dataset, session_id) as f:
            for name in ("units/spike_times_index", "units/spike_amplitudes_index",
                         "units/waveform_mean_index", "intervals/gabors_presentations/tags_index",
                         "intervals/gabors_presentations/timeseries_index"):
                assert f[name].dtype == np.int64, name


def test_the_presentation_tables(synthetic_dataset):
    for session_id in synthetic_dataset.session_ids:
        with session_file(synthetic_dataset, session_id) as f:
            intervals = f["intervals"]
            names = {n for n in intervals if n.endswith("_presentations")}
            assert {"gabors_presentations", "flashes_presentations",
                    "spontaneous_presentations"} <= names
            table = intervals["gabors_presentations"]
            assert {"start_time", "stop_time", "stimulus_name", "stimulus_block",
                    "stimulus_index", "tags", "tags_index", "timeseries",
                    "timeseries_index", "orientation", "phase", "size"} <= set(table)
            assert table["phase"].asstr()[0].startswith("[")
            assert table["orientation"].dtype == np.float64
            assert table["timeseries"].dtype.names == ("idx_start", "count", "timeseries")
            assert set(table["tags"].asstr()[()]) == {"stimulus_time_interval"}
            assert intervals["flashes_presentations/spatial_frequency"].asstr()[0] == "[0.0, 0.0]"
            stimulus_times = f["processing/stimulus/timestamps/timestamps"][()]
            assert np.all(np.diff(stimulus_times) >= 0)
    with session_file(synthetic_dataset, synthetic_dataset.session_ids[0]) as bo:
        assert {"drifting_gratings_presentations", "natural_movie_one_presentations",
                "natural_scenes_presentations", "static_gratings_presentations"} <= set(
            bo["intervals"]
        )


def test_invalid_times_cover_one_presentation_and_part_of_one_probes_lfp(synthetic_dataset):
    session_id = synthetic_dataset.session_ids[0]
    with session_file(synthetic_dataset, session_id) as f:
        table = f["intervals/invalid_times"]
        tags = np.split(table["tags"].asstr()[()], table["tags_index"][:-1].astype(np.int64))
        starts, stops = table["start_time"][()], table["stop_time"][()]
        labels = [row[2] for row in tags]
        assert all(len(row) == 3 for row in tags)
        assert {"stimulus", "all_probes"} <= set(labels)
        stimulus = labels.index("stimulus")
        presentations = [
            (f[f"intervals/{name}/start_time"][()], f[f"intervals/{name}/stop_time"][()])
            for name in f["intervals"] if name.endswith("_presentations")
        ]
        overlapping = sum(
            int(((begin <= stops[stimulus]) & (end >= starts[stimulus])).sum())
            for begin, end in presentations
        )
        assert overlapping == 1
        (probe_row,) = [row for row in tags if row[0] == "EcephysProbe"]
        assert int(probe_row[1]) in synthetic_dataset.lfp_probe_ids[session_id]
    with lfp_file(synthetic_dataset, session_id, int(probe_row[1])) as lfp:
        (series,) = [n for n in lfp["acquisition"] if n.endswith("_lfp_data")]
        times = lfp[f"acquisition/{series}/timestamps"][()]
        row = labels.index(probe_row[2])
        inside = (times >= starts[row]) & (times <= stops[row])
        assert 0 < inside.sum() < len(times)


def test_running_optotagging_and_eye_tracking_paths(synthetic_dataset, root):
    sessions = read_csv(root, "sessions.csv")
    without_eye_tracking = 0
    for session_id in synthetic_dataset.session_ids:
        with session_file(synthetic_dataset, session_id) as f:
            for name in ("running_speed", "running_speed_end_times", "running_wheel_rotation"):
                assert f"processing/running/{name}/timestamps" in f
            assert len(f["processing/running/running_speed/data"]) == len(
                f["processing/running/running_speed_end_times/timestamps"]
            )
            cre = sessions.at[session_id, "genotype"] != "wt/wt"
            assert ("processing/optotagging/optogenetic_stimulation" in f) == cre
            if "processing/eye_tracking" not in f:
                without_eye_tracking += 1
                assert not cre
                continue
            for fit in ("pupil", "cr", "eye"):
                table = f[f"processing/eye_tracking/{fit}_ellipse_fits"]
                assert {"center_x", "center_y", "height", "width", "phi", "timestamps"} <= set(
                    table
                )
            for module in ("raw_gaze_mapping", "filtered_gaze_mapping"):
                assert f"processing/{module}/eye_area/timestamps" in f
                assert f[f"processing/{module}/screen_coordinates/data"].shape[1] == 2
            rig = f["processing/eye_tracking_rig_metadata/eye_tracking_rig_metadata"]
            assert rig.attrs["neurodata_type"] == "EcephysEyeTrackingRigMetadata"
            assert rig["camera_position"].dtype == np.float32
            assert rig["camera_position"].attrs["unit"] == "mm"
    assert without_eye_tracking == 1


def test_the_lfp_files(synthetic_dataset, root):
    channels, probes = read_csv(root, "channels.csv"), read_csv(root, "probes.csv")
    channel_counts = []
    for probe_id, f in all_lfp_files(synthetic_dataset):
        with f:
            assert f["identifier"].asstr()[()] == str(probe_id)
            series_path = f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data"
            link = f.get(f"acquisition/probe_{probe_id}_lfp_data", getlink=True)
            assert isinstance(link, h5py.SoftLink) and link.path == f"/{series_path}"
            assert f[f"acquisition/probe_{probe_id}_lfp"].attrs["neurodata_type"] == "LFP"
            data, timestamps = f[f"{series_path}/data"], f[f"{series_path}/timestamps"]
            assert data.dtype == np.float32 and timestamps.dtype == np.float64
            assert data.compression == "gzip" and data.compression_opts == 9
            assert not data.shuffle
            assert data.chunks == guess_chunk(data.shape, None, data.dtype.itemsize)
            assert data.attrs["unit"] == "volts" and "rate" not in timestamps.attrs
            assert 13.5 <= timestamps[0] < 14.0
            rate = 1 / np.median(np.diff(timestamps[:1000]))
            assert rate == pytest.approx(probes.at[probe_id, "lfp_sampling_rate"] / 2, rel=1e-6)
            assert 2e-5 < float(np.std(data[:2000])) < 1e-3
            local = channels.loc[f[f"{ELECTRODES}/id"][()], "local_index"]
            assert (local % 4 == 2).all()
            channel_counts.append(data.shape[1])
            csd = f["processing/current_source_density/ecephys_csd"]
            assert csd.attrs["neurodata_type"] == "EcephysCSD"
            assert csd["current_source_density/data"].dtype == np.float64
            assert csd["current_source_density/data"].attrs["unit"] == "V/cm^2"
            for axis in ("x", "y"):
                positions = csd[f"virtual_electrode_{axis}_positions"]
                assert positions.dtype == np.float32 and positions.attrs["unit"] == "um"
    # One LFP file has far fewer channels than the others.
    assert min(channel_counts) < 0.5 * max(channel_counts)


def test_a_probe_without_lfp_data_has_no_lfp_file(synthetic_dataset, root):
    probes = read_csv(root, "probes.csv")
    without = probes.index[~probes["has_lfp_data"]].tolist()
    assert len(without) == 1
    (probe_id,) = without
    session_id = int(probes.at[probe_id, "ecephys_session_id"])
    assert probe_id not in synthetic_dataset.lfp_probe_ids[session_id]
    assert probe_id in synthetic_dataset.probe_ids[session_id]
    assert not (synthetic_dataset.root / manifest.probe_lfp_nwb(session_id, probe_id)).exists()
    with session_file(synthetic_dataset, session_id) as f:
        name = probes.at[probe_id, "name"]
        assert not f[f"general/extracellular_ephys/{name}"].attrs["has_lfp_data"]


def test_one_lfp_file_states_half_the_true_lfp_rate(synthetic_dataset, root):
    probes = read_csv(root, "probes.csv")
    ratios = []
    for probe_id, f in all_lfp_files(synthetic_dataset):
        with f:
            name = probes.at[probe_id, "name"]
            stated = f[f"general/extracellular_ephys/{name}"].attrs["lfp_sampling_rate"]
            ratios.append(stated / (probes.at[probe_id, "lfp_sampling_rate"] / 2))
    assert sorted(np.round(ratios, 6))[0] == 0.5
    assert sum(np.isclose(ratios, 1.0)) == len(ratios) - 1


def test_noise_units_and_missing_metrics(root):
    units = read_csv(root, "units.csv")
    assert set(units["quality"]) == {"good", "noise"}
    assert units["amplitude_cutoff"].isna().any()
    assert units.loc[units["quality"] == "noise", "isolation_distance"].isna().all()


# --- determinism, folders, sizes -----------------------------------------------------------------


@pytest.mark.slow
def test_the_same_seed_writes_the_same_values_and_another_seed_other_ones(tmp_path):
    first = write_dataset(tmp_path / "first" / "nested", spec=TINY, seed=3)
    again = write_dataset(tmp_path / "again", spec=TINY, seed=3)
    other = write_dataset(tmp_path / "other", spec=TINY, seed=4)
    assert first.files == again.files
    csvs = [name for name in first.files if name.endswith(".csv")]
    for name in csvs:
        assert (first.root / name).read_bytes() == (again.root / name).read_bytes()
    assert (first.root / "units.csv").read_bytes() != (other.root / "units.csv").read_bytes()

    def spikes(dataset) -> np.ndarray:
        with session_file(dataset, dataset.session_ids[0]) as f:
            return f["units/spike_times"][()]

    assert np.array_equal(spikes(first), spikes(again))
    assert not np.array_equal(spikes(first), spikes(other))
    session_id, probe_id = first.session_ids[0], first.lfp_probe_ids[first.session_ids[0]][0]
    with lfp_file(first, session_id, probe_id) as a, lfp_file(again, session_id, probe_id) as b:
        (name,) = [n for n in a["acquisition"] if n.endswith("_lfp_data")]
        assert np.array_equal(a[f"acquisition/{name}/data"], b[f"acquisition/{name}/data"])


def test_a_non_empty_folder_is_refused(tmp_path):
    (tmp_path / "something").write_text("keep me")
    with pytest.raises(FileExistsError, match="empty"):
        write_dataset(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["something"]


def test_the_spec_is_a_frozen_value_with_a_stable_repr():
    spec = SyntheticSpec.small()
    assert spec == SyntheticSpec() == SyntheticSpec.quick()
    assert repr(spec) == repr(SyntheticSpec.small())
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.sessions = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="too short"):
        SyntheticSpec(duration=20.0)


def test_the_benchmark_spec_has_real_file_shapes():
    spec = SyntheticSpec.benchmark()
    catalog = build_catalog(spec, seed=0)
    (session,) = catalog.sessions
    lfp_probe = session.probes[0]
    n_samples = int(spec.duration * lfp_probe.lfp_rate)
    assert len(lfp_probe.lfp_local_indices) == 95
    assert n_samples >= 1_450_000
    assert n_samples * 95 * 4 >= 300e6
    units = catalog.units_of(session)
    assert len(units) >= 800
    assert catalog.spike_counts.loc[units.index].sum() >= 20_000_000


@pytest.mark.benchmark
def test_the_benchmark_dataset_writes(tmp_path):
    dataset = write_dataset(tmp_path / "benchmark", spec=SyntheticSpec.benchmark())
    total = sum((dataset.root / name).stat().st_size for name in dataset.files)
    assert total >= 500e6
    session_id = dataset.session_ids[0]
    with session_file(dataset, session_id) as f:
        assert len(f["units/id"]) >= 800 and len(f["units/spike_times"]) >= 20_000_000
    with lfp_file(dataset, session_id, dataset.lfp_probe_ids[session_id][0]) as f:
        (name,) = [n for n in f["acquisition"] if n.endswith("_lfp_data")]
        assert f[f"acquisition/{name}/data"].shape[1] == 95
