"""Run the benchmark: every method on every workload, side by side, behind one latency proxy.

    python -m benchmarks.run --latency-ms 20 --out benchmarks/results/latency-20ms.json

Steps: write (or reuse) the synthetic dataset; upload its LFP file and session file to a local S3;
put a :class:`~benchmarks.latency_proxy.LatencyProxy` in front of it; build the one-time indexes
(s3ecephys' index caches for the *warm* runs, kerchunk's references) through the proxy, measured;
then, for each workload and method, run one worker process (:mod:`benchmarks.worker`) and
attribute the proxy's request records to its *open* and *read* phases. Results go to a JSON file
and a Markdown table beside it (:mod:`benchmarks.report`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.chunk_index import DatasetLayout
from benchmarks.dataset import DEFAULT_CACHE_DIR, BenchmarkFiles, locate_files, prepare_dataset
from benchmarks.latency_proxy import LatencyProxy, RequestRecord, records_between, summarize
from benchmarks.method_base import INDEX_CACHE_FOLDER
from benchmarks.methods import ALL_METHODS, METHODS, QUICK_METHODS
from benchmarks.report import environment, write_markdown
from benchmarks.workloads import ALL_WORKLOADS, Workload, plan_workloads, same_result

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_TIMEOUT = 1800
# kerchunk's references of a benchmark-size session file take longer than this even locally.
DEFAULT_INDEX_TIMEOUT = 600.0
# Seconds a worker may take beyond its own clock before the proxy records are read (requests
# arriving after the worker's last phase ended are not attributed to it anyway).
_SETTLE = 0.05

# (method, workload kind) pairs that are not run, and why (each method says which kinds it cannot
# measure). Everything else is run.
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    (name, kind): reason
    for name, method in METHODS.items()
    for kind, reason in method.not_applicable.items()
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="added per HTTP request (default 20)"
    )
    parser.add_argument(
        "--bandwidth-mbps",
        type=float,
        default=None,
        help="cap on all connections together, megabits/s (default: none)",
    )
    parser.add_argument(
        "--connection-mbps",
        type=float,
        default=None,
        help="cap on each connection, megabits/s (default: none)",
    )
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated, from {', '.join(ALL_METHODS)}, or 'all' "
        "(default: all; with --quick: fewer)",
    )
    parser.add_argument(
        "--workloads",
        default=",".join(ALL_WORKLOADS),
        help="comma-separated, from W1..W7 (default: all)",
    )
    parser.add_argument(
        "--dask-threads",
        type=int,
        default=None,
        help="threads of dask's scheduler in each worker (default: dask's, one per CPU)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small dataset and fewer methods: a smoke test"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs per (method, workload); the median wall time is reported (default 1)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help=f"where the synthetic dataset is kept between runs (default {DEFAULT_CACHE_DIR})",
    )
    parser.add_argument(
        "--dataset-dir",
        type=Path,
        default=None,
        help="use the Allen-layout files below this folder instead of the synthetic dataset",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per worker (default 1800)"
    )
    parser.add_argument(
        "--index-timeout",
        type=float,
        default=DEFAULT_INDEX_TIMEOUT,
        help="seconds for each one-time index build; a build that takes longer counts as failed "
        f"and its method's runs on that file are not made (default {DEFAULT_INDEX_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results .json (a .md is written beside it); default benchmarks/results/<name>.json",
    )
    arguments = parser.parse_args(argv)
    arguments.workloads = tuple(w.strip().upper() for w in arguments.workloads.split(",") if w)
    unknown = set(arguments.workloads) - set(ALL_WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}")
    if arguments.methods is None:
        arguments.methods = QUICK_METHODS if arguments.quick else ALL_METHODS
    elif arguments.methods == "all":
        arguments.methods = ALL_METHODS
    else:
        arguments.methods = tuple(m.strip() for m in arguments.methods.split(",") if m.strip())
    unknown = set(arguments.methods) - set(ALL_METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}")
    if arguments.out is None:
        name = f"{'quick' if arguments.quick else 'full'}-{arguments.latency_ms:g}ms"
        if arguments.bandwidth_mbps:
            name += f"-{arguments.bandwidth_mbps:g}mbps"
        if arguments.dask_threads:
            name += f"-{arguments.dask_threads}threads"
        arguments.out = RESULTS_DIR / f"{name}.json"
    return arguments


def reproduce_command(argv: list[str]) -> str:
    return " ".join(["python -m benchmarks.run", *map(shlex.quote, argv)])


def _worker(job: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    """Run one job in a fresh process; its result, or what went wrong."""
    job_file = workdir / "job.json"
    result_file = workdir / "result.json"
    job_file.write_text(json.dumps(job))
    result_file.unlink(missing_ok=True)
    environment_variables = dict(os.environ)
    # The worker imports benchmarks/ from this checkout, installed package or not.
    paths = [str(REPOSITORY), *filter(None, environment_variables.get("PYTHONPATH", "").split(":"))]
    environment_variables["PYTHONPATH"] = os.pathsep.join(paths)
    began = time.monotonic()
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.worker", str(job_file), str(result_file)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment_variables,
            cwd=REPOSITORY,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s", "status": "timeout", "started": began}
    if completed.returncode != 0 or not result_file.exists():
        return {
            "error": f"worker exited with {completed.returncode}",
            "traceback": completed.stderr[-3000:],
            "started": began,
        }
    result = json.loads(result_file.read_text())
    # CLOCK_MONOTONIC is system-wide on Linux: comparable with the worker's phase times.
    result["exited"] = time.monotonic()
    return result


def _phase_traffic(records: list[RequestRecord], phase: list[float]) -> dict[str, Any]:
    summary = summarize(records_between(records, phase[0], phase[1] + 1e-9))
    return summary.to_dict()


def _serving_cpu(server_pid: int | None) -> float | None:
    """CPU seconds used so far by the serving side on this machine: the S3 server process and
    this one (whose work while a worker runs is the proxy's); None where /proc is missing."""
    if server_pid is None:
        return None
    try:
        fields = Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    server = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return server + time.process_time()


def measure(
    proxy: LatencyProxy,
    job: dict[str, Any],
    workdir: Path,
    timeout: float,
) -> dict[str, Any]:
    """One worker run and the proxy's view of it, phase by phase."""
    proxy.reset()
    server_pid = job["context"].get("server_pid")
    serving_before = _serving_cpu(server_pid)
    result = _worker(job, workdir, timeout)
    time.sleep(_SETTLE)
    serving_after = _serving_cpu(server_pid)
    if serving_before is not None and serving_after is not None:
        result["serving_cpu"] = serving_after - serving_before
    records = proxy.records()
    result["proxy_total"] = summarize(records).to_dict()
    if "phases" in result:
        opened, read = result["phases"]["open"], result["phases"]["read"]
        result["proxy"] = {
            "open": _phase_traffic(records, opened),
            "read": _phase_traffic(records, read),
            "all": _phase_traffic(records, [opened[0], read[1]]),
        }
        result["wall"] = {
            "open": opened[1] - opened[0],
            "read": read[1] - read[0],
            "total": read[1] - opened[0],
        }
        again = result["phases"].get("again")
        if again is not None:
            result["proxy"]["again"] = _phase_traffic(records, again)
            result["wall"]["again"] = again[1] - again[0]
        # What the process still did once the timed work was over, until it exited (for
        # s3ecephys: the chunk tables an open reads in the background and keeps).
        end = max(phase[1] for phase in result["phases"].values())
        if "exited" in result:
            result["proxy"]["after"] = _phase_traffic(records, [end + 1e-9, result["exited"]])
            result["wall"]["after"] = result["exited"] - end
    result["proxy_errors"] = proxy.errors[-5:]
    return result


def _local_layouts(layouts: dict[str, dict[str, DatasetLayout]], target: Path) -> None:
    target.write_text(
        json.dumps(
            {
                role: {p: lay.to_dict() for p, lay in table.items()}
                for role, table in layouts.items()
            }
        )
    )


def _files(arguments: argparse.Namespace) -> BenchmarkFiles:
    if arguments.dataset_dir is not None:
        return locate_files(arguments.dataset_dir.resolve())
    return prepare_dataset(arguments.cache_dir, arguments.quick, log=log)


def _dataset_description(files: BenchmarkFiles, workloads: list[Workload], layouts: Any) -> dict:
    lfp = layouts["lfp"][files.lfp_data]
    timestamps = layouts["lfp"][files.lfp_timestamps]
    spikes = layouts["session"][files.spike_times]
    index = layouts["session"][files.spike_times_index]
    return {
        "root": files.root,
        "lfp_file": files.lfp_file,
        "lfp_file_bytes": files.local(files.lfp_file).stat().st_size,
        "session_file": files.session_file,
        "session_file_bytes": files.local(files.session_file).stat().st_size,
        "lfp_data": {
            "path": files.lfp_data,
            "shape": lfp.shape,
            "dtype": lfp.dtype,
            "chunks": lfp.chunks,
            "filters": lfp.filters,
            "stored_chunks": 0 if lfp.chunk_sizes is None else len(lfp.chunk_sizes),
        },
        "lfp_timestamps": {
            "shape": timestamps.shape,
            "chunks": timestamps.chunks,
            "layout": timestamps.layout,
        },
        "units": index.shape[0],
        "spikes": spikes.shape[0],
        "spike_times_layout": spikes.layout,
        "workloads": {w.name: w.description for w in workloads},
    }


def _upload_client(s3: Any) -> Any:
    """A boto3 client for the local S3 that stores objects without checksums, as the dataset's
    objects are stored on the real bucket.

    With checksums, moto 5 records a CRC32 for a multipart object that is not the CRC32 of its
    bytes; botocore then rejects any ranged GET that happens to cover the whole object (s3fs'
    50 MiB read-ahead on a smaller file does), which would fail readers for the wrong reason.
    """
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name="us-west-2",
        aws_access_key_id="local-s3",
        aws_secret_access_key="local-s3",
        config=Config(request_checksum_calculation="when_required"),
    )


