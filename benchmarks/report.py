"""The benchmark's Markdown report, and the description of the machine it ran on."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = (
    "s3ecephys",
    "h5py",
    "numpy",
    "s3fs",
    "fsspec",
    "aiobotocore",
    "remfile",
    "kerchunk",
    "zarr",
    "h5coro",
    "pyfive",
    "numcodecs",
    "dask",
    "moto",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _huge_pages() -> str:
    """The kernel's transparent huge page modes and numpy's use of them: where a page fault may
    compact memory for numpy's large arrays, the system CPU of W7's temporaries varies a lot."""
    modes = []
    for name in ("enabled", "defrag"):
        try:
            text = Path(f"/sys/kernel/mm/transparent_hugepage/{name}").read_text()
        except OSError:
            return "unknown"
        chosen = text[text.find("[") + 1 : text.find("]")] if "[" in text else text.strip()
        modes.append(f"{name}={chosen}")
    madvise = os.environ.get("NUMPY_MADVISE_HUGEPAGE", "default")
    return ", ".join(modes) + f"; NUMPY_MADVISE_HUGEPAGE={madvise}"


def _git(*arguments: str) -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        return subprocess.run(
            ["git", *arguments], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def environment() -> dict[str, Any]:
    """Machine, Python, package versions and the commit, for the record."""
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": _memory_bytes(),
        "huge_pages": _huge_pages(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(status) if status is not None else None,
    }


# -- formatting -----------------------------------------------------------------------------------


def _mb(count: int | None) -> str:
    if count is None:
        return "–"
    if count == 0:
        return "0"
    return f"{count / 1e6:.3f}" if count < 1e7 else f"{count / 1e6:.0f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _ratio(fetched: int, needed: int | None) -> str:
    if not needed or not fetched:
        return "–"
    return f"{fetched / needed:.2f}×"


def _row_cells(run: dict[str, Any], labels: dict[str, str]) -> list[str]:
    name = f"{run['method']}"
    if run["status"] == "n/a":
        return [name, "n/a", "", "", "", "", "", "", "", "see notes", ""]
    if run["status"] != "ok":
        return [name, run["status"], "", "", "", "", "", "", "", "see notes", ""]
    traffic, wall = run["proxy"]["all"], run["wall"]
    own = run.get("own_stats")
    own_round_trips = str(own["round_trips"]) if own else "–"
    total_wall = _wall(run)
    if run.get("decodes", True):
        values = {True: "same", False: "**DIFFERENT**", None: "–"}[run.get("matches_reference")]
    else:
        values = "not decoded"
    return [
        name,
        f"{traffic['requests']:,}",
        _mb(traffic["bytes"]),
        _ratio(traffic["bytes"], run.get("needed_bytes")),
        str(traffic["round_trips"]),
        own_round_trips,
        _seconds(total_wall),
        _seconds(wall["open"]),
        _memory(run),
        values,
        _after(run["proxy"].get("after"), wall.get("after")),
    ]


def _after(traffic: dict[str, Any] | None, seconds: float | None) -> str:
    """What a process did after its timed work, until it exited."""
    if traffic is None or seconds is None:
        return "–"
    return f"{traffic['requests']:,} req, {traffic['round_trips']} RT, {seconds:.3f} s"


def _wall(run: dict[str, Any]) -> float:
    """A successful run's wall time, open included (the median of its repeats, if repeated)."""
    wall = run["wall"]
    return wall.get("total_median", wall["total"])


def _memory(run: dict[str, Any]) -> str:
    """Peak RSS, and in brackets how much of it came after the imports."""
    peak = run["peak_rss"] / 2**20
    baseline = run.get("rss_after_imports")
    if baseline is None:
        return f"{peak:.0f}"
    return f"{peak:.0f} (+{peak - baseline / 2**20:.0f})"


