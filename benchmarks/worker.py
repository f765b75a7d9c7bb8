"""One measurement in a process of its own: ``python -m benchmarks.worker job.json result.json``.

A fresh process per (method, workload) makes its peak memory attributable to that method and that
workload alone, and starts every method with cold connections and empty in-memory caches. The
worker sets the method's environment, imports what a user of the method imports (outside the clock
and the memory baseline; whatever the method imports lazily is inside), then times two phases with
``time.monotonic()`` — *open* (open the file) and *read* (the workload) — so the parent can
attribute the proxy's request records to each phase by their arrival time. A workload marked
``repeat`` is then read once more in the same process, timed apart (*again*): the first read's
extra over the second is the fixed cost a fresh process pays.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# Modules whose import belongs to a method's measured cost unless its user imports them: which of
# them were loaded when the clock started is recorded with every run.
WATCHED_MODULES = ("s3fs", "aiobotocore", "botocore", "aiohttp", "h5py", "dask", "zarr", "requests")


def _peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes.

    Linux's ``VmHWM`` belongs to this process image alone; ``getrusage``'s maximum survives
    ``exec`` and so would report the runner's peak (the parent at fork time) for every worker
    whose own peak is smaller.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one method on one workload; returns phases, the result's fingerprint, memory, stats."""
    from benchmarks.methods import METHODS, Context
    from benchmarks.workloads import Workload, fingerprint

    context = Context(**job["context"])
    workload = Workload.from_dict(job["workload"])
    method = METHODS[job["method"]](context)
    result: dict[str, Any] = {"method": method.name, "workload": workload.name}
    os.environ.update(method.environment())
    method.import_modules()
    if workload.kind == "rms":
        # W7's reduction is the user's dask code, whatever the reader: imported like the reader.
        import dask
        import dask.array  # noqa: F401

        with contextlib.suppress(ImportError):  # dask imports it on its first compute
            import distributed  # noqa: F401

        if job.get("dask_threads"):
            dask.config.set(num_workers=job["dask_threads"])
        result["dask_threads"] = dask.config.get("num_workers", None)
    result["rss_after_imports"] = _peak_rss()
    result["settings"] = method.settings()
    result["imported_before_clock"] = [name for name in WATCHED_MODULES if name in sys.modules]
    handle = None
    try:
        began = time.monotonic()
        handle = method.open(workload.file)
        opened, cpu_opened = time.monotonic(), time.process_time()
        value = _read(method, handle, workload)
        done = time.monotonic()
        result["read_cpu"] = time.process_time() - cpu_opened  # all of this process's threads
        result["phases"] = {"open": [began, opened], "read": [opened, done]}
        result["own_stats"] = method.own_stats(handle)
        if workload.repeat:
            again = _read(method, handle, workload)
            result["phases"]["again"] = [done, time.monotonic()]
            result["again_matches"] = fingerprint(again) == fingerprint(value)
        if workload.kind == "metadata":
            # Attribute names and values differ in form between libraries; the shape, type and
            # chunking must agree.
            result["fingerprint"] = fingerprint({k: value[k] for k in ("shape", "dtype", "chunks")})
            result["attributes"] = value["attributes"]
        else:
            result["fingerprint"] = fingerprint(value)
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


def _read(method: Any, handle: Any, workload: Any) -> Any:
    """The workload's answer, read through ``handle``."""
    if workload.kind == "metadata":
        return method.metadata(handle, workload.dataset)
    if workload.kind == "box":
        return method.read_box(handle, workload.dataset, workload.box)
    if workload.kind == "ragged":
        return method.read_ragged(handle, workload.dataset, workload.index_dataset, workload.units)
    if workload.kind == "rms":
        return method.channel_rms(handle, workload.dataset)
    raise ValueError(f"unknown workload kind {workload.kind!r}")


# The one-time index builds (``job["method"]``), each into its own folder of Context.index_dir.
INDEX_BUILDS = ("s3ecephys-open", "s3ecephys-tables", "kerchunk")


def run_index_job(job: dict[str, Any]) -> dict[str, Any]:
    """Build one index of one file, timed: s3ecephys' cache as one earlier process leaves it
    (``s3ecephys-open``: ``open_hdf5`` alone; ``s3ecephys-tables``: then ``load_chunk_tables()``,
    as after reads of every dataset), or kerchunk's references."""
    from benchmarks.methods import Context, build_references

    context = Context(**job["context"])
    role, build = job["role"], job["method"]
    result: dict[str, Any] = {"method": build, "role": role}
    try:
        if build not in INDEX_BUILDS:
            raise ValueError(f"no index to build for {build!r}")
        target = Path(context.index_dir) / build
        if build.startswith("s3ecephys"):
            os.environ["S3ECEPHYS_CACHE_DIR"] = str(target)
            import s3ecephys
        began = time.monotonic()
        if build.startswith("s3ecephys"):
            handle = s3ecephys.open_hdf5(context.url(role), storage_options=context.storage_options)
            if build == "s3ecephys-tables":
                handle.load_chunk_tables()
            stats = handle.store.stats
            result["own_stats"] = {
                "requests": stats.requests,
                "bytes": stats.bytes,
                "round_trips": stats.round_trips,
            }
        else:
            references = build_references(context, role)
            target = context.references_file(role)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(references))
            result["index_bytes"] = target.stat().st_size
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
