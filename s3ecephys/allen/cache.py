"""``EcephysProjectCache``: AllenSDK's entry point to the dataset, reading in place.

The project tables come from the four CSVs (downloaded once into the cache folder); sessions are
opened from the cache folder when their files are there (with no request, whatever the policy),
else in place from S3 or downloaded first, as the cache policy says (see
:mod:`s3ecephys.allen.files`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import xarray as xr

from s3ecephys.allen import manifest as layout
from s3ecephys.allen.dataset_tree import open_lfp_tree
from s3ecephys.allen.files import DatasetFiles, resolve_policy
from s3ecephys.allen.prefetch import (
    PrefetchReport,
    prefetch,
    project_paths,
    session_paths,
)
from s3ecephys.allen.project_tables import ProjectTables
from s3ecephys.allen.session import CHANNEL_OVERLAY_COLUMNS, EcephysSession
from s3ecephys.allen.spike_selection import UnitSpikeTimes, open_unit_spike_times
from s3ecephys.allen.tables import read_project_csv
from s3ecephys.hdf5 import open_hdf5
from s3ecephys.nwb.session_file import SessionFile
from s3ecephys.storage.cache_dir import user_cache_dir
from s3ecephys.storage.location import DataLocation


def default_cache_folder(location: DataLocation) -> Path:
    """Where a remote dataset's small files are kept when no cache folder is given: one folder
    per endpoint, bucket and prefix, so a mirror or a local S3 never mixes with the real bucket."""
    bucket_and_prefix = location.url.removeprefix("s3://").strip("/")
    options = location.storage_options
    endpoint = options.get("endpoint_url") or options.get("client_kwargs", {}).get("endpoint_url")
    host = urlsplit(endpoint).netloc.replace(":", "_") if endpoint else "aws"
    return user_cache_dir() / "datasets" / host / bucket_and_prefix


class EcephysProjectCache:
    """The Visual Coding – Neuropixels project: tables, sessions, LFP (AllenSDK's API).

    ``manifest`` names an AllenSDK cache folder's ``manifest.json`` (an existing cache, a bucket
    mounted on AWS, or a new folder); a file in that folder is used without asking the network,
    the rest is read in place from ``url`` (default: the public bucket). Without ``manifest``, use
    :meth:`from_s3`. ``policy`` (``"lazy"``, ``"local"``, ``"download"``, ``"auto"``; default
    from ``$S3ECEPHYS_CACHE_POLICY``) says what happens to a file that is not in the folder.
    """

    def __init__(
        self,
        manifest: str | os.PathLike[str] | None = None,
        *,
        url: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        policy: str | None = None,
        index_cache_dir: str | os.PathLike[str] | None = None,
    ):
        chosen = resolve_policy(policy, "auto" if manifest is not None else "lazy")
        remote = None if chosen == "local" else DataLocation.resolve(url, storage_options)
        if manifest is not None:
            path = Path(manifest).expanduser()
            if path.is_dir():
                path = path / layout.MANIFEST_FILENAME
            folder = layout.check_manifest(path) if path.exists() else path.parent
        elif remote is not None:
            folder = default_cache_folder(remote)
        else:
            raise ValueError("policy 'local' needs a manifest (the cache folder's manifest.json)")
        self.files = DatasetFiles(remote, folder, chosen)
        self.index_cache_dir = index_cache_dir

    @classmethod
    def from_s3(
        cls,
        url: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        policy: str | None = None,
        index_cache_dir: str | os.PathLike[str] | None = None,
    ) -> EcephysProjectCache:
        """Read the dataset in place from S3 (default: the public bucket, anonymously).

        ``cache_dir`` is where the CSVs (and, with policy ``"download"`` or after
        :meth:`prefetch`, NWB files) are kept, in AllenSDK's layout; default: a folder under
        ``$S3ECEPHYS_CACHE_DIR``. Files already there are read from there.
        ``index_cache_dir`` is where file indexes are kept (default: the user cache folder).
        """
        manifest_path = None if cache_dir is None else Path(cache_dir) / "manifest.json"
        return cls(
            manifest_path,
            url=url,
            storage_options=storage_options,
            policy=policy or ("lazy" if cache_dir is None else None),
            index_cache_dir=index_cache_dir,
        )

    @classmethod
    def from_warehouse(
        cls, manifest: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> EcephysProjectCache:
        """AllenSDK's classic constructor: a cache folder at ``manifest`` filled on demand (files
        not there yet are downloaded, verified, before they are read; files there are read
        without a request)."""
        kwargs.setdefault("policy", "download")
        unsupported = set(kwargs) - {"policy", "url", "storage_options", "index_cache_dir"}
        for name in unsupported:
            # AllenSDK's warehouse arguments (scheme, host, timeout ...) mean nothing here.
            kwargs.pop(name)
        return cls(manifest or "ecephys_cache_dir/manifest.json", **kwargs)

    @classmethod
    def fixed(cls, manifest: str | os.PathLike[str]) -> EcephysProjectCache:
        """Only the files already in the cache folder; no network (AllenSDK's ``fixed``)."""
        return cls(manifest, policy="local")

    def __repr__(self) -> str:
        return f"EcephysProjectCache({self.files!r})"

    # -- project tables --------------------------------------------------------------------------

    def _csv(self, relative: str, kind: str) -> pd.DataFrame:
        with self.files.open_small(relative) as handle:
            return read_project_csv(kind, handle)

    @cached_property
    def _tables(self) -> ProjectTables:
        csvs = [layout.sessions_csv(), layout.probes_csv(), layout.channels_csv(),
                layout.units_csv()]
        missing = [name for name in csvs if not self.files.local_path(name).is_file()]
        if self.files.remote is not None and missing:
            # A wrong endpoint, bucket or prefix is named within seconds, instead of surfacing
            # as a failed CSV read after the retries of every layer underneath.
            self.files.remote.check()

        def typewise(session_type: str) -> pd.DataFrame:
            return self._csv(layout.typewise_analysis_metrics(session_type), "analysis_metrics")

        kinds = ("sessions", "probes", "channels", "units")
        return ProjectTables(
            *(self._csv(name, kind) for name, kind in zip(csvs, kinds, strict=True)),
            typewise_metrics=typewise,
        )

    def get_session_table(self, suppress: Sequence[str] | None = None) -> pd.DataFrame:
        """All sessions with unit, channel and probe counts and recorded structures."""
        return self._tables.get_session_table(suppress)

    def get_probes(self, suppress: Sequence[str] | None = None) -> pd.DataFrame:
        """All probes (LFP rate already divided by its subsampling factor)."""
        return self._tables.get_probes(suppress)

    def get_channels(self, suppress: Sequence[str] | None = None) -> pd.DataFrame:
        """All channels with their probe's and session's columns."""
        return self._tables.get_channels(suppress)

    def get_units(
        self,
        suppress: Sequence[str] | None = None,
        filter_by_validity: bool = True,
        **unit_filter_kwargs: Any,
    ) -> pd.DataFrame:
        """Units passing the quality filters (AllenSDK defaults: amplitude_cutoff <= 0.1,
        presence_ratio >= 0.95, isi_violations <= 0.5; None removes a bound)."""
        return self._tables.get_units(suppress, filter_by_validity, **unit_filter_kwargs)

    def get_unit_analysis_metrics_by_session_type(
        self, session_type: str, annotate: bool = True, filter_by_validity: bool = True,
        **unit_filter_kwargs: Any,
    ) -> pd.DataFrame:
        """One session type's stimulus metrics, joined onto the filtered units."""
        return self._tables.get_unit_analysis_metrics_by_session_type(
            session_type, annotate, filter_by_validity, **unit_filter_kwargs
        )

    def get_unit_analysis_metrics_for_session(
        self, session_id: int, annotate: bool = True, filter_by_validity: bool = True,
        **unit_filter_kwargs: Any,
    ) -> pd.DataFrame:
        """One session's stimulus metrics, joined onto its filtered units."""
        return self._tables.get_unit_analysis_metrics_for_session(
            session_id, annotate, filter_by_validity, **unit_filter_kwargs
        )

    def get_all_session_types(self) -> list:
        """The session types of the session table, each once, in its order."""
        return self._tables.get_all_session_types()

    def get_all_full_genotypes(self) -> list:
        """The full genotypes of the session table, each once, in its order."""
        return self._tables.get_all_full_genotypes()

    def get_all_ages(self) -> list:
        """The ages in days of the session table, each once, in its order."""
        return self._tables.get_all_ages()

    def get_all_sexes(self) -> list:
        """The sexes of the session table, each once, in its order."""
        return self._tables.get_all_sexes()

    def get_structure_acronyms(self) -> list:
        """The structure acronyms of the channel table, each once (NaN included), in its order."""
        return self._tables.get_structure_acronyms()

    # -- sessions --------------------------------------------------------------------------------

    def _check_session(self, session_id: int) -> int:
        sessions = self._tables.raw_sessions
        session_id = int(session_id)
        if session_id not in sessions.index:
            known = sorted(int(s) for s in sessions.index)
            nearby = sorted(known, key=lambda s: abs(s - session_id))[:5]
            raise ValueError(
                f"unknown session id {session_id}; nearest known ids: {sorted(nearby)} "
                f"(cache.get_session_table() lists all {len(known)})"
            )
        return session_id

    def get_session_data(
        self, session_id: int, filter_by_validity: bool = True, **unit_filter_kwargs: Any
    ) -> EcephysSession:
        """Open one session in place (only its index and small tables are read now)."""
        session_id = self._check_session(session_id)
        source = self.files.source(layout.session_nwb(session_id))
        nwb = SessionFile(
            open_hdf5(source.url, storage_options=source.storage_options,
                      cache_dir=self.index_cache_dir)
        )
        channels = self._tables.raw_channels
        overlay = channels.loc[
            channels["ecephys_probe_id"].isin(self._session_probe_ids(session_id)),
            [c for c in CHANNEL_OVERLAY_COLUMNS if c in channels],
        ]

        def open_lfp(probe_id: int) -> Any:
            lfp = self.files.source(layout.probe_lfp_nwb(session_id, probe_id))
            return open_hdf5(lfp.url, storage_options=lfp.storage_options,
                             cache_dir=self.index_cache_dir)

        return EcephysSession(
            nwb,
            open_lfp=open_lfp,
            channel_overlay=overlay,
            filter_by_validity=filter_by_validity,
            **unit_filter_kwargs,
        )

    def _session_probe_ids(self, session_id: int) -> list[int]:
        probes = self._tables.raw_probes
        return list(probes.index[probes["ecephys_session_id"] == session_id])

    # -- local cache -----------------------------------------------------------------------------

    def prefetch(
        self,
        session_ids: Iterable[int] | None = None,
        lfp: bool = False,
        *,
        progress: bool = True,
    ) -> PrefetchReport:
        """Download the project tables and these sessions (all when None), with their LFP files
        if ``lfp``, into the cache folder: verified, resumable, with progress bars."""
        if self.files.policy == "local":
            raise ValueError("this cache is local-only (policy 'local'): nothing to download")
        sessions = self._tables.raw_sessions
        paths = project_paths(sessions["session_type"]) + session_paths(
            sessions, self._tables.raw_probes, session_ids, lfp=lfp
        )
        return prefetch(self.files, paths, progress=progress)

    # -- many sessions as one lazy object (s3ecephys.allen.dataset_tree, spike_selection) --------

    def open_lfp(
        self,
        channels: pd.DataFrame,
        *,
        session_types: Sequence[str] | str | None = None,
        stimulus_name: str | None = None,
        time: tuple[float, float] | None = None,
        mask_invalid_intervals: bool = True,
        progress: bool = False,
    ) -> xr.DataTree:
        """The LFP of these channels (rows of :meth:`get_channels`) of all their sessions, as
        one lazy ``xarray.DataTree`` ``/session_<id>/probe_<id>``; see
        :func:`s3ecephys.allen.dataset_tree.open_lfp_tree`."""
        return open_lfp_tree(
            self, channels, session_types=session_types, stimulus_name=stimulus_name,
            time=time, mask_invalid_intervals=mask_invalid_intervals, progress=progress,
        )

    def open_spikes(
        self,
        units: pd.DataFrame,
        *,
        session_types: Sequence[str] | str | None = None,
        time: tuple[float, float] | None = None,
    ) -> UnitSpikeTimes:
        """The spike times of these units (rows of :meth:`get_units`) of all their sessions, as
        one lazy mapping ``unit id -> times``; see
        :class:`s3ecephys.allen.spike_selection.UnitSpikeTimes`."""
        return open_unit_spike_times(self, units, session_types=session_types, time=time)
