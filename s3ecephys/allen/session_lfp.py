"""A session's LFP and current source density, one probe at a time, lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING

import xarray as xr

from s3ecephys.allen import stimuli

if TYPE_CHECKING:
    from s3ecephys.allen.session_api import SessionApi
    from s3ecephys.nwb.lfp_file import LfpFile


class SessionLfp:
    """``get_lfp`` (masked by the session's invalid intervals) and
    ``get_current_source_density``; the probe's LFP file is opened once, by the API."""

    api: SessionApi

    def _lfp_file(self, probe_id: int) -> LfpFile:
        """The probe's LFP file, opened once (by the API, which the session shares)."""
        return self.api._lfp_file(probe_id)

    def get_lfp(self, probe_id: int, mask_invalid_intervals: bool = True) -> xr.DataArray:
        """The probe's LFP as a lazy DataArray ``LFP`` (time, channel), float32 volts.

        ``time`` (float64 s) and ``channel`` (int64 ids of the LFP file's electrodes) are read
        once per probe. With ``mask_invalid_intervals``, samples inside invalid intervals tagged
        ``all_probes`` or the probe's name are NaN; the masking stays lazy. Only a computation
        reads data, and only the chunks its selection needs.
        """
        probe_id = int(probe_id)
        array = self.api.get_lfp(probe_id)
        if mask_invalid_intervals:
            probe_name = self.probes.loc[probe_id, "description"]
            invalid = stimuli.invalid_sample_mask(
                array["time"].values, self.invalid_times, ["all_probes", probe_name]
            )
            if invalid.any():
                array = array.where(xr.DataArray(~invalid, dims="time"))
        return array

    def get_current_source_density(self, probe_id: int) -> xr.DataArray:
        """The probe's CSD: DataArray ``CSD`` (virtual_channel_index, time) with coordinates
        ``vertical_position`` and ``horizontal_position`` of the virtual electrodes."""
        return self.api.get_current_source_density(probe_id)
