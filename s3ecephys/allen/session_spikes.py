"""A session's spikes: per-unit spike times, amplitudes and mean waveforms (read per unit on
access), and spikes counted around stimulus presentations."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from s3ecephys.allen import spike_analysis, stimuli

if TYPE_CHECKING:
    from s3ecephys.allen.session_api import SessionApi


class SessionSpikes:
    """``spike_times``, ``spike_amplitudes``, ``mean_waveforms`` and the spike statistics
    around presentations (``presentationwise_*``, ``conditionwise_spike_statistics``)."""

    api: SessionApi

    @cached_property
    def spike_times(self) -> Mapping[int, np.ndarray]:
        """``unit id -> spike times (s, float64)`` for the session's units; each unit's spikes
        are read when first used, ``prefetch(ids)`` reads many in one concurrent round."""
        scopes = [*self.probes["description"], "all_probes"]
        if not stimuli.filter_invalid_times_by_tags(self.invalid_times, scopes).empty:
            warnings.warn(
                "Session includes invalid time intervals that could be accessed with the "
                "attribute 'invalid_times', Spikes within these intervals are invalid and may "
                "need to be excluded from the analysis.",
                # The caller's line, above functools' cached_property.
                stacklevel=3,
            )
        # AllenSDK keeps the API's dictionary order, dropping the units the filters removed.
        return self.api.get_spike_times().restricted_to(self.units.index)

    @cached_property
    def spike_amplitudes(self) -> Mapping[int, np.ndarray]:
        """``unit id -> spike amplitudes`` (read per unit on access). As in AllenSDK, every unit
        of the file is there, the session's filters notwithstanding."""
        return self.api.get_spike_amplitudes()

    @cached_property
    def mean_waveforms(self) -> Mapping[int, xr.DataArray]:
        """``unit id -> DataArray (channel_id, time)`` of each session unit's mean waveform, read
        on access: rows of channels absent from ``channels`` are dropped, time in seconds."""
        channels = self.channels
        lookup = {
            int(probe_id): pd.Series(group.index.to_numpy(), index=group["probe_channel_number"])
            for probe_id, group in channels.groupby("probe_id")
        }
        units = self.units
        probe_of_unit = units["probe_id"].astype(np.int64)
        rates = self.probes["sampling_rate"]

        def build(unit_id: int, waveform: np.ndarray) -> xr.DataArray:
            probe_id = int(probe_of_unit[unit_id])
            rows = np.arange(waveform.shape[0])
            by_number = lookup.get(probe_id, pd.Series(dtype=np.int64))
            channel_ids = by_number.reindex(rows, fill_value=-1).to_numpy(dtype=np.int64)
            array = xr.DataArray(
                waveform,
                dims=["channel_id", "time"],
                coords={
                    "channel_id": channel_ids,
                    "time": np.arange(waveform.shape[1]) / rates[probe_id],
                },
            )
            return array[array["channel_id"] != -1]

        return self.api.get_mean_waveforms().restricted_to(units.index, build)

    # -- spikes around stimuli -------------------------------------------------------------------

    def presentationwise_spike_counts(
        self,
        bin_edges: Sequence[float],
        stimulus_presentation_ids: Sequence[int],
        unit_ids: Sequence[int],
        binarize: bool = False,
        dtype: Any = None,
        large_bin_size_threshold: float = 0.001,
        time_domain_callback: Callable | None = None,
    ) -> xr.DataArray:
        """Spike counts per presentation, bin (edges relative to onset, both inclusive) and
        unit: DataArray (stimulus_presentation_id, time_relative_to_stimulus_onset, unit_id)."""
        return spike_analysis.presentationwise_spike_counts(
            self.spike_times,
            self._presentations(stimulus_presentation_ids),
            np.asarray(bin_edges),
            self._unit_ids(unit_ids),
            binarize=binarize,
            dtype=dtype,
            large_bin_size_threshold=large_bin_size_threshold,
            time_domain_callback=time_domain_callback,
        )

    def presentationwise_spike_times(
        self,
        stimulus_presentation_ids: Sequence[int] | None = None,
        unit_ids: Sequence[int] | None = None,
    ) -> pd.DataFrame:
        """Each spike inside a presentation ``(start, stop]``, indexed by spike time."""
        return spike_analysis.presentationwise_spike_times(
            self.spike_times,
            self._presentations(stimulus_presentation_ids),
            self._unit_ids(unit_ids),
        )

    def conditionwise_spike_statistics(
        self,
        stimulus_presentation_ids: Sequence[int] | None = None,
        unit_ids: Sequence[int] | None = None,
        use_rates: bool = False,
    ) -> pd.DataFrame:
        """Spike count, mean, standard deviation (ddof=1) and SEM per unit and stimulus
        condition, over the chosen presentations (index ``(unit_id, stimulus_condition_id)``)."""
        return spike_analysis.conditionwise_spike_statistics(
            self.spike_times,
            self._presentations(stimulus_presentation_ids),
            # None: only the units that spiked appear, as in AllenSDK.
            None if unit_ids is None else self._unit_ids(unit_ids),
            use_rates=use_rates,
        )

    def _presentations(self, ids: Sequence[int] | int | None) -> pd.DataFrame:
        table = self.stimulus_presentations
        if ids is None:
            return table
        ids = list(np.atleast_1d(ids))
        missing = pd.Index(ids).difference(table.index)
        if len(missing):
            raise KeyError(f"stimulus presentation id(s) {list(missing[:10])} not in this session")
        return table.loc[ids]

    def _unit_ids(self, ids: Sequence[int] | int | None) -> np.ndarray:
        if ids is None:
            return self.units.index.to_numpy()
        ids = list(np.atleast_1d(ids))
        missing = pd.Index(ids).difference(self.units.index)
        if len(missing):
            raise KeyError(
                f"unit id(s) {list(missing[:10])} are not among this session's units (after its "
                "filters; see session.units)"
            )
        return np.asarray(ids)
