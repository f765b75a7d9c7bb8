"""How fast W7 could be on this machine if fetching cost nothing: the CPU floor of inflating.

Every reader that returns values must at least inflate every stored gzip chunk. This times the
inflaters alone on all chunks of an LFP dataset, read from the local file beforehand (no network,
no numpy, no reduction): zlib (the standard library), zlib-ng, ISA-L and libdeflate where they are
installed, and ``s3ecephys`` (the engine's own path, :func:`s3ecephys.hdf5.inflate.inflate`). Per
inflater: CPU seconds on one core, and the wall time of the same work split over two threads
(a library that holds the GIL does not get faster). The engine's CPU divided by the number of
cores is a lower bound on W7's wall time for it; set beside a results file's ``raw-get`` it gives
the best share of the raw concurrent-GET throughput a decoding reader can reach here::

    python -m benchmarks.decode_floor --results benchmarks/results/full-20ms.json

With ``--results`` it also times W7's reduction on the values in memory (best of a warm loop, and
the first pass of a fresh process, which is what a W7 run pays) and adds up the shared-core limit:
serving, receiving, inflating and reducing CPU over the cores, with that file's s3ecephys runs.

By default the chunks are the benchmark dataset's (written once, minutes); ``--synthetic ROWS``
times instead a file of ``ROWS`` × 95 channels of the synthetic LFP signal written by h5py with
the real files' chunk shape (46,989 × 1 float32, gzip 9; ``--chunk-shape`` to change it), which
takes seconds to write.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.dataset import DEFAULT_CACHE_DIR, prepare_dataset

# One inflater: (stored bytes, inflated size) -> inflated bytes.
Inflater = Callable[[Any, int], Any]

# The chunk shape h5py chose for the real 95-channel LFP files (shared/ALLEN_LAYOUT.md).
REAL_CHUNK_SHAPE = (46_989, 1)
_CHANNELS = 95


@dataclass(frozen=True)
class InflateCost:
    chunks: int
    stored_bytes: int
    inflated_bytes: int
    cpu_seconds: float


@dataclass(frozen=True)
class InflaterTiming:
    name: str
    cpu_seconds: float  # one thread, all chunks
    wall_one_thread: float
    wall_two_threads: float

    @property
    def two_thread_speedup(self) -> float:
        return self.wall_one_thread / self.wall_two_threads


def candidates() -> dict[str, Inflater]:
    """The inflaters installed here, by name (zlib always)."""
    found: dict[str, Inflater] = {"zlib": lambda body, size: zlib.decompress(body)}
    try:
        from zlib_ng import zlib_ng

        found["zlib-ng"] = lambda body, size: zlib_ng.decompress(body)
    except ImportError:
        pass
    try:
        from isal import isal_zlib

        found["isal"] = lambda body, size: isal_zlib.decompress(body)
    except ImportError:
        pass
    try:
        import deflate

        found["libdeflate"] = deflate.zlib_decompress
    except ImportError:
        pass
    from s3ecephys.hdf5.inflate import inflate

    found["s3ecephys"] = inflate
    return found


def stored_chunks(path: Path, dataset: str) -> tuple[list[bytes], int]:
    """The stored bytes of every chunk of ``dataset`` (gzip-filtered), and a chunk's raw size."""
    import h5py

    with h5py.File(path, "r") as handle:
        identifier = handle[dataset].id
        offsets: list[tuple[int, ...]] = []
        identifier.chunk_iter(lambda chunk: offsets.append(chunk.chunk_offset))
        stored = [identifier.read_direct_chunk(offset)[1] for offset in offsets]
        chunk = handle[dataset]
        raw_size = chunk.dtype.itemsize * math.prod(chunk.chunks)
    return stored, raw_size


def inflate_cost(path: Path, dataset: str, inflater: Inflater | None = None) -> InflateCost:
    """Single-core CPU time of inflating every stored chunk of ``dataset`` (zlib by default)."""
    stored, raw_size = stored_chunks(path, dataset)
    inflater = inflater or candidates()["zlib"]
    began = time.process_time()
    inflated = sum(len(inflater(body, raw_size)) for body in stored)
    cpu = time.process_time() - began
    return InflateCost(len(stored), sum(map(len, stored)), inflated, cpu)


