"""Behaviour series of the session file that AllenSDK reads only through its session API: the
running wheel as acquired and the gaze mapped onto the screen.

Both read whole (small) datasets in one concurrent fetch, by path, with no pynwb types.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from s3ecephys.nwb.session_file import SessionFile
from s3ecephys.nwb.tables import read_datasets

# The acquisition series of ``get_raw_running_data``, with the column each one's data becomes.
_RAW_RUNNING = {
    "raw_running_wheel_rotation": "net_rotation",
    "running_wheel_signal_voltage": "signal_voltage",
    "running_wheel_supply_voltage": "supply_voltage",
}
# The gaze mapping series; the screen coordinates are (y, x) pairs per frame.
_GAZE_AREAS = ("eye_area", "pupil_area")
_GAZE_COORDINATES = {
    "screen_coordinates": "screen_coordinates_{axis}_cm",
    "screen_coordinates_spherical": "screen_coordinates_spherical_{axis}_deg",
}


def raw_running_data(nwb: SessionFile) -> pd.DataFrame:
    """``frame_time, net_rotation, signal_voltage, supply_voltage``: the running wheel as acquired
    (``/acquisition/raw_running_wheel_rotation`` and the two encoder voltages), one row per
    stimulus frame. Raises KeyError naming the series the file lacks, as pynwb does."""
    missing = [name for name in _RAW_RUNNING if f"acquisition/{name}" not in nwb.root]
    if missing:
        raise KeyError(
            f"session {nwb.session_id} has no raw running data: its file lacks "
            f"{[f'acquisition/{name}' for name in missing]}"
        )
    series = {name: nwb.root[f"acquisition/{name}"] for name in _RAW_RUNNING}
    wanted = [series["raw_running_wheel_rotation"]["timestamps"]]
    wanted += [group["data"] for group in series.values()]
    frame_time, *values = read_datasets(wanted)
    columns = {"frame_time": np.asarray(frame_time)}
    columns.update(
        (column, np.asarray(value))
        for column, value in zip(_RAW_RUNNING.values(), values, strict=True)
    )
    return pd.DataFrame(columns)


def screen_gaze_data(nwb: SessionFile, include_filtered_data: bool = False) -> pd.DataFrame | None:
    """The gaze mapped onto the screen, per eye tracking frame (index ``Time (s)``, the raw eye
    area's timestamps): ``raw_eye_area, raw_pupil_area``, ``raw_screen_coordinates_{x,y}_cm``,
    ``raw_screen_coordinates_spherical_{x,y}_deg`` and, with ``include_filtered_data``, the same
    ``filtered_*`` columns (blinks and bad fits as NaN).

    None, as in AllenSDK, unless the file has both the raw and the filtered gaze mapping.
    """
    modules = {
        prefix: nwb.eye_tracking_group(f"{prefix}_gaze_mapping") for prefix in ("raw", "filtered")
    }
    if any(module is None for module in modules.values()):
        return None
    prefixes = ["raw", "filtered"] if include_filtered_data else ["raw"]
    wanted = [modules["raw"]["eye_area/timestamps"]]
    for prefix in prefixes:
        wanted += [modules[prefix][f"{name}/data"] for name in (*_GAZE_AREAS, *_GAZE_COORDINATES)]
    timestamps, *values = read_datasets(wanted)
    values = iter(values)
    columns: dict[str, np.ndarray] = {}
    for prefix in prefixes:
        for name in _GAZE_AREAS:
            columns[f"{prefix}_{name}"] = np.asarray(next(values))
        for pattern in _GAZE_COORDINATES.values():
            pairs = np.asarray(next(values))
            columns[f"{prefix}_{pattern.format(axis='x')}"] = pairs[:, 1]
            columns[f"{prefix}_{pattern.format(axis='y')}"] = pairs[:, 0]
    index = pd.Index(np.asarray(timestamps), name="Time (s)")
    return pd.DataFrame(columns, index=index)
