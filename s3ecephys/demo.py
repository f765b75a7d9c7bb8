"""``s3ecephys demo``: the data-access tutorial's flow against an embedded local S3.

Everything the real bucket would serve is written as a small synthetic dataset in the Allen layout,
served by a local S3 (moto) and read anonymously, in place, exactly as the real bucket is read.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from s3ecephys.allen import manifest
from s3ecephys.hdf5 import open_hdf5
from s3ecephys.storage.location import DEFAULT_PREFIX, DataLocation


def _section(title: str) -> None:
    print(f"\n== {title}")


def _read_table(location: DataLocation, relative_path: str) -> pd.DataFrame:
    with location.filesystem().open(location.join(relative_path), "rb") as handle:
        return pd.read_csv(handle, index_col="id")


def _plot_lfp(path: Path, time: np.ndarray, volts: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 6))
    spacing = 4 * np.nanstd(volts) if np.isfinite(volts).any() else 1.0
    for column in range(volts.shape[1]):
        axis.plot(time, volts[:, column] * 1e6 + column * spacing * 1e6, linewidth=0.5, color="k")
    axis.set_xlabel("time (s)")
    axis.set_ylabel("channel (offset) / µV")
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run_demo(out: Path, seed: int = 0) -> Path:
    """Run the demo and return the path of the LFP plot it writes into ``out``."""
    from s3ecephys.synthetic import write_dataset
    from s3ecephys.testing import LocalS3

    out.mkdir(parents=True, exist_ok=True)
    prefix = DEFAULT_PREFIX
    with tempfile.TemporaryDirectory(prefix="s3ecephys-demo-") as scratch:
        _section("A synthetic dataset in the Allen layout")
        dataset = write_dataset(Path(scratch) / "dataset", seed=seed)
        print(f"{len(dataset.session_ids)} sessions, {len(dataset.files)} files")

        with LocalS3() as s3:
            s3.upload_directory(dataset.root, prefix=prefix)
            location = s3.location(prefix)
            _section("Served by a local S3, read anonymously")
            print(f"endpoint {s3.endpoint_url}: {location.url}")
            for entry in sorted(location.filesystem().ls(location.url.rstrip("/")))[:8]:
                print(f"  {entry}")

            _section("sessions.csv")
            sessions = _read_table(location, manifest.sessions_csv())
            with pd.option_context("display.width", 140, "display.max_columns", 8):
                print(sessions)
            _section("probes.csv")
            probes = _read_table(location, manifest.probes_csv())
            with pd.option_context("display.width", 140, "display.max_columns", 8):
                print(probes)

            session_id = dataset.session_ids[0]
            probe_id = dataset.lfp_probe_ids[session_id][0]
            url = location.join(manifest.probe_lfp_nwb(session_id, probe_id))
            _section(f"LFP of probe {probe_id}, read in place")
            cache_dir = Path(scratch) / "index-cache"
            lfp_file = open_hdf5(url, storage_options=location.storage_options, cache_dir=cache_dir)
            series = lfp_file[f"acquisition/probe_{probe_id}_lfp_data"]
            data, timestamps = series["data"], series["timestamps"]
            print(f"data {data.shape} {data.dtype}, chunks {data.chunks}")
            start = int(np.searchsorted(timestamps[:], timestamps[0] + 10.0))
            window = data[start : start + 1250, :]
            time = timestamps[start : start + 1250]
            print(f"1 s x {window.shape[1]} channels: mean |V| = {np.abs(window).mean():.2e}")

            plot = out / "lfp_window.png"
            title = f"probe {probe_id}: 1 s of LFP, every 4th channel"
            _plot_lfp(plot, time, window[:, ::4], title)
            _section("Done")
            print(f"plot written to {plot.resolve()}")
    return plot
