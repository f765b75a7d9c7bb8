"""Every public name of AllenSDK 2.16.2's session, with its signature, and the calls that were
missing until issue 14 (``get_parameter_values_for_stimulus``, ``channel_structure_intervals``,
``DETAILED_STIMULUS_PARAMETERS``, ``from_nwb_path``'s ``nwb_version``), on the synthetic dataset
served by the local S3."""

from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd
import pytest

from s3ecephys import EcephysProjectCache, EcephysSession

# What AllenSDK's tutorial prints for
# ``[a for a in dir(session) if a[0] != '_']``: the output of cell 27 of
# doc_template/examples_root/examples/nb/ecephys_data_access.ipynb in AllenSDK v2.16.2.
TUTORIAL_DIR_SESSION = [
    'DETAILED_STIMULUS_PARAMETERS', 'LazyProperty', 'age_in_days', 'api',
    'channel_structure_intervals', 'channels', 'conditionwise_spike_statistics',
    'ecephys_session_id', 'from_nwb_path', 'full_genotype', 'get_current_source_density',
    'get_inter_presentation_intervals_for_stimulus', 'get_invalid_times', 'get_lfp',
    'get_parameter_values_for_stimulus', 'get_pupil_data', 'get_screen_gaze_data',
    'get_stimulus_epochs', 'get_stimulus_parameter_values', 'get_stimulus_table',
    'inter_presentation_intervals', 'invalid_times', 'mean_waveforms', 'metadata',
    'num_channels', 'num_probes', 'num_stimulus_presentations', 'num_units',
    'optogenetic_stimulation_epochs', 'presentationwise_spike_counts',
    'presentationwise_spike_times', 'probes', 'rig_equipment_name', 'rig_geometry_data',
    'running_speed', 'session_start_time', 'session_type', 'sex', 'specimen_name',
    'spike_amplitudes', 'spike_times', 'stimulus_conditions', 'stimulus_names',
    'stimulus_presentations', 'structure_acronyms', 'structurewise_unit_counts', 'units',
]
_ = inspect.Parameter.empty
# The parameters (name, default) of the session's methods in
# allensdk/brain_observatory/ecephys/ecephys_session.py, v2.16.2.
ALLENSDK_SIGNATURES = {
    "channel_structure_intervals": [("channel_ids", _)],
    "conditionwise_spike_statistics": [
        ("stimulus_presentation_ids", None), ("unit_ids", None), ("use_rates", False),
    ],
    "get_current_source_density": [("probe_id", _)],
    "get_inter_presentation_intervals_for_stimulus": [("stimulus_names", _)],
    "get_invalid_times": [],
    "get_lfp": [("probe_id", _), ("mask_invalid_intervals", True)],
    "get_parameter_values_for_stimulus": [("stimulus_name", _), ("drop_nulls", True)],
    "get_pupil_data": [],
    "get_screen_gaze_data": [("include_filtered_data", False)],
    "get_stimulus_epochs": [("duration_thresholds", None)],
    "get_stimulus_parameter_values": [("stimulus_presentation_ids", None), ("drop_nulls", True)],
    "get_stimulus_table": [
        ("stimulus_names", None), ("include_detailed_parameters", False),
        ("include_unused_parameters", False),
    ],
    "presentationwise_spike_counts": [
        ("bin_edges", _), ("stimulus_presentation_ids", _), ("unit_ids", _), ("binarize", False),
        ("dtype", None), ("large_bin_size_threshold", 0.001), ("time_domain_callback", None),
    ],
    "presentationwise_spike_times": [("stimulus_presentation_ids", None), ("unit_ids", None)],
    # Its ``**kwargs`` aside; s3ecephys adds keyword-only options after these.
    "from_nwb_path": [("path", _), ("nwb_version", 2), ("api_kwargs", None)],
}
# ``EcephysNwbSessionApi`` (and its bases) of v2.16.2: the readers users call on ``session.api``.
ALLENSDK_API_SIGNATURES = {
    "get_channels": [], "get_current_source_density": [("probe_id", _)],
    "get_ecephys_session_id": [], "get_invalid_times": [], "get_lfp": [("probe_id", _)],
    "get_mean_waveforms": [], "get_metadata": [], "get_optogenetic_stimulation": [],
    "get_probes": [], "get_pupil_data": [], "get_raw_running_data": [],
    "get_rig_metadata": [], "get_running_speed": [("include_rotation", False)],
    "get_screen_gaze_data": [("include_filtered_data", False)], "get_session_start_time": [],
    "get_spike_amplitudes": [], "get_spike_times": [], "get_stimulus_presentations": [],
    "get_units": [], "test": [],
}
# The class attribute of v2.16.2, in its order.
ALLENSDK_DETAILED_STIMULUS_PARAMETERS = (
    "colorSpace", "flipHoriz", "flipVert", "depth", "interpolate", "mask", "opacity",
    "rgbPedestal", "tex", "texRes", "units", "rgb", "signalDots", "noiseDots", "fieldSize",
    "fieldShape", "fieldPos", "nDots", "dotSize", "dotLife", "color_triplet",
)
NON_PARAMETERS = ["start_time", "stop_time", "duration", "stimulus_block",
                  "stimulus_condition_id", "stimulus_name"]


