"""A session's stimuli: presentations, conditions, epochs, parameter values and the invalid
intervals that blank some presentations."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from s3ecephys.allen import stimuli

if TYPE_CHECKING:
    from s3ecephys.allen.session_api import SessionApi


class SessionStimuli:
    """``stimulus_presentations`` and what AllenSDK derives from it, and ``invalid_times``."""

    api: SessionApi

    # The psychopy settings hidden from ``stimulus_presentations`` (AllenSDK's class attribute).
    DETAILED_STIMULUS_PARAMETERS = stimuli.DETAILED_STIMULUS_PARAMETERS

    @cached_property
    def invalid_times(self) -> pd.DataFrame:
        """Intervals of bad data (index ``id``; start_time, stop_time, tags = [scope, id,
        label]); a frame without columns (and an object index, as pandas 1.5 gave it under
        AllenSDK) when there are none."""
        return self.api.get_invalid_times()

    def get_invalid_times(self) -> pd.DataFrame:
        """:attr:`invalid_times` (AllenSDK's method form)."""
        return self.invalid_times

    @cached_property
    def _presentations_and_conditions(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        nwb = self.api.nwb
        return stimuli.build_stimulus_presentations(nwb.presentation_tables(), nwb.invalid_times())

    @property
    def stimulus_presentations(self) -> pd.DataFrame:
        """Every presentation of every stimulus, sorted by start time (index
        ``stimulus_presentation_id``), without the detailed psychopy parameters."""
        return stimuli.remove_detailed_stimulus_parameters(self._presentations_and_conditions[0])

    @property
    def stimulus_conditions(self) -> pd.DataFrame:
        """One row per distinct combination of stimulus parameters (``stimulus_condition_id``)."""
        return self._presentations_and_conditions[1]

    @property
    def stimulus_names(self) -> list:
        """The names of the stimuli shown, in order of first presentation."""
        return self.stimulus_presentations["stimulus_name"].unique().tolist()

    @cached_property
    def inter_presentation_intervals(self) -> pd.DataFrame:
        """``interval`` (s) from each presentation's stop to the next one's start, indexed by
        ``(from_presentation_id, to_presentation_id)``."""
        presentations = self.stimulus_presentations
        ids = presentations.index.to_numpy()
        intervals = pd.DataFrame(
            {
                "from_presentation_id": ids[:-1],
                "to_presentation_id": ids[1:],
                "interval": presentations["start_time"].to_numpy()[1:]
                - presentations["stop_time"].to_numpy()[:-1],
            }
        )
        return intervals.set_index(["from_presentation_id", "to_presentation_id"])

    def get_inter_presentation_intervals_for_stimulus(
        self, stimulus_names: str | Sequence[str]
    ) -> pd.DataFrame:
        """The inter-presentation intervals between presentations of ``stimulus_names``."""
        names = [stimulus_names] if isinstance(stimulus_names, str) else list(stimulus_names)
        presentations = self.stimulus_presentations
        chosen = presentations.index[presentations["stimulus_name"].isin(names)]
        intervals = self.inter_presentation_intervals
        keep = intervals.index.isin(chosen, level="from_presentation_id") & intervals.index.isin(
            chosen, level="to_presentation_id"
        )
        return intervals[keep]

    def get_stimulus_table(
        self,
        stimulus_names: Sequence[str] | None = None,
        include_detailed_parameters: bool = False,
        include_unused_parameters: bool = False,
    ) -> pd.DataFrame:
        """The presentations of ``stimulus_names`` (default: all) with the parameter columns they
        use (all of them with ``include_unused_parameters``; psychopy's detailed ones with
        ``include_detailed_parameters``)."""
        return stimuli.get_stimulus_table(
            self._presentations_and_conditions[0],
            stimulus_names=stimulus_names,
            include_detailed_parameters=include_detailed_parameters,
            include_unused_parameters=include_unused_parameters,
        )

    def get_stimulus_epochs(
        self, duration_thresholds: Mapping[str, float] | None = None
    ) -> pd.DataFrame:
        """Blocks of one stimulus (start_time, stop_time, duration, stimulus_name,
        stimulus_block); spontaneous blocks under 90 s left out by default."""
        return stimuli.get_stimulus_epochs(
            self.stimulus_presentations, duration_thresholds=duration_thresholds
        )

    def get_stimulus_parameter_values(
        self, stimulus_presentation_ids: Sequence[int] | None = None, drop_nulls: bool = True
    ) -> dict[str, np.ndarray]:
        """Each stimulus parameter's distinct values over the chosen presentations."""
        return stimuli.get_stimulus_parameter_values(
            self.stimulus_presentations,
            stimulus_presentation_ids=stimulus_presentation_ids,
            drop_nulls=drop_nulls,
        )

    def get_parameter_values_for_stimulus(
        self, stimulus_name: str, drop_nulls: bool = True
    ) -> dict[str, np.ndarray]:
        """Each parameter's distinct values over the presentations of ``stimulus_name`` (in
        order of first appearance; ``"null"`` last when ``drop_nulls`` is False and the
        parameter does not apply to some of them). A name the session never showed gives
        ``{}`` with a warning, as in AllenSDK."""
        ids = self.get_stimulus_table([stimulus_name]).index.to_numpy()
        if not len(ids):
            warnings.warn(
                f"no presentation of {stimulus_name!r} in this session (its stimuli: "
                f"{self.stimulus_names}): filtering to an empty set of stimulus_presentations",
                stacklevel=2,
            )
        return self.get_stimulus_parameter_values(ids, drop_nulls=drop_nulls)
