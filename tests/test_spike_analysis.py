"""Spike counts, spike times and conditionwise statistics around presentations (AllenSDK 2.16.2).

Every expected value here can be checked by hand from the small tables below.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from s3ecephys.allen import spike_analysis


def presentations_table(starts, stops, conditions=None, ids=None) -> pd.DataFrame:
    starts = np.asarray(starts, dtype=float)
    stops = np.asarray(stops, dtype=float)
    ids = np.arange(len(starts)) if ids is None else ids
    conditions = np.arange(len(starts)) if conditions is None else conditions
    return pd.DataFrame(
        {
            "start_time": starts,
            "stop_time": stops,
            "duration": stops - starts,
            "stimulus_condition_id": conditions,
        },
        index=pd.Index(ids, name="stimulus_presentation_id"),
    )


@pytest.fixture
def presentations() -> pd.DataFrame:
    """AllenSDK's test table: four back-to-back half-second presentations from t = 0."""
    return presentations_table(np.arange(4) / 2, np.arange(1, 5) / 2)


@pytest.fixture
def spikes() -> dict[int, np.ndarray]:
    return {0: np.array([5.0, 6.0, 7.0, 8.0]), 1: np.array([2.5]), 2: np.array([1.01, 1.02, 1.03])}


class PrefetchingSpikes(dict):
    """A spike mapping that records the ``prefetch`` calls made on it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.prefetched: list[list[int]] = []

    def prefetch(self, unit_ids):
        self.prefetched.append(list(unit_ids))


# -- structurewise unit counts -----------------------------------------------------------------


def test_structurewise_unit_counts():
    units = pd.DataFrame({"ecephys_structure_acronym": ["VISp", "CA1", "VISp", None]})
    counts = spike_analysis.structurewise_unit_counts(units)
    assert counts.to_dict() == {"VISp": 2, "CA1": 1}
    assert list(counts.index) == ["VISp", "CA1"]
    assert counts.name == "ecephys_structure_acronym" and counts.index.name is None


# -- presentationwise spike counts -------------------------------------------------------------


def test_counts_around_onsets(presentations, spikes):
    counts = spike_analysis.presentationwise_spike_counts(
        spikes, presentations, np.linspace(-0.1, 0.1, 3), [2, 1, 0]
    )
    assert counts.name == "spike_counts"
    assert counts.dims == (
        "stimulus_presentation_id",
        "time_relative_to_stimulus_onset",
        "unit_id",
    )
    assert counts.shape == (4, 2, 3) and counts.dtype == np.uint16
    np.testing.assert_allclose(counts["time_relative_to_stimulus_onset"], [-0.05, 0.05])
    assert list(counts["unit_id"]) == [2, 1, 0]
    assert counts.sel(unit_id=2, stimulus_presentation_id=2).values.tolist() == [0, 3]
    assert counts.sel(unit_id=1, stimulus_presentation_id=3).values.tolist() == [0, 0]
    assert int(counts.sum()) == 3


def test_a_spike_on_an_inner_edge_counts_in_both_bins():
    table = presentations_table([10.0], [11.0])
    spikes = {7: np.array([10.0, 10.25, 10.5, 10.75, 11.0])}
    counts = spike_analysis.presentationwise_spike_counts(spikes, table, [0.0, 0.5, 1.0], [7])
    # [10, 10.5] holds 10, 10.25, 10.5; [10.5, 11] holds 10.5, 10.75, 11.
    assert counts.values[0, :, 0].tolist() == [3, 3]


def test_empty_unit_and_binarize():
    table = presentations_table([0.0, 1.0], [1.0, 2.0])
    spikes = {1: np.array([]), 2: np.array([0.0001, 0.0002, 1.0005])}
    counts = spike_analysis.presentationwise_spike_counts(
        spikes, table, [0.0, 0.001], [1, 2], binarize=True
    )
    assert counts.dtype == np.uint8
    assert counts.values[:, 0, :].tolist() == [[0, 1], [0, 1]]


def test_binarizing_wide_bins_warns(presentations, spikes):
    with pytest.warns(UserWarning, match="binarize"):
        spike_analysis.presentationwise_spike_counts(
            spikes, presentations, [0.0, 0.01], [2], binarize=True
        )


def test_dtype_can_be_chosen(presentations, spikes):
    counts = spike_analysis.presentationwise_spike_counts(
        spikes, presentations, [0.0, 0.5], [2], dtype=np.float32
    )
    assert counts.dtype == np.float32


def test_overlapping_windows_warn_and_count_independently():
    table = presentations_table([0.0, 0.5], [1.0, 1.5])
    spikes = {3: np.array([0.6, 0.7])}
    with pytest.warns(UserWarning, match="overlapping"):
        counts = spike_analysis.presentationwise_spike_counts(spikes, table, [0.0, 1.0], [3])
    assert counts.values[:, 0, 0].tolist() == [2, 2]


def test_time_domain_callback_moves_the_edges(presentations, spikes):
    counts = spike_analysis.presentationwise_spike_counts(
        spikes, presentations, [0.0, 0.02], [2], time_domain_callback=lambda domain: domain + 0.01
    )
    # Presentation 2's window becomes [1.01, 1.03]: all three spikes.
    assert counts.values[:, 0, 0].tolist() == [0, 0, 3, 0]


def test_out_of_order_edges_raise(presentations, spikes):
    with pytest.raises(ValueError, match="out-of-order"):
        spike_analysis.presentationwise_spike_counts(spikes, presentations, [0.0, 0.1, 0.05], [2])


def test_counts_prefetch_once(presentations, spikes):
    mapping = PrefetchingSpikes(spikes)
    spike_analysis.presentationwise_spike_counts(mapping, presentations, [0.0, 0.5], [2, 0])
    assert mapping.prefetched == [[2, 0]]


# -- presentationwise spike times --------------------------------------------------------------


def test_spike_times(presentations, spikes):
    obtained = spike_analysis.presentationwise_spike_times(spikes, presentations, [2, 1, 0])
    expected = pd.DataFrame(
        {
            "stimulus_presentation_id": [2, 2, 2],
            "unit_id": [2, 2, 2],
            "time_since_stimulus_presentation_onset": [0.01, 0.02, 0.03],
        },
        index=pd.Index([1.01, 1.02, 1.03], name="spike_time"),
    )
    pd.testing.assert_frame_equal(obtained, expected)


def test_windows_are_open_at_the_start_and_closed_at_the_stop():
    table = presentations_table([1.0, 3.0], [2.0, 4.0], ids=[10, 11])
    spikes = {5: np.array([1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 4.5])}
    obtained = spike_analysis.presentationwise_spike_times(spikes, table)
    assert list(obtained.index) == [1.5, 2.0, 4.0]
    assert list(obtained["stimulus_presentation_id"]) == [10, 10, 11]
    assert list(obtained["time_since_stimulus_presentation_onset"]) == [0.5, 1.0, 1.0]


def test_spike_times_are_sorted_across_units():
    table = presentations_table([0.0], [10.0])
    spikes = {1: np.array([2.0, 4.0]), 2: np.array([1.0, 3.0]), 3: np.array([])}
    obtained = spike_analysis.presentationwise_spike_times(spikes, table)
    assert list(obtained.index) == [1.0, 2.0, 3.0, 4.0]
    assert list(obtained["unit_id"]) == [2, 1, 2, 1]


def test_no_spikes_give_an_empty_table(presentations):
    obtained = spike_analysis.presentationwise_spike_times(
        {0: np.array([]), 1: np.array([9.0])}, presentations
    )
    assert obtained.empty
    assert list(obtained.columns) == [
        "stimulus_presentation_id",
        "unit_id",
        "time_since_stimulus_presentation_onset",
    ]
    assert obtained.index.name == "spike_time"


def test_overlapping_presentations_claim_each_spike_once():
    table = presentations_table([0.0, 1.0], [2.0, 3.0])
    spikes = {4: np.array([0.5, 1.2, 1.5, 2.5])}
    obtained = spike_analysis.presentationwise_spike_times(spikes, table)
    assert list(obtained.index) == [0.5, 1.2, 1.5, 2.5]
    starts = table.loc[obtained["stimulus_presentation_id"], "start_time"].to_numpy()
    stops = table.loc[obtained["stimulus_presentation_id"], "stop_time"].to_numpy()
    assert ((starts < obtained.index) & (obtained.index <= stops)).all()


def test_spike_times_prefetch_every_unit_once(presentations, spikes):
    mapping = PrefetchingSpikes(spikes)
    spike_analysis.presentationwise_spike_times(mapping, presentations)
    assert mapping.prefetched == [[0, 1, 2]]


# -- conditionwise statistics ------------------------------------------------------------------


def test_statistics_for_spiking_units_only_by_default(presentations, spikes):
    obtained = spike_analysis.conditionwise_spike_statistics(spikes, presentations.loc[[0, 1, 2]])
    # Only unit 2 spikes in presentations 0–2 (AllenSDK leaves silent units out here).
    assert list(obtained.index) == [(2, 0), (2, 1), (2, 2)]
    assert obtained.index.names == ["unit_id", "stimulus_condition_id"]
    assert obtained.loc[(2, 2), "spike_count"] == 3
    assert obtained.loc[(2, 2), "stimulus_presentation_count"] == 1
    assert list(obtained.columns) == [
        "spike_count",
        "stimulus_presentation_count",
        "spike_mean",
        "spike_std",
        "spike_sem",
    ]


def test_statistics_with_rates(presentations, spikes):
    obtained = spike_analysis.conditionwise_spike_statistics(
        spikes, presentations.loc[[0, 1, 2]], use_rates=True
    )
    np.testing.assert_allclose(obtained["spike_mean"], [0, 0, 6])  # 3 spikes in 0.5 s
    assert "spike_count" not in obtained.columns


def test_statistics_without_spikes_cover_every_listed_unit(presentations):
    silent = {0: np.array([]), 1: np.array([]), 2: np.array([])}
    obtained = spike_analysis.conditionwise_spike_statistics(silent, presentations, [0, 1, 2])
    assert len(obtained) == 12
    assert not obtained["spike_count"].any() and not obtained["spike_mean"].any()
    # One presentation per condition: the spread is undefined.
    assert obtained["spike_std"].isna().all() and obtained["spike_sem"].isna().all()


def test_statistics_over_repeated_conditions():
    table = presentations_table(
        [0.0, 1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0, 4.5], conditions=[7, 3, 7, 3, 7]
    )
    spikes = {
        20: np.array([0.5, 0.6, 2.5, 3.5, 3.6, 3.7, 4.2]),
        10: np.array([1.5]),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        counts = spike_analysis.conditionwise_spike_statistics(spikes, table, [20, 10])
    # Ordered by condition, then unit.
    assert list(counts.index) == [(10, 3), (20, 3), (10, 7), (20, 7)]
    unit20_cond7 = counts.loc[(20, 7)]  # counts 2, 1, 1 in presentations 0, 2, 4
    assert unit20_cond7["spike_count"] == 4
    assert unit20_cond7["stimulus_presentation_count"] == 3
    np.testing.assert_allclose(unit20_cond7["spike_mean"], 4 / 3)
    np.testing.assert_allclose(unit20_cond7["spike_std"], np.std([2, 1, 1], ddof=1))
    np.testing.assert_allclose(unit20_cond7["spike_sem"], np.std([2, 1, 1], ddof=1) / np.sqrt(3))
    unit10_cond3 = counts.loc[(10, 3)]  # counts 1, 0 in presentations 1, 3
    assert unit10_cond3["spike_count"] == 1
    np.testing.assert_allclose(unit10_cond3["spike_std"], np.std([1, 0], ddof=1))

    rates = spike_analysis.conditionwise_spike_statistics(spikes, table, [20], use_rates=True)
    # Unit 20 in condition 7: 2 spikes / 1 s, 1 / 1 s, 1 / 0.5 s.
    np.testing.assert_allclose(rates.loc[(20, 7), "spike_mean"], (2 + 1 + 2) / 3)
    np.testing.assert_allclose(rates.loc[(20, 7), "spike_std"], np.std([2, 1, 2], ddof=1))


def test_presentations_without_a_condition_are_left_out():
    table = presentations_table([0.0, 1.0], [1.0, 2.0], conditions=[np.nan, 0.0])
    spikes = {1: np.array([0.5, 1.5])}
    obtained = spike_analysis.conditionwise_spike_statistics(spikes, table)
    assert list(obtained.index) == [(1, 0.0)]
    assert obtained["spike_count"].tolist() == [1]


def test_statistics_with_no_valid_presentation_are_empty():
    table = presentations_table([0.0], [1.0], conditions=[np.nan])
    obtained = spike_analysis.conditionwise_spike_statistics({1: np.array([0.5])}, table)
    assert obtained.empty
    assert obtained.index.names == ["unit_id", "stimulus_condition_id"]