def _leading_parameters(function, count: int) -> list[tuple[str, object]]:
    parameters = list(inspect.signature(function).parameters.values())[:count]
    return [(p.name, p.default) for p in parameters]


@pytest.fixture(scope="module")
def cache(project_cache) -> EcephysProjectCache:
    return project_cache


@pytest.fixture(scope="module")
def session(cache, synthetic_dataset) -> EcephysSession:
    return cache.get_session_data(int(synthetic_dataset.session_ids[0]))


# -- names and signatures ----------------------------------------------------------------------


def test_the_session_has_the_public_names_of_the_tutorials_dir(session):
    public = {name for name in dir(session) if not name.startswith("_")}
    assert public == set(TUTORIAL_DIR_SESSION)
    assert {name for name in dir(EcephysSession) if not name.startswith("_")} == public


def test_lazy_properties_ask_the_api_once_per_session(cache, synthetic_dataset, monkeypatch):
    calls = []
    session = cache.get_session_data(int(synthetic_dataset.session_ids[0]))
    reader = session.api.get_running_speed
    monkeypatch.setattr(session.api, "get_running_speed", lambda: calls.append(1) or reader())
    first = session.running_speed
    assert session.running_speed is first
    assert calls == [1]
    assert isinstance(EcephysSession.running_speed, EcephysSession.LazyProperty)


def test_a_lazy_property_applies_its_wrappers_and_arguments():
    class Api:
        def get_values(self, scale):
            return [1, 2, 3] if scale == 1 else [scale]

    class Holder:
        api = Api()
        values = EcephysSession.LazyProperty("get_values", (sum, str), False, 1)
        scale = EcephysSession.LazyProperty("get_values", (), True, 5)

    holder = Holder()
    assert holder.values == "6"
    with pytest.raises(AttributeError, match="cannot be set"):
        holder.values = "7"
    holder.scale = [2]
    assert (holder.values, holder.scale) == ("6", [2])


