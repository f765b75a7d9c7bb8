"""A session's probes, channels and units, and the brain structures their channels sit in."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from s3ecephys.allen import spike_analysis, stimuli
from s3ecephys.allen.session_tables import acronym_column, merge_units

if TYPE_CHECKING:
    from s3ecephys.allen.session_api import SessionApi


class SessionProbes:
    """``probes``, ``channels``, ``units`` (AllenSDK's tables, read once and kept) and what
    is asked of them: structures, unit counts per structure, structure intervals."""

    api: SessionApi

    @cached_property
    def probes(self) -> pd.DataFrame:
        """One row per probe (index ``id``): ``description`` (probeA..), ``location``,
        ``sampling_rate``, ``lfp_sampling_rate`` (as the file states it), ``has_lfp_data``."""
        return self.api.get_probes()

    @cached_property
    def channels(self) -> pd.DataFrame:
        """The channels (index ``id``, file order): the file's ``structure_acronym`` and, from
        channels.csv, ``ecephys_structure_id``, ``ecephys_structure_acronym`` and the CCF
        coordinates (replacing the file's); only valid channels with ``filter_by_validity``."""
        return self.api.get_channels()

    @cached_property
    def units(self) -> pd.DataFrame:
        """Units passing the session's filters (index ``unit_id``), joined with their peak
        channel and probe, sorted by probe and position on it.

        The filters, as AllenSDK 2.16.2 applies them: with ``filter_by_validity``, units on
        valid channels with quality ``good`` (the column is then dropped); with
        ``filter_out_of_brain_units``, units whose peak channel has a structure in the file
        (``structure_acronym``, not channels.csv's); quality bounds as ``bound or inf``.
        """
        return merge_units(self.api.get_units(), self.channels, self.probes)

    @property
    def structure_acronyms(self) -> list:
        """The channels' structures, in order of first appearance (None/NaN included)."""
        return self.channels[acronym_column(self.channels)].unique().tolist()

    @property
    def structurewise_unit_counts(self) -> pd.Series:
        """Units per structure (``ecephys_structure_acronym``), most numerous first."""
        units = self.units
        if "ecephys_structure_acronym" not in units:
            # Opened without channels.csv: AllenSDK fails here; the file's acronyms do instead.
            units = units.rename(columns={"structure_acronym": "ecephys_structure_acronym"})
        return spike_analysis.structurewise_unit_counts(units)

    def channel_structure_intervals(
        self, channel_ids: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Runs of consecutive channels (in the order given) in one structure.

        Returns ``labels`` (each run's ``ecephys_structure_acronym``) and ``intervals`` (one
        longer: each run's first position in ``channel_ids``, then ``len(channel_ids)``), as
        AllenSDK's. Runs are told apart by ``ecephys_structure_id`` (NaN equal to NaN); a
        session opened without channels.csv, where AllenSDK fails, uses the file's
        ``structure_acronym`` for both. Warns when the channels span several probes.
        """
        ids = list(np.atleast_1d(channel_ids))
        if not ids:
            raise ValueError("channel_structure_intervals needs at least one channel id")
        channels = self.channels
        missing = pd.Index(ids).difference(channels.index)
        if len(missing):
            raise KeyError(
                f"channel id(s) {list(missing[:10])} are not among this session's channels "
                "(after its filters; see session.channels)"
            )
        table = channels.loc[ids]
        if table["probe_id"].nunique() > 1:
            warnings.warn(
                "Calculating structure boundaries across channels from multiple probes.",
                stacklevel=2,
            )
        label_column = acronym_column(table)
        id_column = "ecephys_structure_id" if "ecephys_structure_id" in table else label_column
        starts = stimuli.run_starts(table[id_column])
        intervals = np.append(starts, len(table))
        labels = table[label_column].to_numpy()[starts]
        return labels, intervals
