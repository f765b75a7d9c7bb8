"""The benchmark's data: a synthetic dataset in the Allen layout, written once and reused.

``SyntheticSpec.benchmark()`` gives files of the real files' shape and layout at a size a laptop
holds (an LFP file of hundreds of MB, a session file with hundreds of units and millions of
spikes); ``--quick`` uses the package's small default for smoke tests. The folder is kept in a cache
(keyed by the spec and the seed) because writing it takes minutes.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_CACHE_DIR = Path(__file__).resolve().parent / ".cache"
SEED = 0
_MARKER = "benchmark-dataset.json"


@dataclass(frozen=True)
class BenchmarkFiles:
    """The two files the workloads read, as paths relative to the dataset root (= S3 keys below
    the dataset prefix), and the HDF5 paths inside them."""

    root: str
    lfp_file: str
    session_file: str
    lfp_data: str
    lfp_timestamps: str
    spike_times: str
    spike_times_index: str

    def local(self, relative: str) -> Path:
        return Path(self.root) / relative

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _spec(quick: bool) -> Any:
    from s3ecephys.synthetic import SyntheticSpec

    if not quick:
        return SyntheticSpec.benchmark()
    # The package's default spec is the small one its tests use.
    return SyntheticSpec.quick() if hasattr(SyntheticSpec, "quick") else SyntheticSpec()


def dataset_dir(cache_dir: Path, quick: bool) -> Path:
    return Path(cache_dir) / ("dataset-quick" if quick else "dataset-benchmark")


def prepare_dataset(cache_dir: Path, quick: bool, log: Any = print) -> BenchmarkFiles:
    """The benchmark files, written under ``cache_dir`` unless a complete copy of the same spec
    and seed is there already."""
    from s3ecephys.synthetic import write_dataset

    spec = _spec(quick)
    folder = dataset_dir(cache_dir, quick)
    marker = folder / _MARKER
    identity = {"spec": repr(spec), "seed": SEED}
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved.get("identity") == identity:
            log(f"reusing the synthetic dataset in {folder}")
            return BenchmarkFiles(**saved["files"])
        log(f"{folder} holds another spec: writing it again")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    log(f"writing the synthetic dataset to {folder} (once; reused by later runs) ...")
    began = time.perf_counter()
    write_dataset(folder, spec=spec, seed=SEED)
    log(f"  written in {time.perf_counter() - began:.0f} s")
    files = locate_files(folder)
    marker.write_text(json.dumps({"identity": identity, "files": files.to_dict()}, indent=1))
    return files


def locate_files(root: Path) -> BenchmarkFiles:
    """The largest LFP file below ``root``, its session's NWB file and the datasets inside.

    Found by looking rather than by ids, so the benchmark follows whatever the writer produced.
    """
    import h5py

    lfp_files = sorted(root.glob("session_*/probe_*_lfp.nwb"), key=lambda p: p.stat().st_size)
    if not lfp_files:
        raise FileNotFoundError(f"no session_*/probe_*_lfp.nwb below {root}")
    lfp = lfp_files[-1]
    session = lfp.parent / f"{lfp.parent.name}.nwb"
    if not session.exists():
        raise FileNotFoundError(f"{session} (the session file of {lfp}) is missing")
    with h5py.File(lfp, "r") as handle:
        # The ElectricalSeries itself, not the soft link beside it (ALLEN_LAYOUT.md §6).
        series = [
            f"acquisition/{container}/{name}"
            for container, group in handle["acquisition"].items()
            if isinstance(group, h5py.Group) and "data" not in group
            for name in group
            if name.endswith("_lfp_data")
        ]
        if not series:
            raise ValueError(f"{lfp}: no acquisition/probe_*_lfp/probe_*_lfp_data series")
    with h5py.File(session, "r") as handle:
        for path in ("units/spike_times", "units/spike_times_index"):
            if path not in handle:
                raise ValueError(f"{session}: no {path}")
    return BenchmarkFiles(
        root=str(root),
        lfp_file=lfp.relative_to(root).as_posix(),
        session_file=session.relative_to(root).as_posix(),
        lfp_data=f"{series[0]}/data",
        lfp_timestamps=f"{series[0]}/timestamps",
        spike_times="units/spike_times",
        spike_times_index="units/spike_times_index",
    )
