"""``EcephysProjectCache``'s table methods over the project CSVs: :class:`ProjectTables`.

The tables are built by the functions of :mod:`s3ecephys.allen.tables` (AllenSDK 2.16.2's steps,
documented there); this object holds the four CSVs as read, builds each merged intermediate once,
and answers every table method with a new DataFrame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import pandas as pd

from s3ecephys.allen.tables import (
    CsvSource,
    annotate_analysis_metrics,
    annotate_channels,
    annotate_probes,
    annotate_units,
    channel_table,
    prepare_probes,
    prepare_sessions,
    prepare_units,
    probe_table,
    read_project_csv,
    session_analysis_metrics_from_typewise,
    session_table,
    unit_table,
)

TypewiseMetricsLoader = Callable[[str], pd.DataFrame]
SessionMetricsLoader = Callable[[int], "pd.DataFrame | None"]


class ProjectTables:
    """The project CSVs, answering ``EcephysProjectCache``'s table methods with its results.

    Give it the four tables as :func:`read_project_csv` returns them (they are not modified), and
    optionally how to get the analysis metrics: ``typewise_metrics(session_type)`` returns a
    ``<session_type>_analysis_metrics.csv`` table, ``session_metrics(session_id)`` a
    ``session_<id>_analysis_metrics.csv`` table or ``None`` when there is no such file (then the
    session's rows of its type's table are used). Both are called only when metrics are asked for.

    Every method returns a new DataFrame that the caller may modify; the merged intermediate
    tables are computed once and kept.
    """

    def __init__(
        self,
        sessions: pd.DataFrame,
        probes: pd.DataFrame,
        channels: pd.DataFrame,
        units: pd.DataFrame,
        typewise_metrics: TypewiseMetricsLoader | None = None,
        session_metrics: SessionMetricsLoader | None = None,
    ) -> None:
        self._raw_sessions = sessions
        self._raw_probes = probes
        self._raw_channels = channels
        self._raw_units = units
        self._typewise_metrics_loader = typewise_metrics
        self._session_metrics_loader = session_metrics

    @classmethod
    def from_csvs(
        cls,
        sessions: CsvSource,
        probes: CsvSource,
        channels: CsvSource,
        units: CsvSource,
        typewise_metrics: TypewiseMetricsLoader | None = None,
        session_metrics: SessionMetricsLoader | None = None,
    ) -> ProjectTables:
        """Parse the four project CSVs (paths, open files, bytes): see :func:`read_project_csv`."""
        return cls(
            read_project_csv("sessions", sessions),
            read_project_csv("probes", probes),
            read_project_csv("channels", channels),
            read_project_csv("units", units),
            typewise_metrics=typewise_metrics,
            session_metrics=session_metrics,
        )

    # The CSV tables as given (shared, not copies: do not modify them).

    @property
    def raw_sessions(self) -> pd.DataFrame:
        """``sessions.csv`` as read."""
        return self._raw_sessions

    @property
    def raw_probes(self) -> pd.DataFrame:
        """``probes.csv`` as read (the LFP rate not yet divided)."""
        return self._raw_probes

    @property
    def raw_channels(self) -> pd.DataFrame:
        """``channels.csv`` as read."""
        return self._raw_channels

    @property
    def raw_units(self) -> pd.DataFrame:
        """``units.csv`` as read (all units, original column names)."""
        return self._raw_units

    # The intermediate tables, built once.

    @cached_property
    def _sessions(self) -> pd.DataFrame:
        return prepare_sessions(self._raw_sessions)

    @cached_property
    def _annotated_probes(self) -> pd.DataFrame:
        return annotate_probes(prepare_probes(self._raw_probes), self._sessions)

    @cached_property
    def _annotated_channels(self) -> pd.DataFrame:
        return annotate_channels(self._raw_channels, self._annotated_probes)

    @cached_property
    def _counted_units(self) -> pd.DataFrame:
        """The annotated units under the default filters: what every ``unit_count`` counts."""
        return self._annotated_units()

    def _annotated_units(
        self, filter_by_validity: bool = True, **unit_filter_kwargs: Any
    ) -> pd.DataFrame:
        units = prepare_units(self._raw_units, filter_by_validity, **unit_filter_kwargs)
        return annotate_units(units, self._annotated_channels)

    # EcephysProjectCache's table methods.

    def get_session_table(self, suppress: Sequence[str] | None = None) -> pd.DataFrame:
        """Sessions with counts and recorded structures, as ``get_session_table()``."""
        return session_table(
            self._sessions,
            self._annotated_probes,
            self._annotated_channels,
            self._counted_units,
            suppress,
        )

    def get_probes(self, suppress: Sequence[str] | None = None) -> pd.DataFrame:
        """Probes with counts and recorded structures, as ``get_probes()``."""
        return probe_table(
            self._annotated_probes, self._annotated_channels, self._counted_units, suppress
        )

    def get_channels(self, suppress: Sequence[str] | None = None) -> pd.DataFrame:
        """Channels with probe and session columns and unit counts, as ``get_channels()``."""
        return channel_table(self._annotated_channels, self._counted_units, suppress)

    def get_units(
        self,
        suppress: Sequence[str] | None = None,
        filter_by_validity: bool = True,
        **unit_filter_kwargs: Any,
    ) -> pd.DataFrame:
        """Filtered units with channel, probe and session columns, as ``get_units()``.

        ``amplitude_cutoff_maximum`` (0.1), ``presence_ratio_minimum`` (0.95) and
        ``isi_violations_maximum`` (0.5) bound the quality metrics; ``None`` removes a bound.
        """
        return unit_table(self._annotated_units(filter_by_validity, **unit_filter_kwargs), suppress)

    def get_all_session_types(self, **session_kwargs: Any) -> list[Any]:
        """Distinct ``session_type`` values in session-table order."""
        return self.get_session_table(**session_kwargs)["session_type"].unique().tolist()

    def get_all_full_genotypes(self, **session_kwargs: Any) -> list[Any]:
        """Distinct ``full_genotype`` values in session-table order."""
        return self.get_session_table(**session_kwargs)["full_genotype"].unique().tolist()

    def get_all_ages(self, **session_kwargs: Any) -> list[Any]:
        """Distinct ``age_in_days`` values in session-table order."""
        return self.get_session_table(**session_kwargs)["age_in_days"].unique().tolist()

    def get_all_sexes(self, **session_kwargs: Any) -> list[Any]:
        """Distinct ``sex`` values in session-table order."""
        return self.get_session_table(**session_kwargs)["sex"].unique().tolist()

    def get_structure_acronyms(self, **channel_kwargs: Any) -> list[Any]:
        """Distinct channel ``ecephys_structure_acronym`` values (NaN included), channel order."""
        return self.get_channels(**channel_kwargs)["ecephys_structure_acronym"].unique().tolist()

    def get_unit_analysis_metrics_by_session_type(
        self,
        session_type: str,
        annotate: bool = True,
        filter_by_validity: bool = True,
        **unit_filter_kwargs: Any,
    ) -> pd.DataFrame:
        """One session type's analysis metrics, joined onto ``get_units(...)`` when ``annotate``.

        An unknown ``session_type`` raises ``ValueError`` naming the known ones, before any
        metrics are loaded.
        """
        known_session_types = self.get_all_session_types()
        if session_type not in known_session_types:
            raise ValueError(
                f"unrecognized session type: {session_type}. Available types: {known_session_types}"
            )
        metrics = self._load_typewise_metrics(session_type)
        if not annotate:
            return metrics.copy()
        units = self.get_units(filter_by_validity=filter_by_validity, **unit_filter_kwargs)
        return annotate_analysis_metrics(metrics, units)

    def get_unit_analysis_metrics_for_session(
        self,
        session_id: int,
        annotate: bool = True,
        filter_by_validity: bool = True,
        **unit_filter_kwargs: Any,
    ) -> pd.DataFrame:
        """A session's analysis metrics, joined onto its ``get_units(...)`` rows when ``annotate``.

        An id that is not in sessions.csv raises ``ValueError``.
        """
        if session_id not in self._sessions.index:
            raise ValueError(f"unrecognized session id: {session_id}")
        loader = self._session_metrics_loader
        metrics = loader(session_id) if loader is not None else None
        if metrics is None:
            session_type = self._sessions.at[session_id, "session_type"]
            metrics = session_analysis_metrics_from_typewise(
                self._load_typewise_metrics(session_type),
                self._raw_units,
                self._raw_channels,
                self._raw_probes,
                session_id,
            )
        if not annotate:
            return metrics.copy()
        units = self.get_units(filter_by_validity=filter_by_validity, **unit_filter_kwargs)
        units = units.loc[(units["ecephys_session_id"] == session_id).to_numpy()]
        return annotate_analysis_metrics(metrics, units)

    def _load_typewise_metrics(self, session_type: str) -> pd.DataFrame:
        if self._typewise_metrics_loader is None:
            raise LookupError("no analysis metrics were given to these project tables")
        return self._typewise_metrics_loader(session_type)
