"""Scale-out, measured: a cross-session reduction on ``distributed`` process workers.

    python -m benchmarks.scale_out --dataset-dir DIR --probes-per-session 1 --latency-ms 20

Serves a dataset folder (Allen layout; default: two benchmark-size synthetic sessions, written
once into ``benchmarks/.cache/``) from a local S3 behind the latency proxy, opens the LFP of every
channel of ``--probes-per-session`` LFP probes of each session as one tree
(``cache.open_lfp``), and computes the per-channel RMS of all of it on a
``distributed.LocalCluster(processes=True)``. Reports the wall time, each worker's requests,
bytes, throughput and peak RSS, and the raw concurrent-GET rate of the same chunks (fetched by
the driver through the same proxy, nothing decoded) that the throughput is compared with.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.latency_proxy import LatencyProxy

DEFAULT_DATASET = Path(__file__).resolve().parent / ".cache" / "scale-out-2-sessions"

# Requests and bytes this process sent through s3ecephys's stores (installed on each worker).
_COUNTS = {"requests": 0, "bytes": 0}
_COUNTS_LOCK = threading.Lock()


def install_request_counter() -> None:
    """Count every request of every store of this process (a worker's tasks each rebuild their
    own store, so per-store statistics would be scattered)."""
    import s3ecephys.hdf5  # noqa: F401  (imports outside the clock, as in benchmarks.run)
    from s3ecephys.storage.ranges import RangeStore

    original = RangeStore.record
    if getattr(original, "counted", False):
        return

    def counted(self: Any, requests: int, received: int, round_trips: int) -> None:
        with _COUNTS_LOCK:
            _COUNTS["requests"] += requests
            _COUNTS["bytes"] += received
        original(self, requests, received, round_trips)

    counted.counted = True  # type: ignore[attr-defined]
    RangeStore.record = counted  # type: ignore[method-assign]


def peak_rss() -> int:
    """This process's own peak resident memory in bytes (Linux).

    ``VmHWM`` is the high-water mark of this process's memory map; ``getrusage``'s ``ru_maxrss``
    is not: Linux carries it over fork and exec, so a worker would report its parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status: peak memory is measured on Linux only")


def worker_figures() -> dict[str, int]:
    """This worker's requests, bytes and peak resident memory (bytes)."""
    return {**_COUNTS, "peak_rss": peak_rss()}


def ensure_dataset(directory: Path) -> Path:
    """The dataset folder; two benchmark-size sessions written there first when it is empty."""
    if (directory / "manifest.json").is_file():
        return directory
    from s3ecephys.synthetic import SyntheticSpec, write_dataset

    print(f"writing two benchmark-size sessions into {directory} (minutes, once) ...", flush=True)
    spec = dataclasses.replace(SyntheticSpec.benchmark(), sessions=2)
    write_dataset(directory, spec=spec, seed=0)
    return directory


def select_channels(cache: Any, probes_per_session: int) -> Any:
    """Every channel of the first ``probes_per_session`` LFP probes of each session."""
    probes = cache.get_probes()
    with_lfp = probes[probes["has_lfp_data"].astype(bool)].sort_index()
    chosen = with_lfp.groupby("ecephys_session_id").head(probes_per_session).index
    channels = cache.get_channels()
    return channels[channels["ecephys_probe_id"].isin(chosen)]


def channel_rms(dataset: Any) -> Any:
    """Per-channel RMS over time of a probe node (other nodes as they are)."""
    if "time" not in dataset.dims:
        return dataset
    return np.sqrt((dataset.astype(np.float64) ** 2).mean("time"))


