"""Stimulus presentations, conditions and epochs, built as AllenSDK 2.16.2 builds them.

AllenSDK reads every ``intervals/<stimulus>_presentations`` table, concatenates them in time
order, splits the ``color`` column, renames stimuli and parameters, writes ``"null"`` where a
parameter does not apply, numbers the distinct parameter combinations (stimulus conditions) and
blanks the presentations that overlap an invalid interval tagged ``stimulus``. The functions here
do the same from the frames :func:`s3ecephys.nwb.tables.read_table` returns, with the same
column names, values and dtypes (text columns are ``object``, as under the pandas 1.5.3 that
AllenSDK 2.16.2 pins).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

NULL = "null"
INVALID_PRESENTATION = "invalid_presentation"

# Psychopy settings that AllenSDK hides unless asked for (``include_detailed_parameters``).
DETAILED_STIMULUS_PARAMETERS = (
    "colorSpace",
    "flipHoriz",
    "flipVert",
    "depth",
    "interpolate",
    "mask",
    "opacity",
    "rgbPedestal",
    "tex",
    "texRes",
    "units",
    "rgb",
    "signalDots",
    "noiseDots",
    "fieldSize",
    "fieldShape",
    "fieldPos",
    "nDots",
    "dotSize",
    "dotLife",
    "color_triplet",
)
# Presentation columns that describe timing rather than the stimulus.
NON_STIMULUS_PARAMETERS = (
    "start_time",
    "stop_time",
    "duration",
    "stimulus_block",
    "stimulus_condition_id",
)
DEFAULT_STIMULUS_RENAMES = {
    "": "spontaneous",
    "natural_movie_1": "natural_movie_one",
    "natural_movie_3": "natural_movie_three",
    "Natural Images": "natural_scenes",
    "flash_250ms": "flashes",
    "gabor_20_deg_250ms": "gabors",
    "drifting_gratings": "drifting_gratings",
    "static_gratings": "static_gratings",
    "contrast_response": "drifting_gratings_contrast",
    "Natural_Images_Shuffled": "natural_scenes_shuffled",
    "Natural_Images_Sequential": "natural_scenes_sequential",
    "natural_movie_1_more_repeats": "natural_movie_one",
    "natural_movie_shuffled": "natural_movie_one_shuffled",
    "motion_stimulus": "dot_motion",
    "drifting_gratings_more_repeats": "drifting_gratings_75_repeats",
    "signal_noise_test_0_200_repeats": "test_movie_one",
    "signal_noise_test_0": "test_movie_one",
    "signal_noise_test_1": "test_movie_two",
    "signal_noise_session_1": "dense_movie_one",
    "signal_noise_session_2": "dense_movie_two",
    "signal_noise_session_3": "dense_movie_three",
    "signal_noise_session_4": "dense_movie_four",
    "signal_noise_session_5": "dense_movie_five",
    "signal_noise_session_6": "dense_movie_six",
}
# Matched case-sensitively: 2.16.2 calls its renamer with ``ignore_case=False``.
DEFAULT_COLUMN_RENAMES = {
    "Contrast": "contrast",
    "Ori": "orientation",
    "SF": "spatial_frequency",
    "TF": "temporal_frequency",
    "Phase": "phase",
    "Color": "color",
    "Image": "frame",
    "Pos_x": "x_position",
    "Pos_y": "y_position",
}
DEFAULT_EPOCH_DURATION_THRESHOLDS = {"spontaneous_activity": 90.0}

_IGNORED_COLUMNS = ("tags", "timeseries", "tags_index", "timeseries_index")
# AllenSDK's presentations object fills these with -99 and makes them integers.
_INT_COLUMNS = (
    "flashes_since_change",
    "image_index",
    "movie_repeat",
    "movie_frame_index",
    "repeat",
    "stimulus_index",
)
_INT_NULL = -99
# The columns that lead the table; AllenSDK leaves the others in set order (varying from run to
# run), here they keep their order of appearance.
_LEADING_COLUMNS = (
    "stimulus_block",
    "stimulus_block_name",
    "image_index",
    "image_name",
    "movie_frame_index",
    "duration",
    "start_time",
    "end_time",
    "stop_time",
    "start_frame",
    "end_frame",
    "is_change",
    "is_image_novel",
    "omitted",
    "movie_repeat",
    "flashes_since_change",
    "trials_id",
)
_COLOR_TRIPLET_RE = re.compile(r"\[(-{0,1}\d*\.\d*,\s*)*(-{0,1}\d*\.\d*)\]")
_GENERIC_MOVIE_RE = re.compile(
    r"natural_movie_(?P<number>\d+|one|two|three|four|five|six|seven|eight|nine)"
    r"(_shuffled){0,1}(_more_repeats){0,1}"
)
_SHUFFLED_MOVIE_RE = re.compile(r"natural_movie_shuffled")
_NUMERAL_RE = re.compile(r"\d+")
_DIGIT_NAMES = {
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
}


# -- building the tables ---------------------------------------------------------------------


def build_stimulus_presentations(
    presentation_tables: Mapping[str, pd.DataFrame], invalid_times: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """AllenSDK's stimulus presentations and stimulus conditions tables.

    ``presentation_tables`` maps each ``intervals/<name>_presentations`` group name to its table;
    ``invalid_times`` is ``intervals/invalid_times`` (or None). The presentations table is indexed
    by ``stimulus_presentation_id`` (0, 1, … in start-time order) and still holds the detailed
    psychopy parameters: pass it through :func:`remove_detailed_stimulus_parameters` to get what
    AllenSDK's ``session.stimulus_presentations`` shows. The conditions table is indexed by
    ``stimulus_condition_id``, numbered in order of first appearance.
    """
    table = _standardize_presentations(nwb_stimulus_presentations(presentation_tables))
    table, conditions = _assign_stimulus_conditions(table)
    return mask_invalid_presentations(table, invalid_times), conditions


def nwb_stimulus_presentations(presentation_tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The presentation tables as AllenSDK's NWB session API reads them
    (``api.get_stimulus_presentations()``): concatenated in start-time order, ``color`` split,
    before any renaming, ``"null"`` filling or stimulus condition."""
    return _split_color_column(_concatenate_presentations(presentation_tables))


