"""The project tables match what AllenSDK 2.16.2's EcephysProjectCache returns.

The CSV texts below have the real files' column layout. Every expected value is worked out by
hand from them (the comments say how), never by running the code under test.

The little project:

- sessions 20 (functional_connectivity), 10 and 30 (brain_observatory_1.1), in that file order;
  session 30 has no probe.
- probes 101, 102, 103 of session 10 and 201 of session 20, listed interleaved; 102 has no LFP
  data, 103 no channel; probe 999 names a session that does not exist.
- channels of probes 101, 201, 102 listed interleaved; some without a structure (NaN acronym),
  probe 201 unregistered (sentinel coordinates); channel 5001 names a probe that does not exist.
- units exactly at, just past and far from each default bound, one with a NaN metric, one
  ``noise``, one on the orphan channel.
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path
from textwrap import dedent

import numpy as np
import pandas as pd
import pytest

from s3ecephys.allen.filters import (
    UnitFilterBounds,
    quality_metrics_mask,
    resolve_unit_filter_bounds,
)
from s3ecephys.allen.project_tables import ProjectTables
from s3ecephys.allen.tables import (
    prepare_probes,
    prepare_units,
    read_project_csv,
)

SESSIONS_CSV = dedent("""\
    id,date_of_acquisition,isi_experiment_id,published_at,specimen_id,session_type,age_in_days,sex,genotype,has_nwb
    20,2019-01-08T00:00:00Z,9020,2019-10-03T00:00:00Z,5020,functional_connectivity,110.0,F,wt/wt,True
    10,2019-01-01T00:00:00Z,9010,2019-10-03T00:00:00Z,5010,brain_observatory_1.1,100.0,M,Sst-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt,True
    30,2019-01-15T00:00:00Z,9030,2019-10-03T00:00:00Z,5030,brain_observatory_1.1,,M,wt/wt,True
    """)

PROBES_CSV = dedent("""\
    id,air_channel_index,ecephys_session_id,lfp_sampling_rate,lfp_temporal_subsampling_factor,name,phase,sampling_rate,surface_channel_index,has_lfp_data
    101,384,10,2500.0,2.0,probeA,3a,30000.0,350,True
    201,384,20,2500.2,2.0,probeA,PXI,30000.5,360,True
    102,384,10,2499.8,2.0,probeB,3a,29999.9,340,False
    103,384,10,2500.0,2.0,probeC,3a,30000.1,345,True
    999,384,77,2500.0,2.0,probeD,PXI,30000.0,350,True
    """)

CHANNELS_CSV = dedent("""\
    id,ecephys_probe_id,local_index,probe_horizontal_position,probe_vertical_position,anterior_posterior_ccf_coordinate,dorsal_ventral_ccf_coordinate,left_right_ccf_coordinate,ecephys_structure_id,ecephys_structure_acronym
    1001,101,0,43,20,8000.0,3000.0,7000.0,215.0,APN
    2001,201,0,43,20,-1.0,-1.0,-1.0,,
    1002,101,1,11,20,7990.0,2990.0,7010.0,,
    1021,102,0,43,20,8100.0,3100.0,7100.0,382.0,CA1
    1003,101,2,59,40,7980.0,2980.0,7020.0,385.0,VISp
    2002,201,1,11,20,-1000.0,-1000.0,-1000.0,,
    1004,101,3,27,40,7970.0,2970.0,7030.0,215.0,APN
    1022,102,1,11,20,,,,385.0,VISp
    5001,555,0,43,20,8000.0,3000.0,7000.0,215.0,APN
    """)

UNITS_HEADER = (
    "id,PT_ratio,amplitude,amplitude_cutoff,cumulative_drift,d_prime,duration,ecephys_channel_id,"
    "epoch_name_quality_metrics,epoch_name_waveform_metrics,firing_rate,halfwidth,isi_violations,"
    "isolation_distance,l_ratio,max_drift,nn_hit_rate,nn_miss_rate,presence_ratio,quality,"
    "recovery_slope,repolarization_slope,silhouette_score,snr,spread,velocity_above,velocity_below"
)
# (id, channel, amplitude_cutoff, isi_violations, presence_ratio, quality) -> the filter verdict
UNIT_ROWS = [
    (7, 1003, "0.05", "0.1", "0.99", "good"),  # passes
    (3, 1001, "0.1", "0.5", "0.95", "good"),  # exactly at all three bounds: passes
    (5, 1003, "0.11", "0.1", "0.99", "good"),  # amplitude_cutoff above 0.1
    (4, 1001, "0.01", "0.1", "0.94", "good"),  # presence_ratio below 0.95 (passes 0.9)
    (9, 2001, "0.01", "0.51", "0.99", "good"),  # isi_violations above 0.5
    (6, 1021, "", "0.1", "0.99", "good"),  # NaN amplitude_cutoff: never passes
    (8, 1022, "0.01", "0.1", "0.99", "noise"),  # fails validity only
    (2, 2002, "0.01", "0.0", "0.99", "good"),  # passes
    (1, 5001, "0.01", "0.1", "0.99", "good"),  # passes, but its channel does not exist
    (11, 1001, "0.02", "0.2", "0.97", "good"),  # passes
]


def units_csv() -> str:
    lines = [UNITS_HEADER]
    for unit_id, channel, cutoff, isi, presence, quality in UNIT_ROWS:
        # The other metrics are derived from the id so that renamed columns can be traced.
        lines.append(
            f"{unit_id},{unit_id}.5,{unit_id}0.0,{cutoff},1.0,2.0,0.{unit_id},{channel},"
            f"complete_session,complete_session,5.0,0.2,{isi},"
            f"30.0,0.0{unit_id},10.0,0.9,0.01,{presence},{quality},"
            f"-0.1,0.5,0.2,3.0,40.0,0.1,0.2"
        )
    return "\n".join(lines) + "\n"


BRAIN_OBSERVATORY_METRICS_CSV = dedent("""\
    ecephys_unit_id,c50_dg,g_osi_dg,on_screen_rf,p_value_rf,pref_ori_dg
    3,0.3,0.13,True,0.01,90.0
    7,0.7,,False,0.5,45.0
    5,0.5,0.15,,0.02,0.0
    424242,0.1,0.1,True,0.1,0.0
    """)
FUNCTIONAL_CONNECTIVITY_METRICS_CSV = dedent("""\
    ecephys_unit_id,c50_dg,g_osi_dg,on_screen_rf,p_value_rf,pref_speed_dm
    9,0.9,0.19,True,0.09,0.04
    434343,0.4,0.14,,0.04,0.04
    2,0.2,0.12,False,0.02,0.01
    """)
METRICS_CSV = {
    "brain_observatory_1.1": BRAIN_OBSERVATORY_METRICS_CSV,
    "functional_connectivity": FUNCTIONAL_CONNECTIVITY_METRICS_CSV,
}

NO_BOUNDS = {
    "amplitude_cutoff_maximum": None,
    "presence_ratio_minimum": None,
    "isi_violations_maximum": None,
}
INFINITE_BOUNDS = {
    "amplitude_cutoff_maximum": np.inf,
    "presence_ratio_minimum": -np.inf,
    "isi_violations_maximum": np.inf,
}

UNIT_COLUMNS = [
    "waveform_PT_ratio",
    "waveform_amplitude",
    "amplitude_cutoff",
    "cumulative_drift",
    "d_prime",
    "waveform_duration",
    "ecephys_channel_id",
    "firing_rate",
    "waveform_halfwidth",
    "isi_violations",
    "isolation_distance",
    "L_ratio",
    "max_drift",
    "nn_hit_rate",
    "nn_miss_rate",
    "presence_ratio",
    "waveform_recovery_slope",
    "waveform_repolarization_slope",
    "silhouette_score",
    "snr",
    "waveform_spread",
    "waveform_velocity_above",
    "waveform_velocity_below",
]
CHANNEL_COLUMNS = [
    "ecephys_probe_id",
    "local_index",
    "probe_horizontal_position",
    "probe_vertical_position",
    "anterior_posterior_ccf_coordinate",
    "dorsal_ventral_ccf_coordinate",
    "left_right_ccf_coordinate",
    "ecephys_structure_id",
    "ecephys_structure_acronym",
]


def make_tables(sessions_csv: str = SESSIONS_CSV, session_metrics=None) -> ProjectTables:
    return ProjectTables.from_csvs(
        io.StringIO(sessions_csv),
        io.StringIO(PROBES_CSV),
        io.StringIO(CHANNELS_CSV),
        io.StringIO(units_csv()),
        typewise_metrics=lambda session_type: read_project_csv(
            "analysis_metrics", io.StringIO(METRICS_CSV[session_type])
        ),
        session_metrics=session_metrics,
    )


@pytest.fixture
def tables() -> ProjectTables:
    return make_tables()


def acronyms(value: object) -> object:
    """An acronym array as a list with NaN spelled "nan", for comparison; 0 stays 0."""
    if isinstance(value, np.ndarray):
        return ["nan" if isinstance(v, float) and math.isnan(v) else v for v in value]
    return value


# --- reading the CSVs ----------------------------------------------------------------------------


def test_csvs_are_indexed_by_id_with_pandas_default_types_and_object_text():
    sessions = read_project_csv("sessions", io.StringIO(SESSIONS_CSV))
    probes = read_project_csv("probes", PROBES_CSV.encode())  # bytes are accepted too

    assert sessions.index.name == "id"
    assert sessions.index.dtype == np.int64
    assert sessions.index.tolist() == [20, 10, 30]  # file order
    assert sessions["genotype"].dtype == object  # not pandas 3's "str", as in AllenSDK
    assert sessions["age_in_days"].dtype == np.float64
    assert math.isnan(sessions.at[30, "age_in_days"])
    assert sessions["has_nwb"].dtype == bool
    assert probes["has_lfp_data"].dtype == bool
    assert probes.at[102, "has_lfp_data"] is np.False_


def test_analysis_metrics_csv_is_indexed_by_unit_id():
    metrics = read_project_csv("analysis_metrics", io.StringIO(BRAIN_OBSERVATORY_METRICS_CSV))

    assert metrics.index.name == "ecephys_unit_id"
    assert metrics.index.tolist() == [3, 7, 5, 424242]
    # True/False with a gap is neither bool nor float: object, as pandas has always read it.
    assert metrics["on_screen_rf"].dtype == object


def test_unknown_csv_kind_is_refused():
    with pytest.raises(ValueError, match="unknown project table 'unit'"):
        read_project_csv("unit", io.StringIO(units_csv()))


# --- unit filters --------------------------------------------------------------------------------


def test_unit_filter_defaults_are_allensdk_code_defaults_not_the_tutorials():
    assert resolve_unit_filter_bounds() == UnitFilterBounds(0.1, 0.95, 0.5)


def test_none_removes_a_bound_and_unknown_keywords_are_ignored():
    bounds = resolve_unit_filter_bounds(presence_ratio_minimum=None, bogus=1)

    assert bounds == UnitFilterBounds(0.1, -math.inf, 0.5)


def test_bounds_are_inclusive_and_nan_metrics_always_fail():
    units = pd.DataFrame(
        {
            "amplitude_cutoff": [0.1, 0.1000001, np.nan],
            "presence_ratio": [0.95, 0.95, 0.99],
            "isi_violations": [0.5, 0.5, 0.1],
        }
    )
    unbounded = UnitFilterBounds(math.inf, -math.inf, math.inf)

    assert quality_metrics_mask(units, UnitFilterBounds()).tolist() == [True, False, False]
    assert quality_metrics_mask(units, unbounded).tolist() == [True, True, False]


# --- get_units -----------------------------------------------------------------------------------


def test_default_units_are_the_good_ones_inside_all_three_bounds(tables):
    units = tables.get_units()

    # 7, 3, 2, 11 pass (1 passes too but its channel is unknown). Rows come grouped by peak
    # channel, channels in order of first appearance: 1003 (7), 1001 (3, 11), 2002 (2).
    assert units.index.tolist() == [7, 3, 11, 2]
    assert units.index.name == "id"


def test_units_without_bounds_still_lose_nan_metrics_noise_and_orphans(tables):
    # 6 has a NaN amplitude_cutoff, 8 is noise, 1 sits on an unknown channel. By channel:
    # 1003 (7, 5), 1001 (3, 4, 11), 2001 (9), 2002 (2).
    expected = [7, 5, 3, 4, 11, 9, 2]

    assert tables.get_units(**NO_BOUNDS).index.tolist() == expected
    assert tables.get_units(**INFINITE_BOUNDS).index.tolist() == expected


def test_units_without_validity_filter_keep_noise_and_the_quality_column(tables):
    units = tables.get_units(filter_by_validity=False, **NO_BOUNDS)

    # Channel 1022 (unit 8) first appears after 2001 (unit 9) in units.csv.
    assert units.index.tolist() == [7, 5, 3, 4, 11, 9, 8, 2]
    assert units.at[8, "quality"] == "noise"
    assert "quality" not in tables.get_units().columns


def test_a_single_bound_can_be_moved(tables):
    # Unit 4 (presence 0.94) joins at 0.9; the other bounds keep their defaults.
    assert tables.get_units(presence_ratio_minimum=0.9).index.tolist() == [7, 3, 4, 11, 2]


def test_unit_columns_are_renamed_merged_and_suppressed_like_allensdk(tables):
    units = tables.get_units()

    probe_columns = ["ecephys_session_id", "lfp_sampling_rate", "name", "phase", "sampling_rate"]
    session_columns = ["date_of_acquisition", "published_at", "specimen_id", "session_type"]
    assert units.columns.tolist() == (
        UNIT_COLUMNS
        + CHANNEL_COLUMNS
        + probe_columns
        + ["has_lfp_data"]
        + session_columns
        + ["age_in_days", "sex", "genotype"]
    )
    # Traced through the renames: unit 7 has PT_ratio 7.5, amplitude 70.0, l_ratio 0.07.
    assert units.at[7, "waveform_PT_ratio"] == 7.5
    assert units.at[7, "waveform_amplitude"] == 70.0
    assert units.at[7, "L_ratio"] == 0.07
    # Joined through channel 1003 -> probe 101 -> session 10, LFP rate 2500 / 2.
    assert units.at[7, "ecephys_structure_acronym"] == "VISp"
    assert units.at[7, "ecephys_session_id"] == 10
    assert units.at[7, "lfp_sampling_rate"] == 1250.0
    assert units.at[7, "name"] == "probeA"  # AllenSDK's probe_name rename never reaches users
    assert units.at[7, "genotype"].startswith("Sst")  # and genotype is not full_genotype here


def test_unit_suppress_list_can_be_replaced(tables):
    units = tables.get_units(suppress=[])

    assert "epoch_name_quality_metrics" in units.columns
    assert "lfp_temporal_subsampling_factor" in units.columns


# --- get_session_table ---------------------------------------------------------------------------


def test_session_table_columns_and_types(tables):
    sessions = tables.get_session_table()

    assert sessions.index.tolist() == [20, 10, 30]
    assert sessions.index.name == "id"
    assert sessions.columns.tolist() == [
        "published_at",
        "specimen_id",
        "session_type",
        "age_in_days",
        "sex",
        "full_genotype",
        "unit_count",
        "channel_count",
        "probe_count",
        "ecephys_structure_acronyms",
    ]
    for count in ("unit_count", "channel_count", "probe_count"):
        assert sessions[count].dtype == np.int64
    assert sessions["ecephys_structure_acronyms"].dtype == object


def test_session_counts_use_the_default_unit_filters(tables):
    sessions = tables.get_session_table()

    # Session 10: default units 7, 3, 11; channels of probes 101 (4) and 102 (2); probes
    # 101, 102, 103. Session 20: unit 2; channels 2001, 2002; probe 201. Session 30: nothing.
    assert sessions["unit_count"].to_dict() == {20: 1, 10: 3, 30: 0}
    assert sessions["channel_count"].to_dict() == {20: 2, 10: 6, 30: 0}
    assert sessions["probe_count"].to_dict() == {20: 1, 10: 3, 30: 0}


def test_session_structures_are_unique_in_channel_order_with_nan(tables):
    structures = tables.get_session_table()["ecephys_structure_acronyms"]

    # Session 10's channels come probe by probe (101 then 102, first appearance in
    # channels.csv): APN, nan, VISp, APN, then CA1, VISp. A session without channels gets 0.
    assert acronyms(structures[10]) == ["APN", "nan", "VISp", "CA1"]
    assert acronyms(structures[20]) == ["nan"]
    assert structures[30] == 0


def test_session_structure_list_literals_are_parsed_then_recomputed():
    with_literals = SESSIONS_CSV.replace(",has_nwb\n", ",has_nwb,structure_acronyms\n")
    with_literals = with_literals.replace(",True\n", ",True,\"['VISp', 'CA1']\"\n")
    tables = make_tables(with_literals)

    sessions = tables.get_session_table()
    units = tables.get_units()

    # The parsed column keeps its place, before the counts, and is then recomputed from the
    # channels (0 for the session without channels, as AllenSDK overwrites every row first).
    assert sessions.columns.tolist()[-4:] == [
        "ecephys_structure_acronyms",
        "unit_count",
        "channel_count",
        "probe_count",
    ]
    assert acronyms(sessions.at[10, "ecephys_structure_acronyms"]) == ["APN", "nan", "VISp", "CA1"]
    assert sessions.at[30, "ecephys_structure_acronyms"] == 0
    # The parsed lists themselves ride along into the units table, as in AllenSDK.
    assert units.at[7, "ecephys_structure_acronyms"] == ["VISp", "CA1"]
    assert "structure_acronyms" not in units.columns


def test_a_session_table_suppress_list_replaces_the_default(tables):
    sessions = tables.get_session_table(suppress=["published_at"])

    assert "published_at" not in sessions.columns
    assert "has_nwb" in sessions.columns
    assert "full_genotype" in sessions.columns


# --- get_probes ----------------------------------------------------------------------------------


def test_probes_come_session_by_session_with_counts_and_structures(tables):
    probes = tables.get_probes()

    # Session 10's probes first (it appears first in probes.csv), the orphan 999 dropped.
    assert probes.index.tolist() == [101, 102, 103, 201]
    assert probes.index.name == "id"
    assert probes.columns.tolist() == [
        "ecephys_session_id",
        "lfp_sampling_rate",
        "name",
        "phase",
        "sampling_rate",
        "has_lfp_data",
        "unit_count",
        "channel_count",
        "ecephys_structure_acronyms",
    ]
    assert probes["unit_count"].to_dict() == {101: 3, 102: 0, 103: 0, 201: 1}
    assert probes["channel_count"].to_dict() == {101: 4, 102: 2, 103: 0, 201: 2}
    assert acronyms(probes.at[101, "ecephys_structure_acronyms"]) == ["APN", "nan", "VISp"]
    assert acronyms(probes.at[102, "ecephys_structure_acronyms"]) == ["CA1", "VISp"]
    assert probes.at[103, "ecephys_structure_acronyms"] == 0
    assert acronyms(probes.at[201, "ecephys_structure_acronyms"]) == ["nan"]


def test_probe_lfp_rate_is_divided_by_the_subsampling_factor(tables):
    probes = tables.get_probes()

    assert probes["lfp_sampling_rate"].to_dict() == {
        101: 2500.0 / 2.0,
        102: 2499.8 / 2.0,
        103: 2500.0 / 2.0,
        201: 2500.2 / 2.0,
    }
    assert probes["has_lfp_data"].to_dict() == {101: True, 102: False, 103: True, 201: True}


def test_prepare_probes_leaves_a_table_without_the_factor_alone():
    probes = pd.DataFrame({"lfp_sampling_rate": [2500.0]}, index=pd.Index([1], name="id"))

    assert prepare_probes(probes)["lfp_sampling_rate"].tolist() == [2500.0]


# --- get_channels --------------------------------------------------------------------------------


def test_channels_come_probe_by_probe_with_probe_and_session_columns(tables):
    channels = tables.get_channels()

    # Probes in order of first appearance in channels.csv: 101, 201, 102; orphan 5001 dropped.
    assert channels.index.tolist() == [1001, 1002, 1003, 1004, 2001, 2002, 1021, 1022]
    assert channels.index.name == "id"
    assert channels.columns.tolist() == CHANNEL_COLUMNS + [
        "ecephys_session_id",
        "lfp_sampling_rate",
        "phase",
        "sampling_rate",
        "has_lfp_data",
        "unit_count",
    ]
    assert channels["unit_count"].to_dict() == {
        1001: 2,  # units 3 and 11
        1002: 0,
        1003: 1,  # unit 7 (5 is filtered out)
        1004: 0,
        2001: 0,  # unit 9 is filtered out
        2002: 1,  # unit 2
        1021: 0,
        1022: 0,  # unit 8 is noise
    }


def test_channel_coordinates_pass_through_sentinels_and_gaps(tables):
    channels = tables.get_channels()

    assert channels.at[2001, "anterior_posterior_ccf_coordinate"] == -1.0
    assert channels.at[2002, "left_right_ccf_coordinate"] == -1000.0
    assert math.isnan(channels.at[1022, "dorsal_ventral_ccf_coordinate"])
    assert math.isnan(channels.at[2001, "ecephys_structure_id"])
    assert channels["ecephys_structure_id"].dtype == np.float64


def test_a_channel_name_column_kept_by_suppress_is_called_probe_name(tables):
    channels = tables.get_channels(suppress=[])

    assert channels.at[1021, "probe_name"] == "probeB"
    assert "name" not in channels.columns


# --- the distinct-value lists --------------------------------------------------------------------


def test_distinct_values_follow_the_table_order(tables):
    assert tables.get_all_session_types() == ["functional_connectivity", "brain_observatory_1.1"]
    assert tables.get_all_sexes() == ["F", "M"]
    assert tables.get_all_full_genotypes() == [
        "wt/wt",
        "Sst-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
    ]
    ages = tables.get_all_ages()
    assert ages[:2] == [110.0, 100.0]
    assert math.isnan(ages[2])


def test_structure_acronyms_follow_the_channel_table_order_nan_included(tables):
    structures = tables.get_structure_acronyms()

    assert [("nan" if isinstance(s, float) else s) for s in structures] == [
        "APN",
        "nan",
        "VISp",
        "CA1",
    ]


# --- analysis metrics ----------------------------------------------------------------------------


def test_metrics_by_session_type_join_the_default_units(tables):
    metrics = tables.get_unit_analysis_metrics_by_session_type("brain_observatory_1.1")

    # Default units 7, 3, 11, 2 (in that order) that have metrics: 7 and 3.
    assert metrics.index.tolist() == [7, 3]
    assert metrics.index.name == "ecephys_unit_id"
    assert metrics.columns.tolist() == tables.get_units().columns.tolist() + [
        "c50_dg",
        "g_osi_dg",
        "on_screen_rf",
        "p_value_rf",
        "pref_ori_dg",
    ]
    assert metrics.at[3, "c50_dg"] == 0.3
    assert metrics.at[3, "ecephys_structure_acronym"] == "APN"


def test_metrics_by_session_type_take_the_unit_filters(tables):
    metrics = tables.get_unit_analysis_metrics_by_session_type(
        "brain_observatory_1.1", filter_by_validity=False, **NO_BOUNDS
    )

    # Unit 5 (amplitude_cutoff 0.11) now passes; unknown unit 424242 never joins.
    assert metrics.index.tolist() == [7, 5, 3]
    assert metrics.at[5, "quality"] == "good"


def test_metrics_without_annotation_are_the_file_as_read(tables):
    metrics = tables.get_unit_analysis_metrics_by_session_type(
        "brain_observatory_1.1", annotate=False
    )

    assert metrics.index.tolist() == [3, 7, 5, 424242]
    assert metrics.index.name == "ecephys_unit_id"
    assert metrics.columns.tolist() == [
        "c50_dg",
        "g_osi_dg",
        "on_screen_rf",
        "p_value_rf",
        "pref_ori_dg",
    ]


def test_an_unknown_session_type_is_refused_naming_the_known_ones(tables):
    expected = (
        "unrecognized session type: nonsense. "
        "Available types: ['functional_connectivity', 'brain_observatory_1.1']"
    )
    with pytest.raises(ValueError) as raised:
        tables.get_unit_analysis_metrics_by_session_type("nonsense")
    assert str(raised.value) == expected


def test_session_metrics_without_a_file_are_the_sessions_rows_of_its_type(tables):
    raw = tables.get_unit_analysis_metrics_for_session(10, annotate=False)
    annotated = tables.get_unit_analysis_metrics_for_session(10)

    # Units of session 10 (through channels and probes, any quality): 7, 3, 5, 4, 6, 8, 11;
    # the brain_observatory_1.1 file has 3, 7, 5 of them.
    assert raw.index.tolist() == [3, 7, 5]
    assert raw.index.name == "ecephys_unit_id"
    # Types follow the session's own rows, as a file of them alone would be read: on_screen_rf
    # is object in the functional_connectivity file (True, NaN, False), bool for session 20's
    # units 9 and 2 (True, False); session 10's rows (True, False, NaN) keep object.
    assert raw["on_screen_rf"].dtype == object
    session_20 = tables.get_unit_analysis_metrics_for_session(20, annotate=False)
    assert session_20.index.tolist() == [9, 2]
    assert session_20["on_screen_rf"].dtype == bool
    # Annotated: session 10's default units 7, 3, 11 that have metrics.
    assert annotated.index.tolist() == [7, 3]
    assert set(annotated["ecephys_session_id"]) == {10}


def test_session_metrics_from_a_file_are_used_when_there_is_one():
    own_file = read_project_csv(
        "analysis_metrics", io.StringIO("ecephys_unit_id,c50_dg\n11,0.11\n3,0.33\n")
    )
    tables = make_tables(session_metrics=lambda session_id: own_file if session_id == 10 else None)

    assert tables.get_unit_analysis_metrics_for_session(10, annotate=False)["c50_dg"].to_dict() == {
        11: 0.11,
        3: 0.33,
    }
    # Joined in the units' order: 3 before 11.
    assert tables.get_unit_analysis_metrics_for_session(10).index.tolist() == [3, 11]


def test_an_unknown_session_id_is_refused(tables):
    with pytest.raises(ValueError, match="unrecognized session id: 12345"):
        tables.get_unit_analysis_metrics_for_session(12345)


def test_metrics_are_loaded_only_when_asked_for():
    loaded: list[str] = []

    def typewise(session_type: str) -> pd.DataFrame:
        loaded.append(session_type)
        return read_project_csv("analysis_metrics", io.StringIO(METRICS_CSV[session_type]))

    tables = ProjectTables.from_csvs(
        io.StringIO(SESSIONS_CSV),
        io.StringIO(PROBES_CSV),
        io.StringIO(CHANNELS_CSV),
        io.StringIO(units_csv()),
        typewise_metrics=typewise,
    )
    tables.get_units()
    with pytest.raises(ValueError):
        tables.get_unit_analysis_metrics_by_session_type("nonsense")
    assert loaded == []
    tables.get_unit_analysis_metrics_by_session_type("functional_connectivity")
    assert loaded == ["functional_connectivity"]


# --- results are independent copies --------------------------------------------------------------


def test_results_can_be_modified_without_touching_the_inputs_or_later_results(tables):
    raw_probes_before = tables.raw_probes.copy()
    raw_units_before = tables.raw_units.copy()

    sessions = tables.get_session_table()
    sessions.at[10, "ecephys_structure_acronyms"][0] = "changed"
    probes = tables.get_probes()
    probes["unit_count"] = -1

    # The LFP rate is divided in a copy, never in the table that was given.
    pd.testing.assert_frame_equal(tables.raw_probes, raw_probes_before)
    pd.testing.assert_frame_equal(tables.raw_units, raw_units_before)
    assert acronyms(tables.get_session_table().at[10, "ecephys_structure_acronyms"])[0] == "APN"
    assert tables.get_probes().at[101, "unit_count"] == 3


def test_prepare_units_does_not_modify_its_input():
    raw = read_project_csv("units", io.StringIO(units_csv()))
    before = raw.copy()

    prepare_units(raw)

    pd.testing.assert_frame_equal(raw, before)


# --- scale ---------------------------------------------------------------------------------------


def test_a_real_sized_project_builds_in_well_under_a_second():
    # 58 sessions, 6 probes each, 384 channels each, 100,000 units: the real tables' sizes.
    rng = np.random.default_rng(0)
    session_ids = np.arange(58) + 700_000_000
    probe_ids = np.arange(58 * 6) + 800_000_000
    channel_ids = np.arange(len(probe_ids) * 384) + 900_000_000
    sessions = pd.DataFrame(
        {
            "session_type": "brain_observatory_1.1",
            "age_in_days": 100.0,
            "sex": "M",
            "genotype": "wt/wt",
            "has_nwb": True,
        },
        index=pd.Index(session_ids, name="id"),
    )
    probes = pd.DataFrame(
        {
            "ecephys_session_id": np.repeat(session_ids, 6),
            "lfp_sampling_rate": 2500.0,
            "lfp_temporal_subsampling_factor": 2.0,
            "name": "probeA",
        },
        index=pd.Index(probe_ids, name="id"),
    )
    channels = pd.DataFrame(
        {
            "ecephys_probe_id": np.repeat(probe_ids, 384),
            "ecephys_structure_acronym": rng.choice(
                np.array(["VISp", "CA1", "LP", np.nan], object), len(channel_ids)
            ),
        },
        index=pd.Index(channel_ids, name="id"),
    )
    n_units = 100_000
    units = pd.DataFrame(
        {
            "ecephys_channel_id": rng.choice(channel_ids, n_units),
            "amplitude_cutoff": rng.random(n_units) * 0.2,
            "presence_ratio": rng.random(n_units),
            "isi_violations": rng.random(n_units),
            "quality": "good",
            "PT_ratio": rng.random(n_units),
        },
        index=pd.Index(np.arange(n_units) + 950_000_000, name="id"),
    )
    tables = ProjectTables(sessions, probes, channels, units)

    started = time.perf_counter()
    tables.get_session_table()
    tables.get_probes()
    tables.get_channels()
    all_units = tables.get_units(**NO_BOUNDS)
    elapsed = time.perf_counter() - started

    assert len(all_units) == n_units
    assert elapsed < 1.0, f"building the tables took {elapsed:.2f} s"


# --- the synthetic dataset -----------------------------------------------------------------------


def test_the_synthetic_datasets_csvs_give_consistent_tables(request):
    try:
        from s3ecephys.synthetic import write_dataset  # noqa: F401
    except ImportError:
        pytest.skip("s3ecephys.synthetic is not written yet")
    root = Path(request.getfixturevalue("synthetic_dataset").root)

    def typewise(session_type: str) -> pd.DataFrame:
        return read_project_csv("analysis_metrics", root / f"{session_type}_analysis_metrics.csv")

    tables = ProjectTables.from_csvs(
        *(root / f"{name}.csv" for name in ("sessions", "probes", "channels", "units")),
        typewise_metrics=typewise,
    )
    # What the default filters keep, restated with plain pandas on an independent read.
    sessions = pd.read_csv(root / "sessions.csv", index_col="id")
    probes = pd.read_csv(root / "probes.csv", index_col="id")
    channels = pd.read_csv(root / "channels.csv", index_col="id")
    units = pd.read_csv(root / "units.csv", index_col="id")
    unit_session = units["ecephys_channel_id"].map(channels["ecephys_probe_id"])
    unit_session = unit_session.map(probes["ecephys_session_id"])
    kept = (
        (units["quality"] == "good")
        & (units["amplitude_cutoff"] <= 0.1)
        & (units["presence_ratio"] >= 0.95)
        & (units["isi_violations"] <= 0.5)
        & unit_session.isin(sessions.index)
    )

    default_units = tables.get_units()
    session_table = tables.get_session_table()
    probe_table = tables.get_probes()

    assert sorted(default_units.index) == sorted(units.index[kept])
    assert session_table["unit_count"].to_dict() == {
        session_id: int((unit_session[kept] == session_id).sum()) for session_id in sessions.index
    }
    assert session_table["probe_count"].sum() == len(probe_table)
    assert (
        probe_table["lfp_sampling_rate"].tolist()
        == (probes["lfp_sampling_rate"] / probes["lfp_temporal_subsampling_factor"])
        .loc[probe_table.index]
        .tolist()
    )
    for session_type in tables.get_all_session_types():
        if (root / f"{session_type}_analysis_metrics.csv").exists():
            metrics = tables.get_unit_analysis_metrics_by_session_type(session_type)
            assert set(metrics.index) <= set(default_units.index)
            assert set(metrics["session_type"]) <= {session_type}
