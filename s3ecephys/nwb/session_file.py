"""The Allen session NWB file (``session_<id>.nwb``): what it holds, read by path, lazily.

Only HDF5 groups, datasets and attributes are used, never pynwb or the Allen extension types, so
files written by the 2020 Allen pipeline (NWB 2.2.2) and by newer pynwb (2.6+) read alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from s3ecephys.nwb.ragged import RaggedColumn
from s3ecephys.nwb.tables import (
    as_text,
    attribute_text,
    read_datasets,
    read_table,
    read_table_with,
)

ELECTRODES = "general/extracellular_ephys/electrodes"
RAGGED_UNIT_COLUMNS = ("spike_times", "spike_amplitudes", "waveform_mean")
_SUBJECT = "general/subject"


def first_present(root: Any, paths: list[str]) -> Any | None:
    """The first of ``paths`` that exists below ``root``, or None."""
    for path in paths:
        if path in root:
            return root[path]
    return None


def read_text_dataset(root: Any, path: str, default: str | None = None) -> str | None:
    """A scalar text dataset (``identifier``, ``session_start_time`` …), decoded; ``default``
    when absent."""
    if path not in root:
        return default
    value = as_text(root[path][()])
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value
    return str(value)


class SessionFile:
    """A session NWB opened with :func:`s3ecephys.hdf5.open_hdf5` (or h5py)."""

    def __init__(self, root: Any):
        self.root = root
        # Filled by ``units()``: the ragged columns' row ends travel with the unit table.
        self._unit_ids: np.ndarray | None = None
        self._ragged_ends: dict[str, np.ndarray] = {}

    @property
    def session_id(self) -> int:
        return int(read_text_dataset(self.root, "identifier"))

    @property
    def stimulus_notes(self) -> str | None:
        """``/general/stimulus``: the session type in Allen files."""
        return read_text_dataset(self.root, "general/stimulus")

    @property
    def session_start_time(self) -> str | None:
        """``/session_start_time`` as stored (ISO 8601 text)."""
        return read_text_dataset(self.root, "session_start_time")

    def subject(self) -> dict[str, Any]:
        """The subject's fields (``/general/subject`` datasets and attributes), decoded."""
        if _SUBJECT not in self.root:
            return {}
        group = self.root[_SUBJECT]
        fields: dict[str, Any] = {name: as_text(group.attrs[name]) for name in group.attrs}
        names = [name for name in group if not hasattr(group[name], "keys")]
        for name, value in zip(names, read_datasets([group[n] for n in names]), strict=True):
            value = as_text(value)
            fields[name] = value.item() if isinstance(value, np.ndarray) and value.size == 1 \
                else value
        return fields

    def electrode_groups(self) -> pd.DataFrame:
        """One row per probe, in the file's group order (index ``id``, the probe id):
        ``description`` (probeA..), ``location``, ``sampling_rate`` (of its device),
        ``lfp_sampling_rate``, ``has_lfp_data`` — as AllenSDK's ``get_probes`` lists them.
        Attributes only: no request."""
        ephys = self.root["general/extracellular_ephys"]
        rows = []
        for name in ephys:
            group = ephys[name]
            if not hasattr(group, "keys") or "probe_id" not in group.attrs:
                continue
            # The group links its device; files without the link keep it under its own name.
            device = first_present(group, ["device"])
            if device is None:
                device = first_present(self.root, [f"general/devices/{name}"])
            sampling_rate = device.attrs.get("sampling_rate") if device is not None else None
            rows.append(
                {
                    "id": int(group.attrs["probe_id"]),
                    "description": name,
                    "location": attribute_text(group, "location", ""),
                    "sampling_rate": float(sampling_rate) if sampling_rate is not None else np.nan,
                    "lfp_sampling_rate": float(group.attrs.get("lfp_sampling_rate", np.nan)),
                    "has_lfp_data": bool(group.attrs.get("has_lfp_data", False)),
                }
            )
        columns = ["id", "description", "location", "sampling_rate", "lfp_sampling_rate",
                   "has_lfp_data"]
        probes = pd.DataFrame(rows, columns=columns).set_index("id")
        # Text as ``object`` (pandas 3 would infer ``str``), as AllenSDK's frame has it.
        return probes.astype({"description": object, "location": object})

    def electrodes(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The electrodes table as stored (index ``id`` = channel id); only ``columns`` (those
        the file has) when given."""
        return read_table(self.root[ELECTRODES], columns=columns)

    def units(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The units table without its ragged columns (index ``id``); only ``columns`` (those
        the file has) when given.

        The ragged columns' ``_index`` datasets come in the same fetch, so that
        :meth:`ragged_unit_column` needs no further request; their values stay in the file.
        """
        table = self.root["units"]
        present = [name for name in RAGGED_UNIT_COLUMNS if f"{name}_index" in table]
        frame, ends = read_table_with(
            table,
            [table[f"{name}_index"] for name in present],
            columns=columns,
            exclude=RAGGED_UNIT_COLUMNS,
        )
        self._unit_ids = frame.index.to_numpy()
        self._ragged_ends.update(zip(present, ends, strict=True))
        return frame

    def ragged_unit_column(self, name: str) -> RaggedColumn:
        """``spike_times``, ``spike_amplitudes`` or ``waveform_mean`` as a lazy mapping (unit id
        → that unit's rows); no values are read here."""
        units = self.root["units"]
        if name not in units:
            raise KeyError(f"this session file's units table has no {name!r} column")
        if name in self._ragged_ends and self._unit_ids is not None:
            return RaggedColumn(units[name], self._ragged_ends[name], self._unit_ids)
        ends, ids = read_datasets([units[f"{name}_index"], units["id"]])
        return RaggedColumn(units[name], ends, ids)

    def presentation_tables(self) -> dict[str, pd.DataFrame]:
        """Each ``intervals/<stimulus>_presentations`` table, keyed by its group name."""
        if "intervals" not in self.root:
            return {}
        intervals = self.root["intervals"]
        return {
            name: read_table(intervals[name], exclude=("timeseries",))
            for name in intervals
            if name.endswith("_presentations")
        }

    def invalid_times(self) -> pd.DataFrame | None:
        """``intervals/invalid_times`` (start_time, stop_time, tags), None when absent."""
        if "intervals/invalid_times" not in self.root:
            return None
        return read_table(self.root["intervals/invalid_times"], exclude=("timeseries",))

    def running_speed(self, include_rotation: bool = False) -> pd.DataFrame:
        """``start_time, end_time, velocity`` (and ``net_rotation``), as AllenSDK builds it."""
        module = self.root["processing/running"]
        wanted = [
            module["running_speed/timestamps"],
            module["running_speed_end_times/timestamps"],
            module["running_speed/data"],
        ]
        if include_rotation:
            wanted.append(module["running_wheel_rotation/data"])
        values = read_datasets(wanted)
        frame = pd.DataFrame(
            {"start_time": values[0], "end_time": values[1], "velocity": values[2]}
        )
        if include_rotation:
            frame["net_rotation"] = values[3]
        return frame

    def optogenetic_stimulation(self) -> pd.DataFrame | None:
        """``processing/optotagging/optogenetic_stimulation`` without its tags and timeseries
        columns; None in sessions without it."""
        table = first_present(self.root, ["processing/optotagging/optogenetic_stimulation"])
        if table is None:
            return None
        return read_table(table, exclude=("tags", "timeseries"))

    def eye_tracking_group(self, name: str) -> Any | None:
        """A processing module of the eye tracking family (``eye_tracking``,
        ``raw_gaze_mapping``, ``filtered_gaze_mapping``, ``eye_tracking_rig_metadata``): Allen
        files keep them side by side; some writers nest the last three inside ``eye_tracking``."""
        return first_present(
            self.root, [f"processing/{name}", f"processing/eye_tracking/{name}"]
        )

    def pupil_data(self) -> pd.DataFrame | None:
        """Ellipse fits of corneal reflection, pupil and eye per frame (heights and widths are
        stored as half-axes and given here as full ones), indexed by ``Time (s)`` from the raw gaze
        mapping; None in sessions without eye tracking."""
        tracking = self.eye_tracking_group("eye_tracking")
        gaze = self.eye_tracking_group("raw_gaze_mapping")
        if tracking is None or gaze is None:
            return None
        fits = {"corneal_reflection": "cr", "pupil": "pupil", "eye": "eye"}
        fields = ("center_x", "center_y", "height", "width", "phi")
        wanted = [tracking[f"{prefix}_ellipse_fits/{field}"]
                  for prefix in fits.values() for field in fields]
        values = iter(read_datasets([*wanted, gaze["eye_area/timestamps"]]))
        columns = {}
        for name in fits:
            for field in fields:
                value = np.asarray(next(values))
                columns[f"{name}_{field}"] = 2 * value if field in ("height", "width") else value
        index = pd.Index(np.asarray(next(values)), name="Time (s)")
        return pd.DataFrame(columns, index=index)

    def rig_metadata(self) -> dict[str, Any] | None:
        """Eye tracking rig geometry (x/y/z rows, one column per vector with its unit) and
        equipment; None when the session has none."""
        module = self.eye_tracking_group("eye_tracking_rig_metadata")
        if module is None:
            return None
        meta = module.get("eye_tracking_rig_metadata", module)
        names = ("monitor_position", "camera_position", "led_position", "monitor_rotation",
                 "camera_rotation")
        values = read_datasets([meta[name] for name in names])
        geometry = pd.DataFrame(
            {
                f"{name}_{attribute_text(meta[name], 'unit', '')}": np.asarray(value)
                for name, value in zip(names, values, strict=True)
            },
            index=["x", "y", "z"],
        )
        return {"geometry": geometry, "equipment": attribute_text(meta, "equipment")}
