"""Who and what a session is: its id, start time, subject, counts and ``metadata``."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from s3ecephys.allen.session_api import SessionApi


class SessionIdentity:
    """The session's identity (AllenSDK's ``ecephys_session_id``, ``session_type``, subject
    properties, ``num_*`` counts and ``metadata``), from the file's header and subject."""

    api: SessionApi

    @cached_property
    def ecephys_session_id(self) -> int:
        """The session id (the file's ``identifier``)."""
        return self.api.get_ecephys_session_id()

    @cached_property
    def session_start_time(self) -> Any:
        """When the recording started: a timezone-aware ``datetime``, as pynwb parses it."""
        return self.api.get_session_start_time()

    @cached_property
    def _metadata(self) -> dict[str, Any]:
        return self.api.get_metadata()

    @property
    def session_type(self) -> str | None:
        """``brain_observatory_1.1`` or ``functional_connectivity`` (``/general/stimulus``)."""
        return self._metadata["stimulus_name"]

    @property
    def specimen_name(self) -> Any:
        """The mouse's specimen name (``/general/subject``)."""
        return self._metadata["specimen_name"]

    @property
    def age_in_days(self) -> Any:
        """The mouse's age in days at recording."""
        return self._metadata["age_in_days"]

    @property
    def sex(self) -> Any:
        """The mouse's sex (``M``/``F``)."""
        return self._metadata["sex"]

    @property
    def full_genotype(self) -> Any:
        """The mouse's full genotype (``wt/wt`` for wild type)."""
        return self._metadata["full_genotype"]

    @property
    def num_units(self) -> int:
        """How many units pass the session's filters (rows of ``units``)."""
        return len(self.units)

    @property
    def num_probes(self) -> int:
        """How many probes the session recorded with (rows of ``probes``)."""
        return len(self.probes)

    @property
    def num_channels(self) -> int:
        """How many channels the session has (rows of ``channels``)."""
        return len(self.channels)

    @property
    def num_stimulus_presentations(self) -> int:
        """How many stimulus presentations (rows of ``stimulus_presentations``)."""
        return len(self.stimulus_presentations)

    @property
    def metadata(self) -> dict[str, Any]:
        """The session's description in one dictionary, with AllenSDK's keys."""
        return {
            "specimen_name": self.specimen_name,
            "session_type": self.session_type,
            "full_genotype": self.full_genotype,
            "sex": self.sex,
            "age_in_days": self.age_in_days,
            "rig_equipment_name": self.rig_equipment_name,
            "num_units": self.num_units,
            "num_channels": self.num_channels,
            "num_probes": self.num_probes,
            "num_stimulus_presentations": self.num_stimulus_presentations,
            "session_start_time": self.session_start_time,
            "ecephys_session_id": self.ecephys_session_id,
            "structure_acronyms": self.structure_acronyms,
            "stimulus_names": self.stimulus_names,
        }
