"""Helpers of the session tests: the project on the local S3, where the synthetic dataset keeps a
session's NWB file, which session has what (plain h5py, the reference), which ranges were read."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from s3ecephys import EcephysProjectCache
from s3ecephys.storage.location import DataLocation
from s3ecephys.storage.ranges import RangeStore


def s3_project_cache(s3_dataset: DataLocation, scratch: Path) -> EcephysProjectCache:
    """The project read in place from the local S3, its CSVs and file indexes kept in
    ``scratch``."""
    return EcephysProjectCache.from_s3(
        s3_dataset.url,
        storage_options=s3_dataset.storage_options,
        cache_dir=scratch / "files",
        index_cache_dir=scratch / "indexes",
    )


def nwb_path(root: Path, session_id: int) -> Path:
    """The session's NWB file in the dataset folder ``root``."""
    return root / f"session_{session_id}" / f"session_{session_id}.nwb"


def session_with(root: Path, path: str, present: bool = True) -> int:
    """The first session whose NWB file has (or lacks) ``path``."""
    for nwb in sorted(root.glob("session_*/session_*.nwb")):
        with h5py.File(nwb, "r") as handle:
            if (path in handle) == present:
                return int(nwb.stem.removeprefix("session_"))
    pytest.fail(f"no session file {'with' if present else 'without'} {path}")


def ragged_extents(nwb: Path) -> list[tuple[int, int]]:
    """``(offset, size)`` in the file of the ragged unit arrays: spike times, spike amplitudes,
    mean waveforms (stored contiguous)."""
    with h5py.File(nwb, "r") as f:
        return [
            (f[f"units/{name}"].id.get_offset(), f[f"units/{name}"].id.get_storage_size())
            for name in ("spike_times", "spike_amplitudes", "waveform_mean")
        ]


def record_ranges(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The ``(offset, length)`` of every byte range any store is asked for from now on: every
    read goes through ``fetch`` or ``fetch_each`` (the decoding reader's)."""
    asked: list[tuple[int, int]] = []
    for name in ("fetch", "fetch_each"):
        method = getattr(RangeStore, name)

        def recording(store, ranges, *args, _method=method, **kwargs):
            asked.extend((int(o), int(n)) for o, n in ranges)
            return _method(store, ranges, *args, **kwargs)

        monkeypatch.setattr(RangeStore, name, recording)
    return asked