def _concatenate_presentations(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    frames = []
    # pynwb hands the interval tables over in HDF5 name order.
    for name in sorted(tables):
        frame = tables[name]
        frame = frame.drop(columns=[c for c in _IGNORED_COLUMNS if c in frame.columns])
        frames.append(_text_as_object(frame.reset_index(drop=True)).replace({"N/A": ""}))
    if not frames:
        columns = ["stimulus_block", "start_time", "stop_time", "stimulus_name"]
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    table = pd.concat(frames, ignore_index=True, sort=False)
    table = table.astype({c: "int64" for c in table.select_dtypes(include="integer").columns})
    # AllenSDK reads float columns holding only 0, 1 and NaN as nullable booleans.
    flags = [
        c
        for c in table.select_dtypes(include="floating").columns
        if not str(c).endswith("_index") and set(table[c].dropna().unique()) <= {0, 1}
    ]
    table = table.astype(dict.fromkeys(flags, "boolean"))
    # Stable, so presentations starting together keep the tables' order.
    table = table.sort_values("start_time", kind="stable").reset_index(drop=True)
    for column in _INT_COLUMNS:
        if column in table.columns:
            table[column] = table[column].fillna(_INT_NULL).astype("int64")
    leading = [c for c in _LEADING_COLUMNS if c in table.columns]
    return table[leading + [c for c in table.columns if c not in leading]]


def _split_color_column(table: pd.DataFrame) -> pd.DataFrame:
    """``color`` holds two parameters: RGB triplets move to ``color_triplet``, while the
    ±1 values are parsed into numbers (as AllenSDK's NWB reader does)."""
    if "color" not in table.columns:
        return table
    color = table["color"].astype(object).where(table["color"].notna(), "")
    if "color_triplet" not in table.columns:
        table["color_triplet"] = pd.Series("", index=table.index, dtype=object)
    is_text = color.map(lambda value: isinstance(value, str))
    triplet = color.map(
        lambda value: isinstance(value, str) and _COLOR_TRIPLET_RE.match(value) is not None
    )
    table["color_triplet"] = table["color_triplet"].astype(object)
    table.loc[triplet, "color_triplet"] = color[triplet]
    color[triplet] = ""
    literal = is_text & (color != "")
    color[literal] = color[literal].map(ast.literal_eval)
    table["color"] = color
    return table


def _standardize_presentations(table: pd.DataFrame) -> pd.DataFrame:
    table.index.name = "stimulus_presentation_id"
    table = table.drop(columns=["stimulus_index"], errors="ignore")
    table = _collapse_case_variant_columns(table)
    names = table["stimulus_name"].astype(object)
    names = _standardize_movie_numbers(names)
    names = _number_shuffled_movie(names)
    table["stimulus_name"] = _rename_stimuli(names)
    table = table.rename(columns=DEFAULT_COLUMN_RENAMES)
    # "null" rather than NaN marks parameters that do not apply, so that grouping keeps them.
    table = table.replace("", NULL)
    for column in table.columns:
        values = table[column]
        if values.dtype == "boolean" or values.isna().any():
            table[column] = values.astype(object).where(values.notna(), NULL)
    table["duration"] = table["stop_time"] - table["start_time"]
    return table


def _collapse_case_variant_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Merge columns differing only in case (``x`` and ``X`` or ``Xx``) when they never both
    hold a value; the lower-case or first-seen name wins."""
    names = set(table.columns)
    merged = []
    for column in table.columns:
        for variant in (column.upper(), column.capitalize()):
            if variant not in names or variant == column:
                continue
            here, there = table[column].notna(), table[variant].notna()
            if (here & there).any():
                continue
            fill = ~here & there
            if fill.any():
                table[column] = table[column].astype(object)
                table.loc[fill, column] = table.loc[fill, variant]
            merged.append(variant)
            break
    return table.drop(columns=merged)


def _standardize_movie_numbers(names: pd.Series) -> pd.Series:
    """``natural_movie_3`` → ``natural_movie_three`` (the Visual Coding spelling)."""

    def spell(match: re.Match) -> str:
        return _DIGIT_NAMES.get(match.group(0), match.group(0))

    return _map_objects(
        names,
        lambda name: (
            _NUMERAL_RE.sub(spell, name)
            if isinstance(name, str) and _GENERIC_MOVIE_RE.search(name)
            else name
        ),
    )


def _number_shuffled_movie(names: pd.Series) -> pd.Series:
    """Name ``natural_movie_shuffled`` after the one movie the session shows."""
    texts = [name for name in names if isinstance(name, str)]
    if not any(_SHUFFLED_MOVIE_RE.search(name) for name in texts):
        return names
    found = (_GENERIC_MOVIE_RE.search(name) for name in texts)
    candidates = list(dict.fromkeys(match.group("number") for match in found if match))
    if len(candidates) != 1:
        raise ValueError(
            "unable to uniquely determine a movie number for this session. "
            f"Candidates: {candidates}"
        )
    shuffled = f"natural_movie_{candidates[0]}_shuffled"
    return _map_objects(
        names,
        lambda name: shuffled if isinstance(name, str) and _SHUFFLED_MOVIE_RE.match(name) else name,
    )


def _rename_stimuli(names: pd.Series) -> pd.Series:
    return _map_objects(
        names,
        lambda name: (
            "spontaneous"
            if not isinstance(name, str) and pd.isna(name)
            else DEFAULT_STIMULUS_RENAMES.get(name, name)
        ),
    )


def _assign_stimulus_conditions(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Number each distinct combination of parameter values in order of first appearance."""
    params = table.drop(
        columns=["start_time", "stop_time", "duration", "stimulus_block"], errors="ignore"
    )
    if len(table) == 0:
        conditions = params.iloc[:0].copy()
        conditions.index = pd.Index([], dtype="int64", name="stimulus_condition_id")
        table["stimulus_condition_id"] = pd.Series(dtype="int64")
        return table, conditions
    # Factorizing compares values as Python does (1 == 1.0 == True), like AllenSDK's dict of
    # row tuples.
    codes = np.column_stack([pd.factorize(params[c])[0] for c in params.columns])
    _, first_rows, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first_rows)
    condition_of_group = np.empty(len(order), dtype=np.int64)
    condition_of_group[order] = np.arange(len(order))
    table["stimulus_condition_id"] = condition_of_group[inverse.ravel()]
    conditions = _infer_numeric_columns(params.iloc[first_rows[order]])
    conditions.index = pd.Index(np.arange(len(order)), name="stimulus_condition_id")
    return table, conditions