@pytest.mark.parametrize("name", sorted(ALLENSDK_SIGNATURES))
def test_methods_take_allensdks_parameters(name):
    expected = ALLENSDK_SIGNATURES[name]
    method = getattr(EcephysSession, name)
    if not isinstance(inspect.getattr_static(EcephysSession, name), classmethod):
        expected = [("self", _), *expected]
    assert _leading_parameters(method, len(expected)) == expected
    positional = [
        p for p in inspect.signature(method).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    assert len(positional) == len(expected), "no extra positional parameter"


@pytest.mark.parametrize("name", sorted(ALLENSDK_API_SIGNATURES))
def test_the_api_has_allensdks_readers(session, name):
    expected = ALLENSDK_API_SIGNATURES[name]
    assert _leading_parameters(getattr(session.api, name), len(expected) + 1) == expected


def test_detailed_stimulus_parameters_are_allensdks_and_hidden(session):
    assert EcephysSession.DETAILED_STIMULUS_PARAMETERS == ALLENSDK_DETAILED_STIMULUS_PARAMETERS
    hidden = set(ALLENSDK_DETAILED_STIMULUS_PARAMETERS)
    assert not hidden & set(session.stimulus_presentations.columns)
    detailed = session.get_stimulus_table(
        include_detailed_parameters=True, include_unused_parameters=True
    )
    assert hidden & set(detailed.columns), "the synthetic files carry some detailed parameters"


# -- get_parameter_values_for_stimulus ---------------------------------------------------------


def test_parameter_values_for_a_stimulus_are_its_presentations_values(session):
    for name in session.stimulus_names:
        table = session.get_stimulus_table([name])
        parameters = table.drop(columns=NON_PARAMETERS, errors="ignore")
        values = session.get_parameter_values_for_stimulus(name)
        with_nulls = session.get_parameter_values_for_stimulus(name, drop_nulls=False)
        assert list(values) == list(parameters.columns) == list(with_nulls)
        for column, found in values.items():
            stored = list(pd.unique(parameters[column].to_numpy(dtype=object)))
            present = [v for v in stored if not (isinstance(v, str) and v == "null")]
            assert list(found) == present, (name, column)
            has_null = len(present) < len(stored)
            assert list(with_nulls[column]) == present + (["null"] if has_null else [])
        ids = table.index.to_numpy()
        assert values.keys() == session.get_stimulus_parameter_values(ids).keys()


def test_an_unknown_stimulus_has_no_parameter_values_and_warns(session):
    with pytest.warns(UserWarning, match="no presentation of 'no_such_stimulus'"):
        assert session.get_parameter_values_for_stimulus("no_such_stimulus") == {}


# -- channel_structure_intervals ---------------------------------------------------------------


def _runs(values: list) -> list[int]:
    """Where runs of equal values start (NaN equal to NaN), then the length."""
    starts = [
        i for i, v in enumerate(values)
        if i == 0 or not (v == values[i - 1] or (pd.isna(v) and pd.isna(values[i - 1])))
    ]
    return [*starts, len(values)]


def test_channel_structure_intervals_are_runs_of_one_structure(session):
    channels = session.channels
    probe_id = channels["probe_id"].iloc[0]
    on_probe = channels[channels["probe_id"] == probe_id].sort_values("probe_vertical_position")
    ids = list(on_probe.index)
    labels, intervals = session.channel_structure_intervals(ids)
    expected = _runs(list(on_probe["ecephys_structure_id"]))
    assert list(intervals) == expected and len(expected) > 2, "several structures on a probe"
    assert list(labels) == list(on_probe["ecephys_structure_acronym"].iloc[expected[:-1]])
    # Within a run one structure, between runs a change.
    for start, stop in zip(intervals[:-1], intervals[1:], strict=True):
        assert on_probe["ecephys_structure_acronym"].iloc[start:stop].nunique(dropna=False) == 1


def test_channel_structure_intervals_warn_across_probes_and_name_unknown_ids(session):
    channels = session.channels
    ids = [channels.index[0], channels.index[-1]]
    assert channels.loc[ids, "probe_id"].nunique() == 2
    with pytest.warns(UserWarning, match="multiple probes"):
        session.channel_structure_intervals(ids)
    with pytest.raises(KeyError, match="not among this session's channels"):
        session.channel_structure_intervals([channels.index[0], -1])


def test_without_channels_csv_intervals_use_the_files_acronyms(synthetic_dataset, tmp_path):
    session_id = int(synthetic_dataset.session_ids[0])
    path = Path(synthetic_dataset.root) / f"session_{session_id}" / f"session_{session_id}.nwb"
    single = EcephysSession.from_nwb_path(path, cache_dir=tmp_path)
    channels = single.channels
    ids = list(channels.index[channels["probe_id"] == channels["probe_id"].iloc[0]])
    labels, intervals = single.channel_structure_intervals(ids)
    acronyms = list(channels.loc[ids, "structure_acronym"])
    assert list(intervals) == _runs(acronyms)
    assert list(labels) == [acronyms[i] for i in intervals[:-1]]


# -- from_nwb_path -----------------------------------------------------------------------------


def test_from_nwb_path_takes_allensdks_nwb_version_and_test(synthetic_dataset, tmp_path):
    session_id = int(synthetic_dataset.session_ids[0])
    path = Path(synthetic_dataset.root) / f"session_{session_id}" / f"session_{session_id}.nwb"
    session = EcephysSession.from_nwb_path(path, 2, {"filter_by_validity": False}, test=True,
                                           cache_dir=tmp_path)
    assert session.ecephys_session_id == session_id
    assert "quality" in session.units
    with pytest.raises(ValueError, match="nwb_version 1"):
        EcephysSession.from_nwb_path(path, nwb_version=1, cache_dir=tmp_path)

