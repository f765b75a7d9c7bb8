"""Filling and checking a cache folder: which files a selection needs, downloads, verification.

A prefetch HEADs every file first, so it can say before downloading anything how many bytes are
still missing and whether the disk holds them; then it downloads file after file (each in
concurrent parts), keeps going when one fails and ends with a summary. Interrupted, it resumes on
the next run from each file's journal.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd
from tqdm.auto import tqdm

from s3ecephys.allen import manifest
from s3ecephys.allen.files import DatasetFiles
from s3ecephys.storage.download import (
    DownloadError,
    check_local_file,
    ensure_free_space,
    part_path,
)

_HEAD_CONCURRENCY = 16


def project_paths(session_types: Iterable[str]) -> list[str]:
    """The project tables: the four CSVs and the analysis metrics of each session type."""
    tables = [
        manifest.sessions_csv(),
        manifest.probes_csv(),
        manifest.channels_csv(),
        manifest.units_csv(),
    ]
    return tables + [manifest.typewise_analysis_metrics(t) for t in sorted(set(session_types))]


def session_paths(
    sessions: pd.DataFrame,
    probes: pd.DataFrame,
    session_ids: Iterable[int] | None = None,
    *,
    lfp: bool = False,
) -> list[str]:
    """The NWB files of ``session_ids`` (all sessions when None), with their LFP files if asked.

    ``sessions`` is sessions.csv indexed by id, ``probes`` probes.csv (``ecephys_session_id``,
    ``has_lfp_data``) indexed by id. Probes without LFP data have no LFP file and are left out.
    """
    chosen = list(sessions.index) if session_ids is None else [int(s) for s in session_ids]
    unknown = sorted(set(chosen) - set(sessions.index))
    if unknown:
        raise ValueError(
            f"unknown session id(s) {unknown}; the sessions are {sorted(sessions.index)}"
        )
    paths = []
    for session_id in chosen:
        paths.append(manifest.session_nwb(session_id))
        if lfp:
            mine = probes[(probes["ecephys_session_id"] == session_id) & probes["has_lfp_data"]]
            paths.extend(manifest.probe_lfp_nwb(session_id, pid) for pid in mine.index)
    return paths


@dataclass
class PrefetchReport:
    """What a prefetch did, file by file."""

    downloaded: dict[str, int] = field(default_factory=dict)
    already_complete: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [
            f"downloaded {len(self.downloaded)} file(s), "
            f"{tqdm.format_sizeof(sum(self.downloaded.values()), 'B', 1024)}; "
            f"{len(self.already_complete)} already complete; {len(self.failed)} failed"
        ]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failed.items()]
        if self.failed:
            lines.append("run the same command again to retry; completed parts are kept")
        return "\n".join(lines)


def prefetch(files: DatasetFiles, paths: list[str], *, progress: bool = True) -> PrefetchReport:
    """Download ``paths`` into the cache folder; see the module documentation."""
    report = PrefetchReport()
    sizes = _remote_sizes(files, paths, report)
    todo = []
    for path, size in sizes.items():
        if check_local_file(files.local_path(path), files.remote_info(path)) == "ok":
            report.already_complete.append(path)
        else:
            todo.append((path, size))
    if todo:
        files.cache_dir.mkdir(parents=True, exist_ok=True)
        # Resumed parts are counted as needed: a little pessimistic, never too optimistic.
        ensure_free_space(files.cache_dir, sum(size for _, size in todo))
    overall = tqdm(
        total=sum(size for _, size in todo),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"{len(todo)} file(s)",
        disable=not progress,
    )
    with overall:
        for path, size in todo:
            current = tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=path.rpartition("/")[2],
                leave=False,
                disable=not progress,
            )
            with current:

                def advance(count: int, current: tqdm = current) -> None:
                    current.update(count)
                    overall.update(count)

                try:
                    result = files.fetch(path, on_progress=advance)
                except (OSError, DownloadError) as error:
                    report.failed[path] = str(error)
                    continue
            if result.already_complete:
                report.already_complete.append(path)
            else:
                report.downloaded[path] = result.fetched_bytes
    return report


def _remote_sizes(files: DatasetFiles, paths: list[str], report: PrefetchReport) -> dict[str, int]:
    def head(path: str) -> tuple[str, int | str]:
        try:
            return path, files.remote_info(path).size
        except (OSError, ValueError) as error:
            return path, str(error)

    sizes = {}
    with ThreadPoolExecutor(_HEAD_CONCURRENCY) as pool:
        for path, answer in pool.map(head, paths):
            if isinstance(answer, str):
                report.failed[path] = answer
            else:
                sizes[path] = answer
    return sizes


@dataclass
class VerifyReport:
    """Each file's state (``ok``, ``missing``, ``partial``, ``corrupt``) and what was repaired."""

    states: dict[str, str]
    repaired: list[str] = field(default_factory=list)

    def paths(self, state: str) -> list[str]:
        return [path for path, found in self.states.items() if found == state]

    @property
    def ok(self) -> bool:
        """No partial or corrupt file is left (files never downloaded are not a fault)."""
        return not (self.paths("partial") or self.paths("corrupt"))

    def summary(self) -> str:
        states = ("ok", "missing", "partial", "corrupt")
        lines = [", ".join(f"{len(self.paths(state))} {state}" for state in states)]
        lines += [
            f"  {state.upper()} {path}"
            for state in ("partial", "corrupt")
            for path in self.paths(state)
        ]
        lines += [f"  repaired {path}" for path in self.repaired]
        if not self.ok:
            lines.append("repair with: s3ecephys verify --repair --cache <folder>")
        return "\n".join(lines)


def verify(
    files: DatasetFiles,
    paths: list[str],
    *,
    checksum: bool = False,
    repair: bool = False,
    progress: bool = True,
) -> VerifyReport:
    """Compare local files with the remote objects (size; with ``checksum`` also the ETag's MD5).

    With ``repair``, corrupt files are removed and downloaded again and partial ones completed.
    """
    states = {}
    for path in tqdm(paths, desc="verifying", unit="file", disable=not progress):
        local = files.local_path(path)
        if local.exists():
            states[path] = check_local_file(local, files.remote_info(path), checksum=checksum)
        else:
            states[path] = "partial" if part_path(local).exists() else "missing"
    report = VerifyReport(states)
    if repair:
        broken = report.paths("corrupt") + report.paths("partial")
        for path in broken:
            if report.states[path] == "corrupt":
                files.local_path(path).unlink()
        fixed = prefetch(files, broken, progress=progress)
        for path in broken:
            if path not in fixed.failed:
                report.states[path] = "ok"
                report.repaired.append(path)
    return report