def mask_invalid_presentations(
    presentations: pd.DataFrame, invalid_times: pd.DataFrame | None
) -> pd.DataFrame:
    """Blank presentations overlapping (ends included) an invalid interval tagged ``stimulus``.

    Such a presentation keeps its start and stop times, is renamed ``invalid_presentation`` and
    has NaN everywhere else (its condition id and duration too), as in AllenSDK.
    """
    intervals = filter_invalid_times_by_tags(invalid_times, ["stimulus"])
    if intervals.empty or presentations.empty:
        return presentations
    starts = presentations["start_time"].to_numpy(dtype=float)[:, None]
    stops = presentations["stop_time"].to_numpy(dtype=float)[:, None]
    bad_starts = intervals["start_time"].to_numpy(dtype=float)[None, :]
    bad_stops = intervals["stop_time"].to_numpy(dtype=float)[None, :]
    overlaps = (np.maximum(starts, bad_starts) <= np.minimum(stops, bad_stops)).any(axis=1)
    if not overlaps.any():
        return presentations
    masked = presentations.copy()
    for column in masked.columns:
        if column not in ("start_time", "stop_time"):
            masked[column] = masked[column].where(~overlaps)
    masked["stimulus_name"] = masked["stimulus_name"].astype(object)
    masked.loc[overlaps, "stimulus_name"] = INVALID_PRESENTATION
    return masked


