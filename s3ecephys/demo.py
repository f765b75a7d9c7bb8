"""``s3ecephys demo``: the data-access tutorial's flow against an embedded local S3.

Everything the real bucket would serve is written as a small synthetic dataset in the Allen layout,
served by a local S3 (moto) and read anonymously, in place, exactly as the real bucket is read.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from s3ecephys.storage.location import DEFAULT_PREFIX


def _section(title: str) -> None:
    print(f"\n== {title}")


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
    from s3ecephys.allen.cache import EcephysProjectCache
    from s3ecephys.synthetic import write_dataset
    from s3ecephys.testing import LocalS3

    out.mkdir(parents=True, exist_ok=True)
    wide = pd.option_context("display.width", 140, "display.max_columns", 8)
    with tempfile.TemporaryDirectory(prefix="s3ecephys-demo-") as scratch, wide:
        _section("A synthetic dataset in the Allen layout")
        dataset = write_dataset(Path(scratch) / "dataset", seed=seed)
        print(f"{len(dataset.session_ids)} sessions, {len(dataset.files)} files")

        with LocalS3() as s3:
            s3.upload_directory(dataset.root, prefix=DEFAULT_PREFIX)
            _section("Served by a local S3, read anonymously and in place")
            print(f"endpoint {s3.endpoint_url}: {s3.url(DEFAULT_PREFIX)}")
            cache = EcephysProjectCache.from_s3(
                s3.url(DEFAULT_PREFIX),
                storage_options=s3.storage_options,
                cache_dir=Path(scratch) / "cache",
                policy="lazy",
                index_cache_dir=Path(scratch) / "index-cache",
            )

            _section("cache.get_session_table()")
            sessions = cache.get_session_table()
            print(sessions[["session_type", "full_genotype", "unit_count", "probe_count"]])
            sst = sessions[
                sessions["full_genotype"].str.contains("Sst", na=False)
                & sessions["ecephys_structure_acronyms"].apply(lambda a: "VISl" in list(a))
            ]
            print(f"Sst sessions that recorded VISl: {list(sst.index)}")

            _section("cache.get_probes() / get_channels()")
            print(cache.get_probes()[["ecephys_session_id", "name", "lfp_sampling_rate",
                                      "has_lfp_data"]])
            print(f"{len(cache.get_channels())} channels")

            _section("cache.get_units(), with and without the quality filters")
            filtered = cache.get_units()
            everything = cache.get_units(amplitude_cutoff_maximum=np.inf,
                                         presence_ratio_minimum=-np.inf,
                                         isi_violations_maximum=np.inf)
            print(f"{len(filtered)} units pass the default filters, {len(everything)} without")
            session_type = sessions["session_type"].iloc[0]
            metrics = cache.get_unit_analysis_metrics_by_session_type(session_type)
            print(f"analysis metrics of {session_type}: {metrics.shape}")

            session_id = dataset.session_ids[0]
            _section(f"cache.get_session_data({session_id})")
            session = cache.get_session_data(session_id)
            print(session.units[["probe_description", "ecephys_structure_acronym",
                                 "firing_rate"]].head())
            unit_id = session.units.index[0]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                spikes = session.spike_times[unit_id]
            for warning in caught:
                print(f"note (AllenSDK's warning): {warning.message}")
            print(f"unit {unit_id}: {len(spikes)} spikes (one byte range), first {spikes[:5]}")
            print(f"{len(session.invalid_times)} invalid interval(s):")
            print(session.invalid_times)
            print(session.stimulus_presentations[["stimulus_name", "start_time",
                                                  "stop_time"]].head())

            probe_id = dataset.lfp_probe_ids[session_id][0]
            _section(f"session.get_lfp({probe_id}): lazy, dask-backed")
            lfp = session.get_lfp(probe_id)
            print(lfp)
            start = float(lfp["time"][0]) + 10.0
            window = lfp.sel(time=slice(start, start + 1.0)).compute()
            print(f"1 s x {window.sizes['channel']} channels read: "
                  f"mean |V| = {float(np.abs(window).mean()):.2e}")

            plot = out / "lfp_window.png"
            title = f"probe {probe_id}: 1 s of LFP, every 4th channel"
            _plot_lfp(plot, window["time"].values, window.values[:, ::4], title)
            _section("Done")
            print(f"plot written to {plot.resolve()}")
    return plot
