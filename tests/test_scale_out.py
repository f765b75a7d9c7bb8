"""The scale-out benchmark's plumbing, on the small synthetic dataset (``benchmarks.scale_out``).

Checks what the benchmark reports against the files themselves: the LFP it reduced (files,
channels, decoded bytes, read with h5py), that every request of the compute was sent and counted
by a worker, and that the workers fetched the stored chunks and nothing else (an index read on a
worker, a few MiB per file, would show up in their bytes). No timing is asserted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# benchmarks/ sits beside the package and is not installed: make it importable however pytest runs.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

h5py = pytest.importorskip("h5py")
pytest.importorskip("distributed")


def _reduced_lfp(root: Path, probes_per_session: int) -> list[h5py.Dataset]:
    """The LFP data of the first ``probes_per_session`` probes with LFP of each session, found
    from probes.csv and the files (not through s3ecephys)."""
    probes = pd.read_csv(root / "probes.csv", index_col="id").sort_index()
    with_lfp = probes[probes["has_lfp_data"].astype(bool)]
    chosen = with_lfp.groupby("ecephys_session_id").head(probes_per_session)
    datasets = []
    for probe_id, session_id in chosen["ecephys_session_id"].items():
        handle = h5py.File(root / f"session_{session_id}" / f"probe_{probe_id}_lfp.nwb", "r")
        series = f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data/data"
        datasets.append(handle[series])
    return datasets


def _stored_bytes(dataset: h5py.Dataset) -> int:
    return sum(
        dataset.id.get_chunk_info(i).size for i in range(dataset.id.get_num_chunks())
    )


@pytest.mark.slow
def test_scale_out_reports_what_the_workers_read(synthetic_dataset, tmp_path):
    from benchmarks import scale_out

    out = tmp_path / "scale_out.json"
    argv = ["--dataset-dir", str(synthetic_dataset.root), "--latency-ms", "0",
            "--workers", "2", "--threads", "1", "--out", str(out)]
    assert scale_out.main(argv) == 0
    figures = json.loads(out.read_text())

    datasets = _reduced_lfp(Path(synthetic_dataset.root), probes_per_session=1)
    try:
        assert figures["files"] == len(datasets)
        assert figures["channels"] == sum(d.shape[1] for d in datasets)
        assert figures["decoded_bytes"] == sum(
            int(np.prod(d.shape)) * d.dtype.itemsize for d in datasets
        )
        stored = sum(_stored_bytes(d) for d in datasets)
    finally:
        for dataset in datasets:
            dataset.file.close()

    workers = figures["per_worker"]
    assert len(workers) == 2
    # The proxy saw only the workers' requests during the compute, and they counted them all.
    assert sum(w["requests"] for w in workers) == figures["compute"]["requests"] > 0
    fetched = sum(w["bytes"] for w in workers)
    # Every stored chunk arrived; beyond them only the small gaps coalescing bridges, far less
    # than the first and last MiB an index read of any one file would add.
    assert stored <= fetched < stored + 2**20
    assert stored <= figures["raw_get"]["bytes"] < stored + 2**20
    assert all(w["peak_rss"] > 0 for w in workers)
