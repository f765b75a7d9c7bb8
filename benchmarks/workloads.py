"""The workloads W1-W7: what is read, made concrete for the files at hand, and its floor.

Each :class:`Workload` is plain data (it travels to the worker process as JSON): which file and
dataset, the selection as a box (one ``[start, stop)`` per axis) or the units of a ragged column,
and the bytes needed — the stored chunks or byte runs that intersect the selection, computed from
the local file's chunk table (:mod:`benchmarks.chunk_index`), which no reader can go below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from benchmarks.chunk_index import DatasetLayout, build_layouts
from benchmarks.dataset import BenchmarkFiles

ALL_WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7")

TITLES = {
    "W1": "open + metadata",
    "W2": "LFP 1 s × all channels",
    "W3": "LFP 60 s × 10 channels",
    "W4": "LFP 1 channel × whole recording",
    "W5": "spike times of 10 units",
    "W6": "LFP timestamps, whole",
    "W7": "LFP whole → per-channel RMS (dask)",
}


@dataclass(frozen=True)
class Workload:
    """One workload on one file; ``file`` is "lfp" or "session"."""

    name: str
    title: str
    file: str
    dataset: str
    kind: str  # "metadata", "box", "ragged" or "rms"
    description: str
    box: tuple[tuple[int, int], ...] | None = None
    units: tuple[int, ...] | None = None
    index_dataset: str | None = None
    needed_bytes: int | None = None
    needed_ranges: int | None = None
    # Read a second time in the same process, timed apart: the first read of a fresh process
    # against a read that pays no fixed cost (imports, clients, connections).
    repeat: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        data = dict(data)
        if data.get("box") is not None:
            data["box"] = tuple(tuple(axis) for axis in data["box"])
        if data.get("units") is not None:
            data["units"] = tuple(data["units"])
        return cls(**data)


def _sampling_rate(files: BenchmarkFiles) -> float:
    """Samples per second, from the timestamps (the stated rate may be half the truth)."""
    import h5py

    with h5py.File(files.local(files.lfp_file), "r") as handle:
        timestamps = handle[files.lfp_timestamps]
        count = timestamps.shape[0]
        first, last = float(timestamps[0]), float(timestamps[-1])
    return (count - 1) / (last - first)


def _window(rows: int, length: int) -> tuple[int, int]:
    """``length`` rows from the middle of ``rows`` (all of them if there are fewer)."""
    length = min(length, rows)
    start = (rows - length) // 2
    return start, start + length


def plan_workloads(
    files: BenchmarkFiles, names: tuple[str, ...] = ALL_WORKLOADS
) -> tuple[list[Workload], dict[str, dict[str, DatasetLayout]]]:
    """The workloads ``names`` for these files, and the layouts (per file) they are planned from."""
    import h5py

    lfp_layouts = build_layouts(files.local(files.lfp_file), [files.lfp_data, files.lfp_timestamps])
    session_layouts = build_layouts(
        files.local(files.session_file), [files.spike_times, files.spike_times_index]
    )
    data, timestamps = lfp_layouts[files.lfp_data], lfp_layouts[files.lfp_timestamps]
    rows, channels = data.shape
    rate = _sampling_rate(files)
    mid_channel = channels // 2

    with h5py.File(files.local(files.session_file), "r") as handle:
        ends = handle[files.spike_times_index][()].astype(np.int64)
    # Ten units spread over the table: the usual "these units of that area" selection.
    units = tuple(int(u) for u in np.linspace(0, len(ends) - 1, min(10, len(ends))).round())
    spike_boxes = [((int(ends[u - 1]) if u else 0, int(ends[u])),) for u in units]
    spike_layout = session_layouts[files.spike_times]
    index_positions = {p for u in units for p in (u - 1, u) if p >= 0}
    index_item = session_layouts[files.spike_times_index].itemsize

    one_second = _window(rows, round(rate))
    minute = _window(rows, round(60 * rate))
    ten = (max(0, mid_channel - 5), min(channels, max(0, mid_channel - 5) + 10))
    workloads = {
        "W1": Workload(
            "W1",
            TITLES["W1"],
            "lfp",
            files.lfp_data,
            "metadata",
            "open the LFP file; shape, dtype, chunks and attributes of its data",
        ),
        "W2": replace(
            _box("W2", files.lfp_data, data, (one_second, (0, channels)), rate), repeat=True
        ),
        "W3": _box("W3", files.lfp_data, data, (minute, ten), rate),
        "W4": _box("W4", files.lfp_data, data, ((0, rows), (mid_channel, mid_channel + 1)), rate),
        "W5": Workload(
            "W5",
            TITLES["W5"],
            "session",
            files.spike_times,
            "ragged",
            f"units {list(units)} of {len(ends)}: spike_times_index, then their runs of "
            f"spike_times ({sum(b[0][1] - b[0][0] for b in spike_boxes):,} spikes)",
            units=units,
            index_dataset=files.spike_times_index,
            needed_bytes=spike_layout.bytes_for(spike_boxes) + index_item * len(index_positions),
            needed_ranges=len(spike_boxes) + len(index_positions),
        ),
        "W6": _box("W6", files.lfp_timestamps, timestamps, ((0, timestamps.shape[0]),), rate),
        "W7": Workload(
            "W7",
            TITLES["W7"],
            "lfp",
            files.lfp_data,
            "rms",
            f"all {rows:,} × {channels} samples ({rows / rate:.0f} s) → RMS per channel",
            box=((0, rows), (0, channels)),
            needed_bytes=data.bytes_for([((0, rows), (0, channels))]),
            needed_ranges=len(data.ranges_for(((0, rows), (0, channels)))),
        ),
    }
    return [workloads[name] for name in names], {"lfp": lfp_layouts, "session": session_layouts}


def _box(
    name: str, dataset: str, layout: DatasetLayout, box: tuple[tuple[int, int], ...], rate: float
) -> Workload:
    extent = " × ".join(f"[{start}:{stop}]" for start, stop in box)
    seconds = (box[0][1] - box[0][0]) / rate
    return Workload(
        name,
        TITLES[name],
        "lfp",
        dataset,
        "box",
        f"{dataset.rsplit('/', 1)[-1]}{extent} ({seconds:.1f} s)",
        box=box,
        needed_bytes=layout.bytes_for([box]),
        needed_ranges=len(layout.ranges_for(box)),
    )


def fingerprint(value: Any) -> dict[str, Any]:
    """A small summary of a workload's result, to check that all methods read the same values."""
    if isinstance(value, dict):
        return {key: str(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        arrays = [np.asarray(v, dtype=np.float64) for v in value]
        return {
            "count": len(arrays),
            "elements": int(sum(a.size for a in arrays)),
            "sum": float(sum(a.sum() for a in arrays)),
        }
    array = np.asarray(value, dtype=np.float64)
    return {"shape": list(array.shape), "sum": float(array.sum()), "sumsq": float((array**2).sum())}


def same_result(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two fingerprints agree (sums compared with a relative tolerance: summation order
    differs between methods)."""
    if a is None or b is None or a.keys() != b.keys():
        return False
    for key in a:
        if isinstance(a[key], float) and isinstance(b[key], float):
            if not np.isclose(a[key], b[key], rtol=1e-6, atol=1e-12):
                return False
        elif a[key] != b[key]:
            return False
    return True