def run(arguments: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    from s3ecephys.storage.location import DEFAULT_PREFIX
    from s3ecephys.testing import LocalS3

    started_at = time.time()
    files = _files(arguments)
    log(f"planning workloads on {files.lfp_file} and {files.session_file}")
    workloads, layouts = plan_workloads(files, arguments.workloads)
    roles = {"lfp": files.lfp_file, "session": files.session_file}
    needed_roles = {w.file for w in workloads}

    with tempfile.TemporaryDirectory(prefix="s3ecephys-benchmark-") as temporary:
        workdir = Path(temporary)
        layouts_file = workdir / "layouts.json"
        _local_layouts(layouts, layouts_file)
        with LocalS3() as s3:
            log(f"uploading {len(needed_roles)} file(s) to the local S3 at {s3.endpoint_url}")
            keys, sizes, etags = {}, {}, {}
            client = _upload_client(s3)
            for role in sorted(needed_roles):
                key = DEFAULT_PREFIX + roles[role]
                client.upload_file(str(files.local(roles[role])), s3.bucket, key)
                head = client.head_object(Bucket=s3.bucket, Key=key)
                keys[role], sizes[role], etags[role] = key, head["ContentLength"], head["ETag"]
            megabits = 1e6 / 8
            proxy = LatencyProxy(
                s3.endpoint_url,
                latency=arguments.latency_ms / 1000,
                bandwidth=arguments.bandwidth_mbps * megabits if arguments.bandwidth_mbps else None,
                connection_bandwidth=(
                    arguments.connection_mbps * megabits if arguments.connection_mbps else None
                ),
            )
            with proxy:
                context = {
                    "endpoint_url": proxy.endpoint_url,
                    "bucket": s3.bucket,
                    "keys": keys,
                    "sizes": sizes,
                    "etags": etags,
                    "scratch_dir": "",
                    "index_dir": str(workdir / "indexes"),
                    "layouts_file": str(layouts_file),
                    "local_files": {role: str(files.local(roles[role])) for role in needed_roles},
                    # Whose CPU time is the serving side's (with this process: the proxy).
                    "server_pid": s3.pid,
                }
                index_builds = _build_indexes(arguments, proxy, context, needed_roles, workdir)
                runs = _run_all(arguments, proxy, context, workloads, index_builds, workdir)
    _check_results(runs)
    return {
        "command": reproduce_command(argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started_at)),
        "duration_s": time.time() - started_at,
        "settings": {
            "latency_ms": arguments.latency_ms,
            "bandwidth_mbps_total": arguments.bandwidth_mbps,
            "bandwidth_mbps_per_connection": arguments.connection_mbps,
            "dask_threads": arguments.dask_threads,
            "quick": arguments.quick,
            "repeats": arguments.repeats,
            "methods": list(arguments.methods),
            "workloads": list(arguments.workloads),
        },
        "environment": environment(),
        "dataset": _dataset_description(files, workloads, layouts),
        "methods": {name: METHODS[name].label for name in arguments.methods},
        "workloads": [w.to_dict() for w in workloads],
        "index_builds": index_builds,
        "runs": runs,
    }


