"""The ``s3ecephys`` command: demo, local S3 server, synthetic dataset."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``s3ecephys`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (FileExistsError, ValueError, OSError) as error:
        print(f"s3ecephys {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