def remove_detailed_stimulus_parameters(presentations: pd.DataFrame) -> pd.DataFrame:
    """The table without the detailed psychopy parameters (AllenSDK's public view)."""
    return presentations.drop(columns=list(DETAILED_STIMULUS_PARAMETERS), errors="ignore")


def remove_unused_parameter_columns(presentations: pd.DataFrame) -> pd.DataFrame:
    """Drop columns that are entirely NaN, entirely ``""`` or entirely ``"null"``.

    An empty table loses every column, as in AllenSDK.
    """
    unused = []
    for column in presentations.columns:
        values = presentations[column]
        text = values.to_numpy(dtype=object).astype(str)
        if values.isna().all() or (text == "").all() or (text == NULL).all():
            unused.append(column)
    return presentations.drop(columns=unused)


# -- queries -----------------------------------------------------------------------------------


def get_stimulus_table(
    presentations: pd.DataFrame,
    stimulus_names: str | Sequence[str] | None = None,
    include_detailed_parameters: bool = False,
    include_unused_parameters: bool = False,
) -> pd.DataFrame:
    """Presentations of the named stimuli (default: all), without the parameter columns that
    none of them uses unless ``include_unused_parameters``.

    ``presentations`` should be the full table :func:`build_stimulus_presentations` returns:
    the detailed psychopy parameters can only be included if it still has them.
    """
    if stimulus_names is None:
        stimulus_names = list(presentations["stimulus_name"].unique())
    names = _as_collection(stimulus_names)
    selected = presentations[presentations["stimulus_name"].isin(names)]
    if not include_detailed_parameters:
        selected = remove_detailed_stimulus_parameters(selected)
    if not include_unused_parameters:
        selected = remove_unused_parameter_columns(selected)
    return selected


