"""Stimulus presentations, conditions, epochs and invalid intervals, as AllenSDK 2.16.2 has them.

The tables are built by hand the way ``read_table`` returns ``intervals/*_presentations``: indexed
by ``id``, text as ``str``, unused parameters as ``""`` or NaN, a ragged ``tags`` column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from s3ecephys.allen import stimuli


def tags(*rows: list[str]) -> list[np.ndarray]:
    return [np.array(row, dtype=object) for row in rows]


def interval_table(**columns) -> pd.DataFrame:
    n = len(columns["start_time"])
    columns.setdefault("tags", tags(*[["stimulus_time_interval"]] * n))
    return pd.DataFrame(columns, index=pd.Index(np.arange(n) + 100, name="id"))


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    """Two gratings, a blank, two flashes (one with an RGB colour), out of time order."""
    return {
        "flashes_presentations": interval_table(
            start_time=[3.0, 4.0],
            stop_time=[3.5, 4.5],
            stimulus_name=["flashes", "flashes"],
            stimulus_block=[2.0, 2.0],
            stimulus_index=[2, 2],
            color=["-1.0", "[1.0, 1.0, 1.0]"],
            opacity=[1.0, 1.0],
        ),
        "drifting_gratings_presentations": interval_table(
            start_time=[0.0, 1.0],
            stop_time=[1.0, 2.0],
            stimulus_name=["drifting_gratings", "drifting_gratings"],
            stimulus_block=[0.0, 0.0],
            stimulus_index=[0, 0],
            orientation=[0.0, 90.0],
            size=["[250.0, 250.0]", "[250.0, 250.0]"],
            phase=["", "N/A"],
        ),
        "spontaneous_presentations": interval_table(
            start_time=[2.0],
            stop_time=[3.0],
            stimulus_name=[""],
            stimulus_block=[np.nan],
            stimulus_index=[1],
        ),
    }


@pytest.fixture
def built(tables):
    return stimuli.build_stimulus_presentations(tables, None)


def test_presentations_are_concatenated_in_time_order_and_renumbered(built):
    presentations, _ = built
    assert presentations.index.name == "stimulus_presentation_id"
    assert list(presentations.index) == [0, 1, 2, 3, 4]
    assert list(presentations["start_time"]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert list(presentations["stimulus_name"]) == [
        "drifting_gratings",
        "drifting_gratings",
        "spontaneous",  # the blank's empty name
        "flashes",
        "flashes",
    ]
    assert list(presentations["duration"]) == [1.0, 1.0, 1.0, 0.5, 0.5]


def test_columns_lead_with_block_and_times_and_end_with_duration_and_condition(built):
    presentations, _ = built
    columns = list(presentations.columns)
    assert columns[:3] == ["stimulus_block", "start_time", "stop_time"]
    assert columns[-2:] == ["duration", "stimulus_condition_id"]
    assert "stimulus_index" not in columns and "tags" not in columns
    assert "color_triplet" in columns


def test_unused_parameters_read_null(built):
    presentations, _ = built
    # NaN, "" and "N/A" all become "null"; numbers elsewhere in the column stay numbers.
    assert list(presentations["orientation"]) == [0.0, 90.0, "null", "null", "null"]
    assert list(presentations["phase"]) == ["null"] * 5
    assert presentations.loc[2, "stimulus_block"] == "null"
    assert presentations["orientation"].dtype == object


def test_color_is_split_into_a_number_and_a_triplet(built):
    presentations, _ = built
    assert list(presentations["color"]) == ["null", "null", "null", -1.0, "null"]
    assert list(presentations["color_triplet"]) == [
        "null",
        "null",
        "null",
        "null",
        "[1.0, 1.0, 1.0]",
    ]


def test_a_float_column_of_ones_becomes_a_flag(built):
    # AllenSDK reads float columns holding only 0/1/NaN as booleans.
    presentations, _ = built
    assert list(presentations["opacity"]) == ["null", "null", "null", True, True]


def test_text_parameters_stay_text(built):
    presentations, _ = built
    assert presentations.loc[0, "size"] == "[250.0, 250.0]"


def test_conditions_are_numbered_in_order_of_first_appearance(built):
    presentations, conditions = built
    assert list(presentations["stimulus_condition_id"]) == [0, 1, 2, 3, 4]
    assert conditions.index.name == "stimulus_condition_id"
    assert list(conditions.index) == [0, 1, 2, 3, 4]
    assert "start_time" not in conditions and "stimulus_block" not in conditions
    assert list(conditions["stimulus_name"])[:2] == ["drifting_gratings", "drifting_gratings"]


def test_repeated_parameters_share_a_condition():
    table = interval_table(
        start_time=[0.0, 1.0, 2.0, 3.0],
        stop_time=[1.0, 2.0, 3.0, 4.0],
        stimulus_name=["static_gratings"] * 4,
        stimulus_block=[0.0, 0.0, 1.0, 1.0],
        stimulus_index=[0] * 4,
        orientation=[30.0, 60.0, 30.0, np.nan],
    )
    presentations, conditions = stimuli.build_stimulus_presentations({"s": table}, None)
    # The block does not take part: presentations 0 and 2 are one condition.
    assert list(presentations["stimulus_condition_id"]) == [0, 1, 0, 2]
    assert list(conditions["orientation"]) == [30.0, 60.0, "null"]


def test_renames_stimuli_and_capitalised_parameters():
    table = interval_table(
        start_time=[0.0, 1.0],
        stop_time=[1.0, 2.0],
        stimulus_name=["natural_movie_3", np.nan],
        stimulus_block=[0.0, 1.0],
        stimulus_index=[0, 1],
        TF=[1.0, np.nan],
        Ori=[45.0, np.nan],
    )
    presentations, _ = stimuli.build_stimulus_presentations({"m": table}, None)
    assert list(presentations["stimulus_name"]) == ["natural_movie_three", "spontaneous"]
    assert {"temporal_frequency", "orientation"} <= set(presentations.columns)


def test_shuffled_movie_takes_the_sessions_movie_number():
    table = interval_table(
        start_time=[0.0, 1.0],
        stop_time=[1.0, 2.0],
        stimulus_name=["natural_movie_four", "natural_movie_shuffled"],
        stimulus_block=[0.0, 1.0],
        stimulus_index=[0, 1],
    )
    presentations, _ = stimuli.build_stimulus_presentations({"m": table}, None)
    assert list(presentations["stimulus_name"]) == [
        "natural_movie_four",
        "natural_movie_four_shuffled",
    ]


def test_no_tables_give_empty_tables():
    presentations, conditions = stimuli.build_stimulus_presentations({}, None)
    assert presentations.empty and conditions.empty
    assert {"start_time", "stop_time", "stimulus_condition_id"} <= set(presentations.columns)


# -- invalid intervals -------------------------------------------------------------------------


@pytest.fixture
def invalid_times() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "start_time": [0.3, 1.1, 3.5],
            "stop_time": [0.6, 1.54, 3.6],
            "tags": tags(
                ["EcephysSession", "739448407", "stimulus"],
                ["probe", "810755797", "probeA"],
                ["all_probes", "", "stimulus"],
            ),
        },
        index=pd.Index([0, 1, 2], name="id"),
    )


def test_presentations_touching_a_stimulus_interval_are_invalid(tables, invalid_times):
    presentations, conditions = stimuli.build_stimulus_presentations(tables, invalid_times)
    # [0.3, 0.6] overlaps presentation 0; [3.5, 3.6] touches presentation 3 at its stop time;
    # the probeA interval is not about stimuli.
    assert list(presentations["stimulus_name"]) == [
        "invalid_presentation",
        "drifting_gratings",
        "spontaneous",
        "invalid_presentation",
        "flashes",
    ]
    invalid = presentations.loc[0]
    assert (invalid["start_time"], invalid["stop_time"]) == (0.0, 1.0)
    assert np.isnan(invalid["orientation"]) and np.isnan(invalid["duration"])
    assert np.isnan(invalid["stimulus_condition_id"]) and np.isnan(invalid["stimulus_block"])
    assert presentations["stimulus_condition_id"].dtype == np.float64
    # Conditions are counted before masking.
    assert len(conditions) == 5


def test_invalid_sample_mask_includes_both_ends(invalid_times):
    times = np.array([0.2, 0.3, 1.1, 1.3, 1.54, 1.6, 3.5, 3.6, 3.7])
    mask = stimuli.invalid_sample_mask(times, invalid_times, ["all_probes", "probeA"])
    assert mask.tolist() == [False, False, True, True, True, False, True, True, False]
    assert not stimuli.invalid_sample_mask(times, invalid_times, ["probeB"]).any()


def test_invalid_sample_mask_without_intervals():
    times = np.linspace(0, 1, 5)
    assert not stimuli.invalid_sample_mask(times, None, ["all_probes"]).any()
    empty = pd.DataFrame(columns=["start_time", "stop_time", "tags"])
    assert not stimuli.invalid_sample_mask(times, empty, ["all_probes"]).any()


def test_filter_invalid_times_by_tags(invalid_times):
    assert list(stimuli.filter_invalid_times_by_tags(invalid_times, ["stimulus"]).index) == [0, 2]
    assert stimuli.filter_invalid_times_by_tags(invalid_times, ["nothing"]).empty


# -- queries (AllenSDK's own test table, in our words) -----------------------------------------


@pytest.fixture
def allen_table() -> pd.DataFrame:
    """Three presentations of ``a`` and one of ``a_movie``, half a second each."""
    return interval_table(
        start_time=np.arange(4) / 2,
        stop_time=np.arange(1, 5) / 2,
        stimulus_name=["a", "a", "a", "a_movie"],
        stimulus_block=[0, 0, 0, 1],
        TF=np.full(4, np.nan),
        SF=np.full(4, np.nan),
        Ori=np.full(4, np.nan),
        Contrast=np.full(4, np.nan),
        Pos_x=np.full(4, np.nan),
        Pos_y=np.full(4, np.nan),
        stimulus_index=[0, 0, 1, 1],
        Color=np.arange(4) * 5.5,
        Image=np.full(4, np.nan),
        Phase=np.linspace(0, 180, 4),
        texRes=np.full(4, 2.0),
    )


@pytest.fixture
def allen_presentations(allen_table) -> pd.DataFrame:
    return stimuli.build_stimulus_presentations({"a_presentations": allen_table}, None)[0]


def test_public_columns(allen_presentations):
    public = stimuli.remove_detailed_stimulus_parameters(allen_presentations)
    assert set(public.columns) == {
        "start_time",
        "stop_time",
        "stimulus_name",
        "stimulus_block",
        "temporal_frequency",
        "spatial_frequency",
        "orientation",
        "contrast",
        "x_position",
        "y_position",
        "color",
        "frame",
        "phase",
        "duration",
        "stimulus_condition_id",
    }


@pytest.mark.parametrize("detailed", [True, False])
def test_stimulus_table_keeps_used_columns(allen_presentations, detailed):
    table = stimuli.get_stimulus_table(
        allen_presentations, ["a"], include_detailed_parameters=detailed
    )
    expected = {
        "stimulus_block",
        "start_time",
        "stop_time",
        "stimulus_name",
        "color",
        "phase",
        "duration",
        "stimulus_condition_id",
    }
    assert set(table.columns) == expected | ({"texRes"} if detailed else set())
    assert list(table.index) == [0, 1, 2]
    assert list(table["stimulus_condition_id"]) == [0, 1, 2]


def test_stimulus_table_accepts_one_name_and_unused_columns(allen_presentations):
    table = stimuli.get_stimulus_table(
        allen_presentations, "a_movie", include_unused_parameters=True
    )
    assert list(table.index) == [3]
    assert "orientation" in table.columns


def test_stimulus_epochs(allen_presentations):
    epochs = stimuli.get_stimulus_epochs(allen_presentations)
    expected = pd.DataFrame(
        {
            "start_time": [0.0, 1.5],
            "stop_time": [1.5, 2.0],
            "duration": [1.5, 0.5],
            "stimulus_name": ["a", "a_movie"],
            "stimulus_block": [0, 1],
        }
    )
    pd.testing.assert_frame_equal(epochs, expected, check_dtype=False)


def test_epochs_split_at_null_blocks_and_drop_short_named_ones(built):
    presentations, _ = built
    epochs = stimuli.get_stimulus_epochs(presentations, {"spontaneous": 2.0})
    # drifting gratings (block 0), spontaneous ("null" block, 1 s, dropped), flashes (block 2)
    assert list(epochs["stimulus_name"]) == ["drifting_gratings", "flashes"]
    assert list(epochs.index) == [0, 2]
    assert list(epochs["duration"]) == [2.0, 1.5]


def test_parameter_values(allen_presentations):
    values = stimuli.get_stimulus_parameter_values(allen_presentations)
    assert set(values) == {"color", "phase"}
    np.testing.assert_allclose(values["color"], [0, 5.5, 11, 16.5])
    np.testing.assert_allclose(values["phase"], [0, 60, 120, 180])


def test_parameter_values_keep_order_and_optionally_null(built):
    presentations, _ = built
    values = stimuli.get_stimulus_parameter_values(presentations)
    assert list(values["orientation"]) == [0.0, 90.0]
    assert "opacity" not in values  # a detailed parameter
    with_nulls = stimuli.get_stimulus_parameter_values(presentations, drop_nulls=False)
    assert list(with_nulls["orientation"]) == [0.0, 90.0, "null"]
    only_flashes = stimuli.get_stimulus_parameter_values(presentations, [3, 4])
    assert list(only_flashes) == ["color"]
    assert list(only_flashes["color"]) == [-1.0]