def time_inflater(
    name: str, inflater: Inflater, stored: Sequence[bytes], raw_size: int, repeats: int = 3
) -> InflaterTiming:
    """Best of ``repeats``: CPU and wall time on one thread, wall time on two threads (each
    inflating every other chunk). Checks the output against zlib's first."""
    for body in stored[:: max(1, len(stored) // 50)]:
        if bytes(inflater(body, raw_size)) != zlib.decompress(body):
            raise AssertionError(f"{name} inflates differently from zlib")

    def run(part: Sequence[bytes]) -> None:
        for body in part:
            inflater(body, raw_size)

    cpu, one, two = [], [], []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(repeats):
            began, began_cpu = time.perf_counter(), time.process_time()
            run(stored)
            one.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
            began = time.perf_counter()
            list(pool.map(run, [stored[0::2], stored[1::2]]))
            two.append(time.perf_counter() - began)
    return InflaterTiming(name, min(cpu), min(one), min(two))


def synthetic_file(cache_dir: Path, rows: int, chunk_shape: tuple[int, int]) -> Path:
    """``rows`` × 95 channels of the synthetic LFP signal, gzip 9 in chunks of ``chunk_shape``,
    written by h5py (once: reused afterwards)."""
    import h5py
    import numpy as np

    from s3ecephys.synthetic.signals import lfp_volts

    path = Path(cache_dir) / f"decode-floor-{rows}x{_CHANNELS}-{chunk_shape[0]}x{chunk_shape[1]}.h5"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    values = lfp_volts(np.random.default_rng(0), rows, _CHANNELS, 1250.0)
    partial = path.with_suffix(".part")
    with h5py.File(partial, "w") as handle:
        handle.create_dataset(
            "data", data=values, chunks=chunk_shape, compression="gzip", compression_opts=9
        )
    partial.rename(path)
    return path


def reduction_cpu(path: Path, dataset: str, repeats: int = 3) -> float:
    """CPU seconds (all threads, best of ``repeats``) of W7's reduction alone — the benchmark's
    ``rms`` on dask's threaded scheduler — over the dataset's values already in memory, in the
    blocks ``to_dask`` makes (whole rows, Fortran order, as s3ecephys hands them out)."""
    array = _blocks_in_memory(path, dataset)
    return min(_reduction_pass(array) for _ in range(repeats))


def reduction_cpu_fresh(path: Path, dataset: str, repeats: int = 3) -> float:
    """The same reduction's CPU seconds as a W7 run pays them: the first pass in a fresh
    process (median of ``repeats`` processes). Later passes reuse memory the first one got from
    the kernel; a first pass has every page of its float64 temporaries zeroed by the kernel (with
    numpy's transparent huge pages, 2 MiB at a time), which a warm loop does not see."""
    command = [sys.executable, "-m", "benchmarks.decode_floor", "--reduction-pass", str(path),
               dataset]
    root = Path(__file__).resolve().parents[1]
    seconds = [
        float(subprocess.run(command, cwd=root, capture_output=True, text=True,
                             check=True).stdout.split()[-1])
        for _ in range(repeats)
    ]
    return statistics.median(seconds)


def _blocks_in_memory(path: Path, dataset: str) -> Any:
    import dask.array as da
    import h5py
    import numpy as np

    from s3ecephys.hdf5.array import DEFAULT_TASK_BYTES, block_shape

    with h5py.File(path, "r") as handle:
        values = handle[dataset][()]
        chunks = handle[dataset].chunks
    rows = block_shape(values.shape, chunks, values.dtype.itemsize, DEFAULT_TASK_BYTES)[0]
    starts = range(0, len(values), rows)
    blocks = [np.asfortranarray(values[start : start + rows]) for start in starts]
    del values
    return da.concatenate([da.from_array(block, chunks=block.shape) for block in blocks])


def _reduction_pass(array: Any) -> float:
    from benchmarks.method_base import rms

    began = time.process_time()
    rms(array)
    return time.process_time() - began


def raw_get_run(results: Path) -> dict[str, Any]:
    """The ``raw-get`` W7 run of a ``benchmarks.run`` results file."""
    runs = json.loads(results.read_text())["runs"]
    for run in runs:
        if run["method"] == "raw-get" and run["workload"] == "W7" and run["status"] == "ok":
            return run
    raise ValueError(f"{results}: no successful raw-get W7 run")


def shared_core_limit(
    results: Path, inflate: float, reduce: float, cores: int, reduced: str = "values in memory"
) -> list[str]:
    """W7's least wall time on this machine, where the S3 server, the proxy and the reader share
    the cores: the CPU the raw GETs cost (serving and receiving, measured in ``results``) plus
    inflating and reducing (``reduced`` says how the reduction's CPU was measured), over the
    cores; and the s3ecephys runs of ``results`` beside it."""
    raw = raw_get_run(results)
    raw_wall = _wall(raw)
    transfer = raw["serving_cpu"] + raw["read_cpu"]
    limit = (transfer + inflate + reduce) / cores
    issue = max(raw_wall, inflate / cores)
    lines = [
        f"raw-get W7 in {results.name}: {raw_wall:.3f} s wall; serving it took "
        f"{raw['serving_cpu']:.2f} CPU s (S3 server and proxy), receiving it {raw['read_cpu']:.2f}",
        f"W7's work on these {cores} cores: {transfer:.2f} (transfer) + {inflate:.2f} (inflate) + "
        f"{reduce:.2f} (reduction, {reduced}) CPU s -> >= {limit:.3f} s wall, "
        f"{limit / issue:.2f}x the larger of raw GET and inflate / cores ({issue:.3f} s)",
    ]
    for run in json.loads(results.read_text())["runs"]:
        if run["workload"] == "W7" and run["status"] == "ok" and "s3ecephys" in run["method"]:
            wall = _wall(run)
            lines.append(f"  {run['method']}: {wall:.3f} s = {wall / limit:.2f}x that limit")
    return lines


def _wall(run: dict[str, Any]) -> float:
    """A run's wall time: the median of its repeats when it was repeated (CPU figures are those
    of its first repeat)."""
    return float(run["wall"].get("total_median", run["wall"]["total"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decode_floor", description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--results", type=Path, help="a results .json with a raw-get W7 run")
    parser.add_argument(
        "--synthetic", type=int, metavar="ROWS", help="time a synthetic file of ROWS x 95 instead"
    )
    parser.add_argument(
        "--chunk-shape", default=",".join(map(str, REAL_CHUNK_SHAPE)), help="with --synthetic"
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings")
    # One first pass of the reduction, in the process reduction_cpu_fresh starts.
    parser.add_argument("--reduction-pass", nargs=2, metavar=("PATH", "DATASET"),
                        help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.reduction_pass:
        location, name = arguments.reduction_pass
        print(f"{_reduction_pass(_blocks_in_memory(Path(location), name)):.4f}")
        return 0
    if arguments.synthetic:
        rows, columns = (int(n) for n in arguments.chunk_shape.split(","))
        path = synthetic_file(arguments.cache_dir, arguments.synthetic, (rows, columns))
        dataset = "data"
    else:
        files = prepare_dataset(arguments.cache_dir, quick=False)
        path, dataset = files.local(files.lfp_file), files.lfp_data
    stored, raw_size = stored_chunks(path, dataset)
    stored_mb = sum(map(len, stored)) / 1e6
    print(
        f"{path.name}: {len(stored):,} chunks of {raw_size / 1024:.0f} KiB raw, "
        f"{stored_mb:.0f} MB stored, {len(stored) * raw_size / 1e6:.0f} MB inflated"
    )
    cores = os.cpu_count() or 1
    timings = [
        time_inflater(name, inflater, stored, raw_size, arguments.repeats)
        for name, inflater in candidates().items()
    ]
    base = timings[0].cpu_seconds
    print("| inflater | CPU s, 1 thread | vs zlib | MB/s inflated | 2 threads ÷ 1 thread, wall |")
    print("|---|---|---|---|---|")
    for timing in timings:
        rate = len(stored) * raw_size / 1e6 / timing.cpu_seconds
        print(
            f"| {timing.name} | {timing.cpu_seconds:.3f} | {base / timing.cpu_seconds:.2f}x | "
            f"{rate:,.0f} | {timing.two_thread_speedup:.2f}x |"
        )
    engine = timings[-1].cpu_seconds
    floor = engine / cores
    print(f"s3ecephys' inflater: >= {floor:.2f} s wall for these chunks on {cores} cores")
    if arguments.results:
        raw = _wall(raw_get_run(arguments.results))
        print(
            f"raw-get W7 in {arguments.results.name}: {raw:.3f} s -> inflating alone lets a "
            f"decoding reader reach at most {min(1.0, raw / floor):.0%} of raw GET here"
        )
        if not arguments.synthetic:
            warm = reduction_cpu(path, dataset, arguments.repeats)
            fresh = reduction_cpu_fresh(path, dataset, arguments.repeats)
            print(
                f"W7's reduction alone, values in memory: {warm:.2f} CPU s (best of "
                f"{arguments.repeats} passes in one process), {fresh:.2f} CPU s (first pass in a "
                f"fresh process, median of {arguments.repeats}, as a W7 run pays it)"
            )
            for reduce, reduced in ((warm, "warm"), (fresh, "first pass")):
                for line in shared_core_limit(arguments.results, engine, reduce, cores, reduced):
                    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
