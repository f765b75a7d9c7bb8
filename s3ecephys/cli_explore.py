"""``s3ecephys ls``, ``info`` and ``lfp``: look around the dataset from a shell.

``ls`` prints the project tables (AllenSDK's), filtered; ``info`` prints the HDF5 tree of one
file from its index (no more requests than an open); ``lfp`` fetches one window of a probe's LFP
in place and writes it as netCDF, numpy or a plot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TABLES = ("sessions", "probes", "channels", "units")
LFP_FORMATS = (".nc", ".npy", ".png")


def _storage_options(args: argparse.Namespace) -> dict[str, Any] | None:
    return {"endpoint_url": args.endpoint_url} if args.endpoint_url else None


def _project_cache(args: argparse.Namespace) -> Any:
    from s3ecephys.allen.cache import EcephysProjectCache

    return EcephysProjectCache.from_s3(
        args.url, _storage_options(args), cache_dir=args.cache, index_cache_dir=args.index_cache
    )


# -- ls ------------------------------------------------------------------------------------------


def _table(cache: Any, kind: str) -> pd.DataFrame:
    if kind == "units":
        # Every unit: the quality filters are for the user to apply (--where).
        return cache.get_units(amplitude_cutoff_maximum=np.inf, presence_ratio_minimum=-np.inf,
                               isi_violations_maximum=np.inf)
    return {"sessions": cache.get_session_table, "probes": cache.get_probes,
            "channels": cache.get_channels}[kind]()


def _has_structure(table: pd.DataFrame, structures: list[str]) -> pd.Series:
    if "ecephys_structure_acronym" in table:
        return table["ecephys_structure_acronym"].isin(structures)
    return table["ecephys_structure_acronyms"].map(
        lambda acronyms: bool(set(structures) & set(np.atleast_1d(acronyms)))
    )


def filter_table(table: pd.DataFrame, args: argparse.Namespace, sessions: pd.DataFrame
                 ) -> pd.DataFrame:
    """The rows ``ls``'s options keep."""
    if args.session:
        table = table[np.isin(table.get("ecephys_session_id", table.index), args.session)]
    session_ids = table.get("ecephys_session_id", table.index)
    if args.session_type:
        chosen = sessions.index[sessions["session_type"].isin(args.session_type)]
        table = table[np.isin(session_ids, chosen)]
    if args.structure:
        table = table[_has_structure(table, args.structure)]
    if args.where:
        try:
            table = table.query(args.where)
        except Exception as error:  # pandas raises many kinds for a bad expression
            raise ValueError(f"--where {args.where!r}: {error}") from None
    if args.columns:
        unknown = [c for c in args.columns if c not in table]
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; columns: {list(table.columns)}")
        table = table[args.columns]
    return table


def run_ls(args: argparse.Namespace) -> int:
    kind = next((k for k in TABLES[1:] if getattr(args, k)), "sessions")
    cache = _project_cache(args)
    sessions = cache.get_session_table()
    table = filter_table(_table(cache, kind), args, sessions)
    if args.csv:
        table.to_csv(sys.stdout)
        return 0
    with pd.option_context("display.max_rows", args.limit, "display.max_columns", None,
                           "display.width", 200):
        print(table.head(args.limit).to_string() if len(table) else "(no rows)")
    shown = min(len(table), args.limit)
    print(f"{len(table)} {kind}" + (f" ({shown} shown; --limit N or --csv)" if shown < len(table)
                                     else ""))
    return 0 if len(table) else 1


# -- info ----------------------------------------------------------------------------------------


