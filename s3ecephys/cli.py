"""The ``s3ecephys`` command: demo, local S3 server, synthetic dataset, cache folders, and
``ls``/``info``/``lfp`` to look around the dataset (:mod:`s3ecephys.cli_explore`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from s3ecephys.cli_explore import add_explore_commands


def _make_dataset(args: argparse.Namespace) -> int:
    from s3ecephys.synthetic import SyntheticSpec, write_dataset

    spec = SyntheticSpec.benchmark() if args.size == "benchmark" else SyntheticSpec.small()
    started = time.perf_counter()
    dataset = write_dataset(args.directory, spec=spec, seed=args.seed)
    print(
        f"wrote {len(dataset.files)} files ({len(dataset.session_ids)} sessions) to {dataset.root} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


def _serve_local(args: argparse.Namespace) -> int:
    import tempfile

    from s3ecephys.storage.location import DEFAULT_PREFIX
    from s3ecephys.synthetic import SyntheticSpec, write_dataset
    from s3ecephys.testing import LocalS3

    prefix = DEFAULT_PREFIX
    with tempfile.TemporaryDirectory(prefix="s3ecephys-") as scratch:
        if args.dataset:
            root = Path(args.dataset)
        else:
            spec = SyntheticSpec.benchmark() if args.size == "benchmark" else SyntheticSpec.small()
            print(f"writing a {args.size} synthetic dataset ...", flush=True)
            root = write_dataset(Path(scratch) / "dataset", spec=spec, seed=args.seed).root
        with LocalS3(port=args.port) as s3:
            count = s3.upload_directory(root, prefix=prefix)
            print(f"serving {count} files at {s3.url(prefix)}")
            print(f"endpoint: {s3.endpoint_url}")
            print(f"export S3ECEPHYS_ENDPOINT_URL={s3.endpoint_url}")
            print("press Ctrl-C to stop", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("stopped")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from s3ecephys.demo import run_demo

    run_demo(Path(args.out), seed=args.seed)
    return 0


def _cache_files(args: argparse.Namespace, policy: str):
    from s3ecephys.allen.files import DatasetFiles
    from s3ecephys.storage.location import DataLocation

    options = {"endpoint_url": args.endpoint_url} if args.endpoint_url else None
    location = DataLocation.resolve(args.url, options)
    # Both commands compare with the remote copy: a wrong endpoint or prefix is named at once.
    location.check()
    return DatasetFiles(location, args.cache, policy)


def _tables(files):
    import pandas as pd

    from s3ecephys.allen import manifest

    with files.open_small(manifest.sessions_csv()) as handle:
        sessions = pd.read_csv(handle, index_col="id")
    with files.open_small(manifest.probes_csv()) as handle:
        probes = pd.read_csv(handle, index_col="id")
    return sessions, probes


def _download(args: argparse.Namespace) -> int:
    from s3ecephys.allen.prefetch import prefetch, project_paths, session_paths

    files = _cache_files(args, "download")
    sessions, probes = _tables(files)
    paths = project_paths(sessions["session_type"]) + session_paths(
        sessions, probes, args.sessions, lfp=args.lfp
    )
    report = prefetch(files, paths, progress=not args.quiet)
    print(report.summary())
    return 0 if report.ok else 1


def _verify(args: argparse.Namespace) -> int:
    from s3ecephys.allen.prefetch import project_paths, session_paths, verify

    files = _cache_files(args, "auto")
    sessions, probes = _tables(files)
    paths = project_paths(sessions["session_type"]) + session_paths(sessions, probes, lfp=True)
    report = verify(
        files, paths, checksum=args.checksum, repair=args.repair, progress=not args.quiet
    )
    print(report.summary())
    return 0 if report.ok else 1


def _add_source_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--cache", required=True, help="the cache folder (AllenSDK layout)")
    command.add_argument(
        "--url", help="dataset root, s3://bucket/prefix/ (default: the public bucket)"
    )
    command.add_argument("--endpoint-url", help="S3 endpoint (a mirror or a local S3)")
    command.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3ecephys",
        description="Read the Allen Visual Coding - Neuropixels dataset in place on S3.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="run the data-access tutorial against an embedded local S3"
    )
    demo.add_argument("--out", default="s3ecephys-demo", help="folder for the plot (PNG)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the synthetic dataset")
    demo.set_defaults(run=_demo)

    serve = commands.add_parser(
        "serve-local", help="serve a synthetic dataset from a local S3 until interrupted"
    )
    serve.add_argument("--dataset", help="serve this dataset folder instead of writing one")
    serve.add_argument("--size", choices=("small", "benchmark"), default="small")
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    serve.add_argument("--seed", type=int, default=0)
    serve.set_defaults(run=_serve_local)

    make = commands.add_parser("make-dataset", help="write a synthetic dataset to a folder")
    make.add_argument("directory", help="an empty or new folder")
    make.add_argument("--size", choices=("small", "benchmark"), default="small")
    make.add_argument("--seed", type=int, default=0)
    make.set_defaults(run=_make_dataset)

    download = commands.add_parser(
        "download", help="download sessions (and their LFP) into a cache folder, verified"
    )
    _add_source_arguments(download)
    download.add_argument("--sessions", nargs="+", type=int, help="session ids (default: all)")
    download.add_argument("--lfp", action="store_true", help="also the probes' LFP files")
    download.set_defaults(run=_download)

    check = commands.add_parser(
        "verify", help="report missing, partial and corrupt files of a cache folder"
    )
    _add_source_arguments(check)
    check.add_argument("--checksum", action="store_true", help="also compare MD5s with ETags")
    check.add_argument("--repair", action="store_true", help="download broken files again")
    check.set_defaults(run=_verify)

    add_explore_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``s3ecephys`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (FileExistsError, ValueError, OSError) as error:
        print(f"s3ecephys {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyError as error:
        # A KeyError's text is its key's repr: print its message as it is.
        print(f"s3ecephys {args.command}: {error.args[0] if error.args else error}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