def _build_indexes(
    arguments: argparse.Namespace,
    proxy: LatencyProxy,
    context: dict[str, Any],
    roles: set[str],
    workdir: Path,
) -> list[dict[str, Any]]:
    """The one-time index builds the methods rely on (their ``prebuilt_index``), each in a
    process of its own through the proxy, measured like any run."""
    builds = []
    wanted = sorted({METHODS[name].prebuilt_index for name in arguments.methods} - {None})
    for build in wanted:
        for role in sorted(roles):
            log(f"building the {build} index of the {role} file (one-time, through the proxy)")
            scratch = workdir / "scratch"
            scratch.mkdir(exist_ok=True)
            job = {
                "task": "index",
                "method": build,
                "role": role,
                "context": {**context, "scratch_dir": str(scratch)},
            }
            result = measure(proxy, job, workdir, arguments.index_timeout)
            # A worker that timed out or crashed reported nothing about itself.
            result.update(method=build, role=role)
            shutil.rmtree(scratch, ignore_errors=True)
            if result.get("error"):
                log(f"  failed: {result['error']}")
            builds.append(result)
    return builds


def _prepare_scratch(scratch: Path, context: dict[str, Any], method: str) -> None:
    """An empty private folder for one run; for a method that reads through a prebuilt s3ecephys
    index cache, a copy of it there, so that what one run adds to the cache (a chunk table it
    read) is not found by the next."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    build = METHODS[method].prebuilt_index
    if build is not None and build.startswith("s3ecephys"):
        shutil.copytree(Path(context["index_dir"]) / build, scratch / INDEX_CACHE_FOLDER)


def _run_all(
    arguments: argparse.Namespace,
    proxy: LatencyProxy,
    context: dict[str, Any],
    workloads: list[Workload],
    index_builds: list[dict[str, Any]],
    workdir: Path,
) -> list[dict[str, Any]]:
    failed_builds = {
        (build["method"], build["role"]): build["error"]
        for build in index_builds
        if build.get("error")
    }
    runs = []
    for workload in workloads:
        for name in arguments.methods:
            reason = NOT_APPLICABLE.get((name, workload.kind))
            build = METHODS[name].prebuilt_index
            if reason is None and (build, workload.file) in failed_builds:
                reason = f"its index build failed: {failed_builds[(build, workload.file)]}"
            row: dict[str, Any] = {
                "method": name,
                "workload": workload.name,
                "needed_bytes": workload.needed_bytes,
                "needed_ranges": workload.needed_ranges,
                "decodes": METHODS[name].decodes,
            }
            if reason is not None:
                log(f"{workload.name} {name}: n/a ({reason[:60]})")
                runs.append({**row, "status": "n/a", "reason": reason})
                continue
            repeats = []
            for _ in range(max(1, arguments.repeats)):
                scratch = workdir / "scratch"
                _prepare_scratch(scratch, context, name)
                job = {
                    "method": name,
                    "workload": workload.to_dict(),
                    "context": {**context, "scratch_dir": str(scratch)},
                    "dask_threads": arguments.dask_threads,
                }
                repeats.append(measure(proxy, job, workdir, arguments.timeout))
                shutil.rmtree(scratch, ignore_errors=True)
                if repeats[-1].get("error"):
                    break
            result = repeats[0]
            result.update(row)
            result["status"] = "error" if result.get("error") else "ok"
            if result["status"] == "ok" and len(repeats) > 1:
                walls = [r["wall"]["total"] for r in repeats if "wall" in r]
                result["wall_repeats"] = walls
                result["wall"]["total_median"] = statistics.median(walls)
            _log_run(result)
            runs.append(result)
    return runs


def _log_run(result: dict[str, Any]) -> None:
    where = f"{result['workload']} {result['method']}"
    if result["status"] != "ok":
        log(f"{where}: {result['status']}: {result.get('error')}")
        return
    traffic = result["proxy"]["all"]
    log(
        f"{where}: {traffic['requests']} requests, {traffic['bytes'] / 1e6:.2f} MB, "
        f"{traffic['round_trips']} round trips, {result['wall']['total']:.2f} s, "
        f"peak RSS {result['peak_rss'] / 2**20:.0f} MiB"
    )


def _check_results(runs: list[dict[str, Any]]) -> None:
    """Mark each run whose values differ from the local h5py reference (or, without it, from the
    first successful run of the workload that decodes values). Runs that decode nothing
    (``raw-get``) have no values to compare and are neither reference nor checked."""
    by_workload: dict[str, list[dict[str, Any]]] = {}
    for run_result in runs:
        if run_result["status"] == "ok" and run_result.get("decodes", True):
            by_workload.setdefault(run_result["workload"], []).append(run_result)
    for results in by_workload.values():
        reference = next((r for r in results if r["method"] == "local-h5py"), results[0])
        for result in results:
            result["matches_reference"] = same_result(
                result.get("fingerprint"), reference.get("fingerprint")
            )
            result["reference_method"] = reference["method"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parse_arguments(argv)
    results = run(arguments, argv)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(results, indent=1, default=str))
    markdown = arguments.out.with_suffix(".md")
    write_markdown(results, markdown)
    print(f"results: {arguments.out}")
    print(f"table:   {markdown}")
    print(f"took {results['duration_s'] / 60:.1f} min; reproduce with:")
    print(f"  {results['command']}")
    mismatches = [
        f"{r['workload']} {r['method']}"
        for r in results["runs"]
        if r.get("matches_reference") is False
    ]
    if mismatches:
        print(f"VALUES DIFFER from the reference: {', '.join(mismatches)}", file=sys.stderr)
    errors = [f"{r['workload']} {r['method']}" for r in results["runs"] if r["status"] == "error"]
    if errors:
        print(f"failed runs: {', '.join(errors)}", file=sys.stderr)
    return 1 if errors or mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
