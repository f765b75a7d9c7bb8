"""How fast W7 could be on this machine if fetching cost nothing: the CPU floor of inflating.

Every reader that returns values must at least inflate every stored gzip chunk. This times zlib
alone on all chunks of the benchmark's LFP data, read from the local file beforehand (no network,
no numpy, no reduction), on one core. Divided by the number of cores it is a lower bound on W7's
wall time for any decoding reader; set beside a results file's ``raw-get`` it gives the best share
of the raw concurrent-GET throughput such a reader can reach here::

    python -m benchmarks.decode_floor --results benchmarks/results/full-20ms.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from benchmarks.dataset import DEFAULT_CACHE_DIR, prepare_dataset


@dataclass(frozen=True)
class InflateCost:
    chunks: int
    stored_bytes: int
    inflated_bytes: int
    cpu_seconds: float


def inflate_cost(path: Path, dataset: str) -> InflateCost:
    """Single-core CPU time of inflating every stored chunk of ``dataset`` (gzip-filtered)."""
    import h5py

    with h5py.File(path, "r") as handle:
        identifier = handle[dataset].id
        offsets: list[tuple[int, ...]] = []
        identifier.chunk_iter(lambda chunk: offsets.append(chunk.chunk_offset))
        stored = [identifier.read_direct_chunk(offset)[1] for offset in offsets]
    began = time.process_time()
    inflated = sum(len(zlib.decompress(body)) for body in stored)
    cpu = time.process_time() - began
    return InflateCost(len(stored), sum(map(len, stored)), inflated, cpu)


def raw_get_seconds(results: Path) -> float:
    """Wall time of the ``raw-get`` W7 run in a ``benchmarks.run`` results file."""
    runs = json.loads(results.read_text())["runs"]
    for run in runs:
        if run["method"] == "raw-get" and run["workload"] == "W7" and run["status"] == "ok":
            return float(run["wall"]["total"])
    raise ValueError(f"{results}: no successful raw-get W7 run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decode_floor", description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--results", type=Path, help="a results .json with a raw-get W7 run")
    arguments = parser.parse_args(argv)
    files = prepare_dataset(arguments.cache_dir, quick=False)
    cost = inflate_cost(files.local(files.lfp_file), files.lfp_data)
    cores = os.cpu_count() or 1
    floor = cost.cpu_seconds / cores
    print(
        f"{cost.chunks:,} chunks, {cost.stored_bytes / 1e6:.0f} MB stored, "
        f"{cost.inflated_bytes / 1e6:.0f} MB inflated: zlib alone {cost.cpu_seconds:.2f} s CPU "
        f"on one core, >= {floor:.2f} s wall on {cores} cores"
    )
    if arguments.results:
        raw = raw_get_seconds(arguments.results)
        print(
            f"raw-get W7 in {arguments.results.name}: {raw:.3f} s -> a decoding reader reaches "
            f"at most {raw / floor:.0%} of raw GET here, even if serving the bytes took no CPU"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
