"""Layout variants a session reader must accept (ALLEN_LAYOUT.md §5, §8), on copies of synthetic
files edited with h5py: units on invalid or out-of-brain channels, ``'None'`` locations,
substructure acronyms, ``probe_channel_number`` instead of ``local_index``, an LFP file without
the soft link, ragged indexes of any integer width."""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from pathlib import Path

import h5py
import numpy as np
import pytest

from s3ecephys import EcephysSession
from s3ecephys.synthetic.nwb_versions import rewrite_index

ELECTRODES = "general/extracellular_ephys/electrodes"
NO_BOUNDS = {
    "amplitude_cutoff_maximum": None,
    "presence_ratio_minimum": None,
    "isi_violations_maximum": None,
}


@pytest.fixture(scope="module")
def session_folder(synthetic_dataset) -> Path:
    session_id = synthetic_dataset.session_ids[0]
    return Path(synthetic_dataset.root) / f"session_{session_id}"


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / folder.name
    shutil.copytree(folder, target)
    return target / f"{folder.name}.nwb"


def _good_units_peak_rows(f: h5py.File) -> list[tuple[int, int]]:
    """(unit id, electrode row of its peak channel) of good units with all three metrics, one
    per distinct channel."""
    units, electrodes = f["units"], f[ELECTRODES]
    rows = {int(c): i for i, c in enumerate(electrodes["id"][()])}
    metrics = np.column_stack(
        [units[n][()] for n in ("amplitude_cutoff", "presence_ratio", "isi_violations")]
    )
    chosen, seen = [], set()
    for unit_id, quality, peak, finite in zip(
        units["id"][()],
        units["quality"][()],
        units["peak_channel_id"][()],
        np.isfinite(metrics).all(axis=1),
        strict=True,
    ):
        if quality in (b"good", "good") and finite and int(peak) not in seen:
            seen.add(int(peak))
            chosen.append((int(unit_id), rows[int(peak)]))
    return chosen


def test_units_on_invalid_or_unlabelled_channels_follow_the_filters(session_folder, tmp_path):
    path = _copy(session_folder, tmp_path)
    with h5py.File(path, "r+") as f:
        (invalid_unit, invalid_row), (none_unit, none_row), (empty_unit, empty_row), (
            sub_unit,
            sub_row,
        ) = _good_units_peak_rows(f)[:4]
        electrodes = f[ELECTRODES]
        electrodes["valid_data"][invalid_row] = False
        electrodes["location"][none_row] = "None"
        electrodes["location"][empty_row] = ""
        electrodes["location"][sub_row] = "LGd-sh"
        sub_channel = int(electrodes["id"][sub_row])

    def units(**kwargs) -> set[int]:
        session = EcephysSession.from_nwb_path(path, cache_dir=tmp_path / "idx", **kwargs)
        return set(session.units.index)

    default = units(**NO_BOUNDS)
    assert not {invalid_unit, none_unit, empty_unit} & default
    assert sub_unit in default
    # Validity off: the unit on the invalid channel is back, not those out of the brain.
    no_validity = units(filter_by_validity=False, **NO_BOUNDS)
    assert invalid_unit in no_validity and not {none_unit, empty_unit} & no_validity
    everything = units(
        filter_by_validity=False, filter_out_of_brain_units=False, **NO_BOUNDS
    )
    assert {invalid_unit, none_unit, empty_unit, sub_unit} <= everything

    session = EcephysSession.from_nwb_path(path, cache_dir=tmp_path / "idx")
    assert session.channels.loc[sub_channel, "structure_acronym"] == "LGd"


def test_probe_channel_number_reads_as_local_index(session_folder, tmp_path):
    original = EcephysSession.from_nwb_path(
        session_folder / f"{session_folder.name}.nwb", cache_dir=tmp_path / "idx"
    )
    path = _copy(session_folder, tmp_path)
    with h5py.File(path, "r+") as f:
        electrodes = f[ELECTRODES]
        electrodes.move("local_index", "probe_channel_number")
        names = [n.decode() if isinstance(n, bytes) else n for n in electrodes.attrs["colnames"]]
        electrodes.attrs["colnames"] = [
            "probe_channel_number" if n == "local_index" else n for n in names
        ]
    renamed = EcephysSession.from_nwb_path(path, cache_dir=tmp_path / "idx")
    assert renamed.channels.equals(original.channels)
    unit_id = original.units.index[0]
    assert renamed.mean_waveforms[unit_id].identical(original.mean_waveforms[unit_id])


@pytest.mark.parametrize("dtype", ["smallest unsigned", np.uint64, np.int32])
def test_ragged_indexes_of_any_integer_width_read_alike(session_folder, dtype, tmp_path):
    original = EcephysSession.from_nwb_path(
        session_folder / f"{session_folder.name}.nwb", cache_dir=tmp_path / "idx"
    )
    path = _copy(session_folder, tmp_path)
    with h5py.File(path, "r+") as f:
        assert f["units/spike_times_index"].dtype == np.int64
        for name in ("spike_times_index", "spike_amplitudes_index", "waveform_mean_index"):
            ends = f[f"units/{name}"]
            width = np.min_scalar_type(ends[-1]) if dtype == "smallest unsigned" else dtype
            rewrite_index(f, ends.name, width)
            assert f[f"units/{name}"].dtype == width
    edited = EcephysSession.from_nwb_path(path, cache_dir=tmp_path / "idx")

    def spike_times(session: EcephysSession):
        # Spikes inside invalid intervals warn, as in AllenSDK.
        with pytest.warns(UserWarning) if len(session.invalid_times) else nullcontext():
            return session.spike_times

    theirs, ours = spike_times(original), spike_times(edited)
    assert list(ours) == list(theirs)
    for unit_id in list(theirs)[:5]:
        np.testing.assert_array_equal(ours[unit_id], theirs[unit_id])
        np.testing.assert_array_equal(
            edited.spike_amplitudes[unit_id], original.spike_amplitudes[unit_id]
        )
        assert edited.mean_waveforms[unit_id].identical(original.mean_waveforms[unit_id])


def test_an_lfp_file_without_the_soft_link_reads_the_same(synthetic_dataset, tmp_path):
    session_id = synthetic_dataset.session_ids[0]
    probe_id = synthetic_dataset.lfp_probe_ids[session_id][0]
    folder = Path(synthetic_dataset.root) / f"session_{session_id}"
    path = _copy(folder, tmp_path)
    with h5py.File(path.parent / f"probe_{probe_id}_lfp.nwb", "r+") as f:
        assert isinstance(
            f["acquisition"].get(f"probe_{probe_id}_lfp_data", getlink=True), h5py.SoftLink
        )
        del f[f"acquisition/probe_{probe_id}_lfp_data"]
    edited = EcephysSession.from_nwb_path(path, cache_dir=tmp_path / "idx")
    original = EcephysSession.from_nwb_path(
        folder / f"session_{session_id}.nwb", cache_dir=tmp_path / "idx"
    )
    window = {"time": slice(20.0, 20.5)}
    assert edited.get_lfp(probe_id).sel(window).compute().identical(
        original.get_lfp(probe_id).sel(window).compute()
    )

