"""``EcephysSession``: AllenSDK's session object, read in place.

Attribute and method names, tables, filters and results follow AllenSDK 2.16.2. What differs is
what happens underneath: opening a session reads the file's index and a few small tables, never
the ragged spike, amplitude or waveform arrays; ``spike_times`` fetches a unit's spikes (one byte
range) when asked; ``get_lfp`` returns a dask-backed DataArray that reads only the chunks a
computation touches.

The session is put together from one piece per concern, each in its own module: identity
(:mod:`~s3ecephys.allen.session_identity`), probes, channels and units
(:mod:`~s3ecephys.allen.session_probes`), spikes (:mod:`~s3ecephys.allen.session_spikes`),
stimuli (:mod:`~s3ecephys.allen.session_stimuli`), LFP and CSD
(:mod:`~s3ecephys.allen.session_lfp`), behaviour and eye tracking
(:mod:`~s3ecephys.allen.session_behaviour`); all read through ``api``
(:mod:`~s3ecephys.allen.session_api`), as AllenSDK's session reads through its API object.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from s3ecephys.allen.lazy_property import LazyProperty
from s3ecephys.allen.session_api import SessionApi
from s3ecephys.allen.session_behaviour import SessionBehaviour
from s3ecephys.allen.session_identity import SessionIdentity
from s3ecephys.allen.session_lfp import SessionLfp
from s3ecephys.allen.session_probes import SessionProbes
from s3ecephys.allen.session_spikes import SessionSpikes
from s3ecephys.allen.session_stimuli import SessionStimuli
from s3ecephys.allen.session_tables import CHANNEL_FILTERING, CHANNEL_OVERLAY_COLUMNS
from s3ecephys.hdf5 import open_hdf5
from s3ecephys.nwb.session_file import SessionFile

# The channel constants stay importable from here (the project cache and tests use them).
__all__ = ["CHANNEL_FILTERING", "CHANNEL_OVERLAY_COLUMNS", "EcephysSession"]


class EcephysSession(
    SessionIdentity,
    SessionProbes,
    SessionSpikes,
    SessionStimuli,
    SessionLfp,
    SessionBehaviour,
):
    """One recording session (AllenSDK's ``EcephysSession``), read in place.

    Build one with ``EcephysProjectCache.get_session_data`` or :meth:`from_nwb_path`. Tables are
    read when first used and kept; ragged per-unit data (spike times, amplitudes, mean
    waveforms) is read per unit, many units in one concurrent round (``prefetch``).
    """

    # AllenSDK's sessions carry the descriptor class their lazy tables are made with.
    LazyProperty = LazyProperty

    def __init__(
        self,
        nwb: SessionFile,
        *,
        open_lfp: Callable[[int], Any] | None = None,
        channel_overlay: pd.DataFrame | None = None,
        filter_by_validity: bool = True,
        filter_out_of_brain_units: bool = True,
        test: bool = False,
        **unit_filters: Any,
    ):
        self._nwb = nwb
        self._api = SessionApi(
            nwb,
            open_lfp=open_lfp,
            channel_overlay=channel_overlay,
            filter_by_validity=filter_by_validity,
            filter_out_of_brain_units=filter_out_of_brain_units,
            **unit_filters,
        )
        if test:
            self._api.test()

    @property
    def api(self) -> SessionApi:
        """The session file's readers, AllenSDK's ``EcephysNwbSessionApi`` methods
        (``get_running_speed(include_rotation=True)``, ``get_raw_running_data()`` …)."""
        return self._api

    @classmethod
    def from_nwb_path(
        cls,
        path: str | os.PathLike[str],
        nwb_version: int = 2,
        api_kwargs: Mapping[str, Any] | None = None,
        *,
        storage_options: Mapping[str, Any] | None = None,
        probe_lfp_paths: Mapping[int, str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> EcephysSession:
        """A session from one NWB file (``s3://`` URL or local path), like AllenSDK's.

        Without project CSVs, channels keep the file's own structures and coordinates (there is
        no ``ecephys_structure_acronym``/``ecephys_structure_id``); units are filtered as in
        AllenSDK, the out-of-brain filter using the file's acronyms. Unit filters
        (``amplitude_cutoff_maximum`` …, ``filter_by_validity``) may be given as keywords or,
        as in AllenSDK, in ``api_kwargs``. Without ``probe_lfp_paths`` (probe id → URL or
        path), LFP files are looked for beside the session file as ``probe_<id>_lfp.nwb``.
        Only NWB 2 files are read (``nwb_version`` 2 or more, as AllenSDK's; the NWB 1 files
        of its ``EcephysNwb1Api`` are not part of the published dataset).
        """
        if int(nwb_version) < 2:
            raise ValueError(
                f"nwb_version {nwb_version!r} is not supported: s3ecephys reads NWB 2 files "
                "(the Visual Coding - Neuropixels files are NWB 2.2.2)"
            )
        path = os.fspath(path)
        options = dict(storage_options or {})
        nwb = SessionFile(open_hdf5(path, storage_options=options, cache_dir=cache_dir))
        folder = path.rsplit("/", 1)[0]
        lfp_paths = {int(k): v for k, v in (probe_lfp_paths or {}).items()}

        def open_lfp(probe_id: int) -> Any:
            lfp_path = lfp_paths.get(probe_id, f"{folder}/probe_{probe_id}_lfp.nwb")
            return open_hdf5(lfp_path, storage_options=options, cache_dir=cache_dir)

        return cls(nwb, open_lfp=open_lfp, **{**dict(api_kwargs or {}), **kwargs})

    def __repr__(self) -> str:
        return f"<EcephysSession {self.ecephys_session_id} ({self.session_type})>"