def get_stimulus_epochs(
    presentations: pd.DataFrame, duration_thresholds: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Runs of consecutive presentations sharing a ``stimulus_block``, one row per run.

    Columns ``start_time, stop_time, duration, stimulus_name, stimulus_block`` (name and block
    of the run's first presentation). Runs of a stimulus named in ``duration_thresholds`` that
    are shorter than its threshold are left out (default: ``spontaneous_activity`` under 90 s,
    AllenSDK's default, which matches no Visual Coding stimulus name). The index is the run's
    position before that filtering.
    """
    if duration_thresholds is None:
        duration_thresholds = DEFAULT_EPOCH_DURATION_THRESHOLDS
    columns = ["start_time", "stop_time", "duration", "stimulus_name", "stimulus_block"]
    if presentations.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    firsts = run_starts(presentations["stimulus_block"])
    lasts = np.append(firsts[1:], len(presentations)) - 1
    epochs = pd.DataFrame(
        {
            "start_time": presentations["start_time"].to_numpy()[firsts],
            "stop_time": presentations["stop_time"].to_numpy()[lasts],
            "stimulus_name": pd.Series(
                presentations["stimulus_name"].to_numpy(dtype=object)[firsts], dtype=object
            ),
            "stimulus_block": pd.Series(
                presentations["stimulus_block"].to_numpy(dtype=object)[firsts], dtype=object
            ),
        }
    )
    epochs = _infer_numeric_columns(epochs)
    epochs["duration"] = epochs["stop_time"] - epochs["start_time"]
    for name, threshold in duration_thresholds.items():
        epochs = epochs[(epochs["stimulus_name"] != name) | (epochs["duration"] >= threshold)]
    return epochs.loc[:, columns]


def run_starts(values: pd.Series) -> np.ndarray:
    """Positions where a run of equal values begins. Values of different types differ, and
    NaN equals NaN (AllenSDK's ``nan_intervals``)."""
    values = values.astype(object).reset_index(drop=True)
    previous = values.shift(1)
    same_type = values.map(type) == previous.map(type)
    same_value = (values == previous) | (values.isna() & previous.isna())
    changed = ~(same_type & same_value).to_numpy()
    changed[0] = True
    return np.flatnonzero(changed)


def get_stimulus_parameter_values(
    presentations: pd.DataFrame,
    stimulus_presentation_ids: Sequence[int] | None = None,
    drop_nulls: bool = True,
) -> dict[str, np.ndarray]:
    """For each stimulus parameter used by the chosen presentations, its distinct values in order
    of first appearance (2.16.2 does not sort them); ``"null"`` is appended last when
    ``drop_nulls`` is False and the parameter is unused somewhere."""
    presentations = remove_detailed_stimulus_parameters(presentations)
    if stimulus_presentation_ids is not None:
        presentations = presentations.loc[list(_as_collection(stimulus_presentation_ids))]
    params = presentations.drop(
        columns=[*NON_STIMULUS_PARAMETERS, "stimulus_name"], errors="ignore"
    )
    params = remove_unused_parameter_columns(params)
    values = {}
    for column in params.columns:
        uniques = np.asarray(params[column].unique())
        if uniques.dtype != object:
            values[column] = uniques
            continue
        is_null = np.array([isinstance(v, str) and v == NULL for v in uniques], dtype=bool)
        found = uniques[~is_null]
        if not drop_nulls and is_null.any():
            found = np.concatenate([found, [NULL]])
        values[column] = found
    return values


# -- invalid intervals -------------------------------------------------------------------------


def filter_invalid_times_by_tags(
    invalid_times: pd.DataFrame | None, tags: Iterable[str]
) -> pd.DataFrame:
    """The invalid intervals carrying any of ``tags`` among their ``[scope, id, label]`` tags."""
    if invalid_times is None or invalid_times.empty:
        return pd.DataFrame(columns=["start_time", "stop_time", "tags"])
    wanted = list(tags)
    carries = invalid_times["tags"].map(lambda row: any(tag in row for tag in wanted))
    return invalid_times[carries.astype(bool)]


def invalid_sample_mask(
    times: np.ndarray, invalid_times: pd.DataFrame | None, scopes: Iterable[str]
) -> np.ndarray:
    """True for the ``times`` inside (ends included) an invalid interval tagged with one of
    ``scopes`` (for LFP: ``["all_probes", <probe name>]``)."""
    times = np.asarray(times)
    invalid = np.zeros(times.shape, dtype=bool)
    intervals = filter_invalid_times_by_tags(invalid_times, scopes)
    for start, stop in zip(intervals["start_time"], intervals["stop_time"], strict=True):
        invalid |= (times >= start) & (times <= stop)
    return invalid


# -- helpers -----------------------------------------------------------------------------------


def _as_collection(value: Any) -> Collection:
    """A scalar (or a string) as a one-item list, as AllenSDK's ``coerce_scalar``."""
    if not isinstance(value, Collection) or isinstance(value, str):
        return [value]
    return value


def _map_objects(values: pd.Series, function: Callable[[Any], Any]) -> pd.Series:
    """``function`` applied to each value, kept as ``object`` (pandas 3 would infer ``str``)."""
    return pd.Series([function(v) for v in values], index=values.index, dtype=object)


def _text_as_object(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as ``object``, so numbers and text can share a column as under pandas 1."""
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c].dtype)]
    return frame.astype(dict.fromkeys(text, object))


def _infer_numeric_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Give ``object`` columns holding only numbers or booleans a numeric dtype, as a frame built
    from Python rows would have; text stays ``object``."""
    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) in (
            "floating",
            "integer",
            "mixed-integer-float",
            "boolean",
        ):
            frame[column] = values.infer_objects()
    return frame