_HEADER = [
    "method",
    "requests",
    "MB fetched",
    "÷ needed",
    "round trips",
    "own RT",
    "wall s",
    "of which open s",
    "peak RSS MiB (+ after imports)",
    "values",
    "then until exit",
]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _throughput(results: dict[str, Any], workload: dict[str, Any]) -> list[str]:
    """The workload's successful runs as throughput, MB needed ÷ wall s, and that as a share of
    ``raw-get``'s: the same chunks through the same store at the same concurrency, not decoded,
    so the raw concurrent-GET throughput of this server and proxy. Then where the CPU went: the
    reader's and the serving side's (S3 server and proxy share the machine's cores here)."""
    needed = workload.get("needed_bytes")
    runs = [
        run
        for run in results["runs"]
        if run["workload"] == workload["name"] and run["status"] == "ok"
    ]
    if not needed or not runs:
        return []
    cores = results.get("environment", {}).get("cpus") or 1
    raw = next((needed / _wall(run) for run in runs if run["method"] == "raw-get"), None)
    rows = []
    for run in runs:
        rate = needed / _wall(run)
        share = f"{100 * rate / raw:.0f} %" if raw else "–"
        reader, serving = run.get("read_cpu"), run.get("serving_cpu")
        if reader is not None and serving is not None and reader + serving > 0:
            floor = (reader + serving) / cores
            cpu = [f"{reader:.2f}", f"{serving:.2f}", f"{floor:.2f}", f"{_wall(run) / floor:.2f}×"]
        else:
            cpu = ["–"] * 4
        rows.append([run["method"], _seconds(_wall(run)), f"{rate / 1e6:.1f}", share, *cpu])
    missing = "" if raw else " (no `raw-get` run to compare with)"
    return [
        f"Throughput: {_mb(needed)} MB needed ÷ wall s{missing}. *reader CPU*: the worker "
        "process's CPU seconds (all threads) in the read phase; *serving CPU*: the S3 server's "
        "and the proxy's during the run; *CPU floor*: both over the machine's "
        f"{cores} cores, the wall time if no core were ever idle; *wall ÷ floor* near 1: the run "
        "is bound by this machine's CPU, shared with the serving side.",
        "",
        *_table(
            [
                "method",
                "wall s",
                "MB/s",
                "% of raw GET",
                "reader CPU s",
                "serving CPU s",
                "CPU floor s",
                "wall ÷ floor",
            ],
            rows,
        ),
        "",
    ]


def _first_read(results: dict[str, Any]) -> list[str]:
    """The workload read twice in one process (W2) as "the first read of a fresh process": open
    plus first read from just after the imports, its traffic, then the same read again."""
    workload = next((w for w in results["workloads"] if w.get("repeat")), None)
    if workload is None:
        return []
    rows = []
    for run in results["runs"]:
        if run["workload"] != workload["name"] or run["status"] != "ok":
            continue
        traffic, wall = run["proxy"]["all"], run["wall"]
        again = wall.get("again")
        rows.append(
            [
                run["method"],
                _seconds(wall["total"]),
                str(traffic["round_trips"]),
                f"{traffic['requests']:,}",
                _mb(traffic["bytes"]),
                _seconds(again),
                _seconds(wall["total"] - again) if again is not None else "–",
                _after(run["proxy"].get("after"), wall.get("after")),
            ]
        )
    if not rows:
        return []
    return [
        f"## First read in a fresh process ({workload['name']}: {workload['title']})",
        "",
        "Open + first read, from just after the method's own imports (for s3ecephys: after "
        "`import s3ecephys`; what it imports lazily, the clients it creates and their first "
        "connections count) to the data in hand; the round trips, requests and bytes it took "
        "(proxy); then the same read again in the same process, and the difference: the fixed "
        "cost of a fresh process; *then until exit*: the requests, round trips and seconds "
        "between the end of that work and the process's exit.",
        "",
        *_table(
            [
                "method",
                "open + first read, s",
                "round trips",
                "requests",
                "MB",
                "second read, s",
                "first − second, s",
                "then until exit",
            ],
            rows,
        ),
        "",
    ]


def _summary(results: dict[str, Any], metric: str) -> list[str]:
    """One line per method, one column per workload: wall time or requests."""
    workloads = [w["name"] for w in results["workloads"]]
    cells: dict[tuple[str, str], str] = {}
    for run in results["runs"]:
        key = (run["method"], run["workload"])
        if run["status"] != "ok":
            cells[key] = run["status"]
        elif metric == "wall":
            cells[key] = _seconds(_wall(run))
        elif metric == "requests":
            cells[key] = f"{run['proxy']['all']['requests']:,}"
        else:
            cells[key] = _mb(run["proxy"]["all"]["bytes"])
    rows = [
        [method, *(cells.get((method, w), "") for w in workloads)] for method in results["methods"]
    ]
    return _table(["method", *workloads], rows)


