"""The Allen probe LFP file (``probe_<id>_lfp.nwb``): the series, its channels, the CSD."""

from __future__ import annotations

from typing import Any

import numpy as np

from s3ecephys.nwb.session_file import ELECTRODES, first_present
from s3ecephys.nwb.tables import attribute_text, read_datasets

CSD = "processing/current_source_density/ecephys_csd"


class LfpFile:
    """A probe's LFP NWB opened with :func:`s3ecephys.hdf5.open_hdf5` (or h5py)."""

    def __init__(self, root: Any, probe_id: int):
        self.root = root
        self.probe_id = int(probe_id)
        # AllenSDK's path (the series inside its LFP container) first, then the soft link seen
        # on real files beside it.
        self.series = first_present(
            root,
            [
                f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data",
                f"acquisition/probe_{probe_id}_lfp_data",
            ],
        )
        if self.series is None:
            raise KeyError(
                f"no LFP series for probe {probe_id} in this file (looked for "
                f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data); is it the LFP "
                "file of that probe?"
            )

    @property
    def data(self) -> Any:
        """(time, channel) float32 volts, as a lazy dataset."""
        return self.series["data"]

    @property
    def timestamps(self) -> Any:
        """The samples' times (s, session clock), as a lazy dataset."""
        return self.series["timestamps"]

    @property
    def unit(self) -> str | None:
        return attribute_text(self.data, "unit")

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """The series' timestamps (float64 s) and the file's electrode ids (int64, its LFP
        channels in column order), in one fetch.

        The true sampling rate is in the timestamps: some files' electrode group states half of
        it in ``lfp_sampling_rate``. Through the engine, the timestamps (~96 MB for a real
        probe) are kept beside the file's index after the first read: a later session reopening
        the probe reads none of them again.
        """
        cached_values = getattr(self.root, "cached_values", None)
        if cached_values is not None:
            # The chunk tables of both arrays in one walk of their B-trees (the data's is needed
            # next, by get_lfp's dask array; each alone would cost its tree's levels).
            self.root.load_chunk_tables([self.timestamps.name, self.data.name])
            times = cached_values(self.timestamps.name)
            ids = self.root[f"{ELECTRODES}/id"][()]
        else:
            times, ids = read_datasets([self.timestamps, self.root[f"{ELECTRODES}/id"]])
        return np.asarray(times, dtype=np.float64), np.asarray(ids, dtype=np.int64)

    def csd(self) -> dict[str, np.ndarray]:
        """The current source density: ``data`` (time, virtual channel), ``timestamps``,
        ``x_positions`` and ``y_positions`` of the virtual electrodes."""
        group = self.root[CSD]
        series = first_present(group, ["current_source_density"])
        if series is None:
            # The CSD container holds exactly one TimeSeries, whatever a writer named it.
            series = next(
                group[name] for name in group
                if hasattr(group[name], "keys") and "data" in group[name]
            )
        data, timestamps, x, y = read_datasets(
            [
                series["data"],
                series["timestamps"],
                group["virtual_electrode_x_positions"],
                group["virtual_electrode_y_positions"],
            ]
        )
        return {"data": data, "timestamps": timestamps, "x_positions": x, "y_positions": y}
