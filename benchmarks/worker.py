"""One measurement in a process of its own: ``python -m benchmarks.worker job.json result.json``.

A fresh process per (method, workload) makes its peak memory attributable to that method and that
workload alone, and starts every method with cold connections and empty in-memory caches. The
worker imports what the method needs first (outside the clock and the memory baseline), then times
two phases with ``time.monotonic()`` — *open* (open the file) and *read* (the workload) — so the
parent can attribute the proxy's request records to each phase by their arrival time.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one method on one workload; returns phases, the result's fingerprint, memory, stats."""
    from benchmarks.methods import METHODS, Context
    from benchmarks.workloads import Workload, fingerprint

    context = Context(**job["context"])
    workload = Workload.from_dict(job["workload"])
    method = METHODS[job["method"]](context)
    result: dict[str, Any] = {"method": method.name, "workload": workload.name}
    method.import_modules()
    import dask.array  # noqa: F401  (every method's W7 needs it; import outside the baseline)
    import numpy  # noqa: F401

    if job.get("dask_threads"):
        dask.config.set(num_workers=job["dask_threads"])
    result["dask_threads"] = dask.config.get("num_workers", None)
    result["rss_after_imports"] = _peak_rss()
    result["settings"] = method.settings()
    handle = None
    try:
        began = time.monotonic()
        handle = method.open(workload.file)
        opened = time.monotonic()
        if workload.kind == "metadata":
            value = method.metadata(handle, workload.dataset)
        elif workload.kind == "box":
            value = method.read_box(handle, workload.dataset, workload.box)
        elif workload.kind == "ragged":
            value = method.read_ragged(
                handle, workload.dataset, workload.index_dataset, workload.units
            )
        elif workload.kind == "rms":
            value = method.channel_rms(handle, workload.dataset)
        else:
            raise ValueError(f"unknown workload kind {workload.kind!r}")
        done = time.monotonic()
        result["phases"] = {"open": [began, opened], "read": [opened, done]}
        if workload.kind == "metadata":
            # Attribute names and values differ in form between libraries; the shape, type and
            # chunking must agree.
            result["fingerprint"] = fingerprint({k: value[k] for k in ("shape", "dtype", "chunks")})
            result["attributes"] = value["attributes"]
        else:
            result["fingerprint"] = fingerprint(value)
        result["own_stats"] = method.own_stats(handle)
    except Exception as error:  # reported in the results table, not hidden
        result["error"] = f"{type(error).__name__}: {error}"
        result["traceback"] = traceback.format_exc()[-3000:]
    finally:
        if handle is not None:
            try:
                method.close(handle)
            except Exception as error:  # a failing close must not hide the measurement
                result.setdefault("close_error", f"{type(error).__name__}: {error}")
    result["peak_rss"] = _peak_rss()
    return result


def run_index_job(job: dict[str, Any]) -> dict[str, Any]:
    """Build one method's index of one file (s3ecephys' cache, kerchunk's references), timed."""
    from benchmarks.methods import Context, build_references
    from s3ecephys.hdf5 import open_hdf5

    context = Context(**job["context"])
    role, method = job["role"], job["method"]
    result: dict[str, Any] = {"method": method, "role": role}
    try:
        began = time.monotonic()
        if method == "s3ecephys":
            handle = open_hdf5(
                context.url(role),
                storage_options=context.storage_options,
                cache_dir=context.warm_cache_dir,
            )
            # The whole index, as after earlier reads: chunk tables too (left for the first read
            # of each dataset otherwise).
            handle.load_chunk_tables()
            stats = handle.store.stats
            result["own_stats"] = {
                "requests": stats.requests,
                "bytes": stats.bytes,
                "round_trips": stats.round_trips,
            }
        elif method == "kerchunk":
            references = build_references(context, role)
            target = context.references_file(role)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(references))
            result["index_bytes"] = target.stat().st_size
        else:
            raise ValueError(f"no index to build for {method!r}")
        result["phases"] = {"open": [began, began], "read": [began, time.monotonic()]}
    except Exception as error:  # reported; the method's runs are then marked n/a
        result["error"] = f"{type(error).__name__}: {error}"
        result["traceback"] = traceback.format_exc()[-3000:]
    result["peak_rss"] = _peak_rss()
    return result


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 2:
        print("usage: python -m benchmarks.worker job.json result.json", file=sys.stderr)
        return 2
    job = json.loads(Path(arguments[0]).read_text())
    result = run_index_job(job) if job.get("task") == "index" else run_job(job)
    Path(arguments[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