def render_markdown(results: dict[str, Any]) -> str:
    settings, machine, data = results["settings"], results["environment"], results["dataset"]
    bandwidth = []
    if settings["bandwidth_mbps_total"]:
        bandwidth.append(f"{settings['bandwidth_mbps_total']:g} Mbit/s total")
    if settings["bandwidth_mbps_per_connection"]:
        bandwidth.append(f"{settings['bandwidth_mbps_per_connection']:g} Mbit/s per connection")
    link = ", ".join(bandwidth) or "no bandwidth cap"
    if settings.get("dask_threads"):
        link += f", {settings['dask_threads']} dask threads"
    memory = machine.get("memory_bytes")
    lfp = data["lfp_data"]
    commit = machine.get("commit") or "?"
    if machine.get("uncommitted_changes"):
        commit += " + uncommitted changes"
    lines = [
        f"# Benchmark: {settings['latency_ms']:g} ms per request, {link}",
        "",
        f"Measured {results['started']} on {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"{memory / 2**30:.0f} GiB RAM, Python {machine['python']}, commit {commit}; "
        f"transparent huge pages {machine.get('huge_pages', 'unknown')}; "
        f"the whole run took {results['duration_s'] / 60:.1f} min. Reproduce with:",
        "",
        f"    {results['command']}",
        "",
        "Local S3 (moto) behind the latency proxy on the same machine: latency and bandwidth are "
        "the proxy's, CPU is shared by the reader, the proxy and the S3 server.",
        "",
        f"Data: LFP file {data['lfp_file_bytes'] / 1e6:.0f} MB, `data` {tuple(lfp['shape'])} "
        f"{lfp['dtype']} in chunks {tuple(lfp['chunks']) if lfp['chunks'] else None} "
        f"({lfp['stored_chunks']:,} stored, filters {lfp['filters']}); session file "
        f"{data['session_file_bytes'] / 1e6:.0f} MB, {data['units']:,} units, "
        f"{data['spikes']:,} spikes ({data['spike_times_layout']} `spike_times`).",
        "",
        "## How to read the tables",
        "",
        "Every figure is for a fresh process that opens the file and then does the workload "
        "(W1 is the open itself). *requests*, *MB fetched* and *round trips* are counted by the "
        "proxy; *round trips* is the longest chain of requests that ran one after another (each "
        "pays the latency), *own RT* the round trips s3ecephys' and the ideal reader's "
        "`RangeStore` counted themselves. *÷ needed* is MB fetched over the stored bytes of the "
        "chunks (or runs) the selection touches, the floor. *of which open s* is the part of the "
        "wall time spent opening (for *download*, the download). *peak RSS* is the worker "
        "process's peak, imports included (in brackets: the growth after the imports). "
        "*values* compares the result with h5py on the local file (*not decoded*: the method "
        "only fetched the bytes). Under W7, *MB/s* is the MB needed over the wall time and "
        "*% of raw GET* that over `raw-get`'s: the same chunks through the same store at the same "
        "concurrency, bodies dropped undecoded, i.e. the raw concurrent-GET throughput. *then "
        "until exit*: what the process still did after the timed work, until it exited "
        "(requests, round trips, seconds; for s3ecephys the chunk tables its open reads in the "
        "background and keeps beside the index, which an exiting interpreter waits for).",
        "",
        *_first_read(results),
        "## Wall time, s",
        "",
        *_summary(results, "wall"),
        "",
        "## Requests",
        "",
        *_summary(results, "requests"),
        "",
        "## MB fetched",
        "",
        *_summary(results, "bytes"),
        "",
    ]
    for workload in results["workloads"]:
        needed = workload.get("needed_bytes")
        floor = (
            f"needed: {_mb(needed)} MB in {workload['needed_ranges']:,} chunks/runs"
            if needed is not None
            else "needed: metadata only"
        )
        lines += [
            f"## {workload['name']}: {workload['title']}",
            "",
            f"{workload['description']}; {floor}.",
            "",
            *_table(
                _HEADER,
                [
                    _row_cells(run, results["methods"])
                    for run in results["runs"]
                    if run["workload"] == workload["name"]
                ],
            ),
            "",
        ]
        if workload.get("kind") == "rms":
            lines += _throughput(results, workload)
    if results["index_builds"]:
        rows = []
        for build in results["index_builds"]:
            if build.get("error"):
                rows.append([build["method"], build["role"], "error", "", "", "", "", ""])
                continue
            traffic = build["proxy"]["all"]
            after = build["proxy"].get("after")
            rows.append(
                [
                    build["method"],
                    build["role"],
                    f"{traffic['requests']:,}",
                    _mb(traffic["bytes"]),
                    str(traffic["round_trips"]),
                    _seconds(build["wall"]["total"]),
                    _after(after, build["wall"].get("after")),
                    f"{build['peak_rss'] / 2**20:.0f}",
                ]
            )
        lines += [
            "## One-time index builds (before the warm runs)",
            "",
            *_table(
                [
                    "index",
                    "file",
                    "requests",
                    "MB",
                    "round trips",
                    "wall s",
                    "then until exit",
                    "peak RSS MiB",
                ],
                rows,
            ),
            "",
            "*then until exit*: requests, round trips and seconds between the end of the timed "
            "work and the process's exit (s3ecephys: the chunk tables the open reads in the "
            "background and keeps, which an exiting interpreter waits for).",
            "",
        ]
    notes = []
    for run in results["runs"]:
        if run["status"] == "n/a":
            notes.append(f"- {run['workload']} {run['method']}: n/a: {run['reason']}")
        elif run["status"] != "ok":
            notes.append(f"- {run['workload']} {run['method']}: {run['status']}: {run['error']}")
    for build in results["index_builds"]:
        if build.get("error"):
            notes.append(f"- {build['method']} index of the {build['role']} file: {build['error']}")
    if notes:
        lines += ["## Notes", "", *notes, ""]
    lines += ["## Methods", ""]
    lines += [f"- **{name}**: {label}" for name, label in results["methods"].items()]
    lines.append("")
    return "\n".join(lines)


def write_markdown(results: dict[str, Any], target: Path) -> None:
    Path(target).write_text(render_markdown(results))