def raw_get_rate(tree: Any, cache: Any) -> dict[str, float]:
    """Every stored chunk of the tree's LFP files fetched by the driver as a reader's requests
    would be (same store, coalescing and concurrency), nothing decoded: bytes per second."""
    from s3ecephys.allen import manifest
    from s3ecephys.hdf5 import open_hdf5

    total, seconds = 0, 0.0
    for node in tree.subtree:
        if "LFP" not in node.data_vars:
            continue
        session_id, probe_id = node.attrs["ecephys_session_id"], node.attrs["ecephys_probe_id"]
        source = cache.files.source(manifest.probe_lfp_nwb(session_id, probe_id))
        file = open_hdf5(source.url, storage_options=source.storage_options,
                         cache_dir=cache.index_cache_dir)
        name = next(n for n in file["acquisition"] if n.endswith("_lfp"))
        data = file[f"acquisition/{name}/{name}_data/data"]
        plan = data.plan(())
        started = time.perf_counter()
        total += sum(len(body) for body in file.store.fetch(plan.ranges))
        seconds += time.perf_counter() - started
    return {"bytes": total, "seconds": seconds, "rate": total / seconds}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import distributed

    from s3ecephys import EcephysProjectCache
    from s3ecephys.storage.location import DEFAULT_PREFIX
    from s3ecephys.testing import LocalS3

    root = ensure_dataset(Path(args.dataset_dir))
    scratch = Path(tempfile.mkdtemp(prefix="s3ecephys-scale-out-"))
    with LocalS3() as s3, LatencyProxy(s3.endpoint_url, latency=args.latency_ms / 1000) as proxy:
        s3.upload_directory(root, prefix=DEFAULT_PREFIX)
        cache = EcephysProjectCache.from_s3(
            s3.url(DEFAULT_PREFIX), {"endpoint_url": proxy.endpoint_url},
            cache_dir=scratch / "cache", index_cache_dir=scratch / "indexes",
        )
        channels = select_channels(cache, args.probes_per_session)
        proxy.reset()
        started = time.perf_counter()
        tree = cache.open_lfp(channels, mask_invalid_intervals=False)
        open_seconds = time.perf_counter() - started
        open_requests = proxy.summary().requests
        rms = tree.map_over_datasets(channel_rms)
        leaves = [node for node in tree.subtree if "LFP" in node.data_vars]
        decoded = sum(node["LFP"].nbytes for node in leaves)
        with distributed.LocalCluster(
            processes=True, n_workers=args.workers, threads_per_worker=args.threads,
            memory_limit=0, dashboard_address=":0",
        ) as cluster, distributed.Client(cluster) as client:
            # By module name, not ``__main__``: workers import it rather than unpickle its lock.
            from benchmarks import scale_out

            client.run(scale_out.install_request_counter)
            proxy.reset()
            started = time.perf_counter()
            result = rms.compute()
            wall = time.perf_counter() - started
            compute_requests = proxy.summary().requests
            workers = client.run(scale_out.worker_figures)
        assert all(np.isfinite(node["LFP"]).all() for node in result.subtree
                   if "LFP" in node.data_vars)
        raw = raw_get_rate(tree, cache)
    per_worker = [
        {**figures, "throughput": figures["bytes"] / wall} for figures in workers.values()
    ]
    return {
        "command": " ".join(args.argv),
        "latency_ms": args.latency_ms,
        "workers": args.workers,
        "threads_per_worker": args.threads,
        "files": len(leaves),
        "channels": int(sum(node.sizes["channel"] for node in leaves)),
        "decoded_bytes": int(decoded),
        "open": {"seconds": open_seconds, "requests": open_requests},
        "compute": {"seconds": wall, "requests": compute_requests},
        "per_worker": per_worker,
        "raw_get": raw,
    }


def report(figures: dict[str, Any]) -> str:
    mib = 2**20
    lines = [
        f"`{figures['command']}`: {figures['files']} LFP files, {figures['channels']} channels, "
        f"{figures['decoded_bytes'] / mib:.0f} MiB decoded; open {figures['open']['seconds']:.1f} "
        f"s ({figures['open']['requests']} requests, driver); RMS on {figures['workers']} "
        f"process workers x {figures['threads_per_worker']} threads: "
        f"{figures['compute']['seconds']:.1f} s, {figures['compute']['requests']} requests "
        f"(proxy); raw concurrent GET {figures['raw_get']['rate'] / mib:.0f} MiB/s.",
        "",
        "| worker | requests | MiB fetched | MiB/s | % of raw GET | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for number, worker in enumerate(figures["per_worker"], start=1):
        lines.append(
            f"| {number} | {worker['requests']} | {worker['bytes'] / mib:.0f} | "
            f"{worker['throughput'] / mib:.1f} | "
            f"{worker['throughput'] / figures['raw_get']['rate']:.0%} | "
            f"{worker['peak_rss'] / mib:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import sys

    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_out", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-dir", default=str(DEFAULT_DATASET))
    parser.add_argument("--probes-per-session", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="threads per worker")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    args.argv = ["python -m benchmarks.scale_out", *(sys.argv[1:] if argv is None else argv)]
    figures = run(args)
    print(report(figures))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