def _size(count: float) -> str:
    if count < 1024:
        return f"{count:.0f} B"
    units = ("KiB", "MiB", "GiB")
    power = min(int(np.log2(count) // 10), len(units))
    return f"{count / 1024**power:.1f} {units[power - 1]}"


def describe_dataset(dataset: Any) -> str:
    """shape, dtype, layout/chunks, filters and stored bytes of one dataset, from its index."""
    shape = "null" if dataset.shape is None else "x".join(map(str, dataset.shape)) or "scalar"
    parts = [shape, str(dataset.dtype)]
    parts.append(f"chunks {'x'.join(map(str, dataset.chunks))}" if dataset.chunks
                 else dataset.layout)
    filters = [
        f"{dataset.compression}({dataset.compression_opts})" if dataset.compression_opts
        is not None else dataset.compression,
        "shuffle" if dataset.shuffle else None,
        "fletcher32" if dataset.fletcher32 else None,
    ]
    if any(filters):
        parts.append("+".join(f for f in filters if f))
    index = dataset.index
    if index.inline is not None:
        parts.append("values in the index")
    elif index.layout == "chunked" and index.chunk_table is None:
        parts.append("stored ? (chunk table not read: --chunk-tables)")
    else:
        parts.append(f"stored {_size(index.storage_size)}")
    return ", ".join(parts)


def run_info(args: argparse.Namespace) -> int:
    from s3ecephys.hdf5 import Dataset, open_hdf5

    # Only what is asked for: a listing that walked chunk tables in the background would print
    # sizes depending on how far the walk got, and wait for it at exit.
    file = open_hdf5(
        args.url,
        storage_options=_storage_options(args),
        cache_dir=args.index_cache,
        chunk_tables="now" if args.chunk_tables else "on-read",
    )
    root = file[args.group] if args.group else file
    if isinstance(root, Dataset):
        print(f"{root.name}: {describe_dataset(root)}")
        return 0
    counts = {"groups": 0, "datasets": 0}
    stored = 0
    print(f"{file.url}  ({root.name})")
    # Depth first, in the file's order (a group's members right below it).
    pending = [(root[name], name, 0) for name in reversed(list(root))]
    seen: set[str] = set()
    while pending:
        node, leaf, depth = pending.pop()
        if isinstance(node, Dataset):
            counts["datasets"] += 1
            stored += node.index.storage_size
            print(f"{'  ' * depth}{leaf}: {describe_dataset(node)}")
            continue
        counts["groups"] += 1
        print(f"{'  ' * depth}{leaf}/")
        # A group reached again through a link is listed once, not walked twice.
        if node.name in seen or (args.depth is not None and depth + 1 >= args.depth):
            continue
        seen.add(node.name)
        pending.extend((node[name], name, depth + 1) for name in reversed(list(node)))
    stats = file.store.stats
    print(
        f"{counts['groups']} groups, {counts['datasets']} datasets, {_size(stored)} stored in "
        f"known chunk tables; {stats.requests} requests ({_size(stats.bytes)}) to answer this"
    )
    return 0


# -- lfp -----------------------------------------------------------------------------------------


def _lfp_window(args: argparse.Namespace) -> Any:
    cache = _project_cache(args)
    session = cache.get_session_data(args.session)
    lfp = session.get_lfp(args.probe)
    window = lfp.sel(time=slice(args.start, args.stop))
    if args.channels:
        known = window["channel"].to_numpy().tolist()
        missing = sorted(set(args.channels) - set(known))
        if missing:
            raise ValueError(
                f"channel(s) {missing[:10]} have no LFP on probe {args.probe}; its "
                f"{len(known)} LFP channels run from {known[0]} to {known[-1]}"
            )
        window = window.sel(channel=args.channels)
    channels = session.channels.reindex(window["channel"].to_numpy())
    coordinates = {
        name: ("channel", channels[name].to_numpy())
        for name in ("ecephys_structure_acronym", "probe_vertical_position")
        if name in channels
    }
    if window.sizes["time"] == 0:
        first, last = float(lfp["time"][0]), float(lfp["time"][-1])
        raise ValueError(
            f"no LFP sample between {args.start} and {args.stop} s; probe {args.probe} "
            f"records from {first:.3f} to {last:.3f} s"
        )
    return window.assign_coords(coordinates)


def _plot(window: Any, output: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("writing a plot needs matplotlib: pip install 's3ecephys[plot]'") from None
    depth = window["probe_vertical_position"] if "probe_vertical_position" in window.coords else (
        window["channel"])
    order = np.argsort(depth.to_numpy(), kind="stable")
    figure, axes = plt.subplots(figsize=(10, 5))
    limit = float(np.nanmax(np.abs(window))) * 1e6 or 1.0
    mesh = axes.pcolormesh(window["time"], depth.to_numpy()[order],
                           (window.isel(channel=order) * 1e6).T, cmap="RdBu_r",
                           vmin=-limit, vmax=limit, shading="auto")
    figure.colorbar(mesh, ax=axes, label="LFP (µV)")
    axes.set_xlabel("time (s)")
    axes.set_ylabel("depth along the probe (µm)" if depth.name != "channel" else "channel")
    axes.set_title(f"{window.attrs.get('title', 'LFP')}")
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)


def run_lfp(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix not in LFP_FORMATS:
        raise ValueError(f"--output must end in one of {LFP_FORMATS}, not {output.name!r}")
    if not args.stop > args.start:
        raise ValueError(f"--stop ({args.stop}) must be after --start ({args.start})")
    window = _lfp_window(args)
    window.attrs["title"] = f"session {args.session}, probe {args.probe}"
    if args.quiet:
        window = window.compute()
    else:
        from dask.diagnostics import ProgressBar

        with ProgressBar(out=sys.stderr):
            window = window.compute()
    if output.suffix == ".nc":
        window.to_netcdf(output, engine="h5netcdf")
    elif output.suffix == ".npy":
        np.save(output, window.to_numpy())
    else:
        _plot(window, output)
    print(
        f"wrote {output}: {window.sizes['time']} samples x {window.sizes['channel']} channels "
        f"({window.nbytes / 2**20:.1f} MiB) from {float(window['time'][0]):.3f} to "
        f"{float(window['time'][-1]):.3f} s"
    )
    return 0


# -- parser --------------------------------------------------------------------------------------


def _add_dataset_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--url", help="dataset root, s3://bucket/prefix/ or a folder (default: the public bucket)"
    )
    command.add_argument("--endpoint-url", help="S3 endpoint (a mirror or a local S3)")
    command.add_argument(
        "--cache", help="cache folder for the tables (AllenSDK layout; default: user cache)"
    )
    command.add_argument("--index-cache", help="where file indexes are kept (default: user cache)")


def add_explore_commands(commands: Any) -> None:
    """Add ``ls``, ``info`` and ``lfp`` to the ``s3ecephys`` subcommands."""
    ls = commands.add_parser(
        "ls",
        help="list sessions, probes, channels or units (AllenSDK's tables), filtered",
        description="Print one project table, filtered. Exit status 1 when no row is left.",
        epilog="example: s3ecephys ls --channels --structure VISp --session-type "
               "brain_observatory_1.1 --columns ecephys_probe_id probe_vertical_position",
    )
    which = ls.add_mutually_exclusive_group()
    for kind in TABLES[1:]:
        which.add_argument(f"--{kind}", action="store_true",
                           help=f"list {kind} (default: sessions)")
    ls.add_argument("--structure", nargs="+", metavar="ACRONYM",
                    help="rows recorded in these structures (e.g. VISp LGd)")
    ls.add_argument("--session", nargs="+", type=int, metavar="ID", help="these sessions only")
    ls.add_argument("--session-type", nargs="+", metavar="TYPE",
                    help="brain_observatory_1.1 and/or functional_connectivity")
    ls.add_argument("--where", help="a pandas query, e.g. 'snr > 3 and firing_rate > 1'")
    ls.add_argument("--columns", nargs="+", metavar="NAME", help="only these columns")
    ls.add_argument("--limit", type=int, default=50, help="rows printed (default 50)")
    ls.add_argument("--csv", action="store_true", help="all rows as CSV on stdout")
    _add_dataset_arguments(ls)
    ls.set_defaults(run=run_ls)

    info = commands.add_parser(
        "info",
        help="the HDF5 tree of one file: groups, datasets, chunks, filters, stored bytes",
        description="Print an HDF5 file's groups and datasets (shape, dtype, chunks, filters, "
        "stored bytes) from its index: the first time a few requests, then none.",
    )
    info.add_argument("url", help="s3://bucket/key.nwb or a local path")
    info.add_argument("--group", help="only this group (or dataset)")
    info.add_argument("--depth", type=int, help="levels shown below the group")
    info.add_argument("--chunk-tables", action="store_true",
                      help="also read the chunk tables of large datasets (stored bytes; more "
                           "requests)")
    info.add_argument("--endpoint-url", help="S3 endpoint (a mirror or a local S3)")
    info.add_argument("--index-cache", help="where file indexes are kept (default: user cache)")
    info.set_defaults(run=run_info)

    lfp = commands.add_parser(
        "lfp",
        help="fetch a window of a probe's LFP and write it (.nc, .npy or .png)",
        description="Fetch LFP samples between --start and --stop (s, session clock) in place, "
        "only the chunks they touch, and write them: netCDF (.nc, with time, channel, "
        "structure and depth coordinates), numpy (.npy, the (time, channel) values only) or "
        "a plot (.png). Samples in invalid intervals are NaN.",
        epilog="example: s3ecephys lfp 715093703 810755797 --start 100 --stop 102 -o lfp.nc",
    )
    lfp.add_argument("session", type=int, help="session id (s3ecephys ls)")
    lfp.add_argument("probe", type=int, help="probe id (s3ecephys ls --probes --session ID)")
    lfp.add_argument("--start", type=float, required=True, help="start time (s)")
    lfp.add_argument("--stop", type=float, required=True, help="stop time (s)")
    lfp.add_argument("--channels", nargs="+", type=int, metavar="ID",
                     help="channel ids (default: all the probe's LFP channels)")
    lfp.add_argument("-o", "--output", required=True, help="out.nc, out.npy or out.png")
    lfp.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_dataset_arguments(lfp)
    lfp.set_defaults(run=run_lfp)
