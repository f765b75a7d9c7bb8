"""What the mouse did during a session: running, eyes and gaze, optotagging stimulation."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import pandas as pd

from s3ecephys.allen.lazy_property import LazyProperty

if TYPE_CHECKING:
    from s3ecephys.allen.session_api import SessionApi


class SessionBehaviour:
    """``running_speed``, ``optogenetic_stimulation_epochs``, ``get_pupil_data``,
    ``get_screen_gaze_data`` and the eye tracking rig (``rig_geometry_data``,
    ``rig_equipment_name``)."""

    api: SessionApi

    running_speed = LazyProperty("get_running_speed")
    """start_time, end_time, velocity (cm/s)."""

    optogenetic_stimulation_epochs = LazyProperty("get_optogenetic_stimulation")
    """The optotagging table (index ``id``; start_time, stop_time, condition, level …); KeyError
    in sessions without optotagging (mice without a Cre line), as AllenSDK raises."""

    def get_pupil_data(self) -> pd.DataFrame | None:
        """Ellipse fits of corneal reflection, pupil and eye per frame (index ``Time (s)``);
        None when the session has no eye tracking."""
        return self.api.get_pupil_data()

    def get_screen_gaze_data(self, include_filtered_data: bool = False) -> pd.DataFrame | None:
        """Gaze position on the screen per eye tracking frame (index ``Time (s)``):
        ``raw_eye_area``, ``raw_pupil_area``, ``raw_screen_coordinates_{x,y}_cm``,
        ``raw_screen_coordinates_spherical_{x,y}_deg`` and, with ``include_filtered_data``,
        their ``filtered_*`` versions (blinks as NaN). None when the session has no eye
        tracking."""
        return self.api.get_screen_gaze_data(include_filtered_data=include_filtered_data)

    @cached_property
    def _rig_metadata(self) -> dict[str, Any] | None:
        return self.api.get_rig_metadata()

    @property
    def rig_geometry_data(self) -> pd.DataFrame | None:
        """Eye tracking rig geometry (rows x, y, z), None when the session has none."""
        return None if self._rig_metadata is None else self._rig_metadata["geometry"]

    @property
    def rig_equipment_name(self) -> str | None:
        """The eye tracking rig's name, None when the session has no rig metadata."""
        return None if self._rig_metadata is None else self._rig_metadata["equipment"]
