"""The project CSVs: sessions, probes, channels, units and the two analysis-metrics tables.

Columns and index names as ALLEN_LAYOUT.md §3 lists them (``id`` for the four project tables,
``ecephys_unit_id`` for the metrics). pandas writes them, so the bytes depend only on the values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from s3ecephys.allen import manifest
from s3ecephys.synthetic.catalog import (
    BRAIN_OBSERVATORY,
    CHANNEL_COLUMNS,
    FUNCTIONAL_CONNECTIVITY,
    SESSION_TYPES,
    Catalog,
    rng_for,
)

# Metric columns by the stimulus they come from (suffix as in the Allen tables) and the session
# types that show it; a session type that does not show a stimulus has NaN in its columns.
METRICS_BY_STIMULUS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "dg": (
        (
            "pref_ori_dg",
            "pref_tf_dg",
            "g_osi_dg",
            "g_dsi_dg",
            "firing_rate_dg",
            "fano_dg",
            "lifetime_sparseness_dg",
            "run_pval_dg",
            "run_mod_dg",
        ),
        SESSION_TYPES,
    ),
    "rf": (
        (
            "p_value_rf",
            "on_screen_rf",
            "area_rf",
            "azimuth_rf",
            "elevation_rf",
            "firing_rate_rf",
            "width_rf",
            "height_rf",
        ),
        SESSION_TYPES,
    ),
    "fl": (
        (
            "on_off_ratio_fl",
            "firing_rate_fl",
            "fano_fl",
            "lifetime_sparseness_fl",
            "sustained_idx_fl",
        ),
        SESSION_TYPES,
    ),
    "sg": (
        (
            "pref_sf_sg",
            "pref_ori_sg",
            "pref_phase_sg",
            "g_osi_sg",
            "firing_rate_sg",
            "fano_sg",
            "lifetime_sparseness_sg",
        ),
        (BRAIN_OBSERVATORY,),
    ),
    "ns": (
        (
            "pref_image_ns",
            "image_selectivity_ns",
            "firing_rate_ns",
            "fano_ns",
            "lifetime_sparseness_ns",
        ),
        (BRAIN_OBSERVATORY,),
    ),
    "dm": (
        ("pref_speed_dm", "pref_dir_dm", "firing_rate_dm", "fano_dm"),
        (FUNCTIONAL_CONNECTIVITY,),
    ),
}
# Metrics that take one of a few stimulus parameter values rather than a continuous value.
_CHOICES = {
    "pref_ori_dg": [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0],
    "pref_tf_dg": [1.0, 2.0, 4.0, 8.0, 15.0],
    "pref_sf_sg": [0.02, 0.04, 0.08, 0.16, 0.32],
    "pref_ori_sg": [0.0, 30.0, 60.0, 90.0, 120.0, 150.0],
    "pref_phase_sg": [0.0, 0.25, 0.5, 0.75],
    "pref_image_ns": list(np.arange(0.0, 118.0)),
    "pref_speed_dm": [0.0005, 0.001, 0.005, 0.01, 0.02, 0.04],
    "pref_dir_dm": [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0],
}


def write_tables(catalog: Catalog, root: Path) -> list[str]:
    """Write the four project CSVs and the two typewise metrics CSVs; return their paths
    relative to ``root``."""
    written = []
    for relative, frame in (
        (manifest.sessions_csv(), catalog.session_table),
        (manifest.probes_csv(), catalog.probe_table),
        (manifest.channels_csv(), catalog.channel_table.loc[:, list(CHANNEL_COLUMNS)]),
        (manifest.units_csv(), catalog.unit_table),
    ):
        frame.to_csv(root / relative, index_label="id")
        written.append(relative)
    for session_type in SESSION_TYPES:
        relative = manifest.typewise_analysis_metrics(session_type)
        analysis_metrics(catalog, session_type).to_csv(root / relative)
        written.append(relative)
    return written


def analysis_metrics(catalog: Catalog, session_type: str) -> pd.DataFrame:
    """Stimulus metrics of the good units of all sessions of ``session_type``."""
    sessions = [s for s in catalog.sessions if s.session_type == session_type]
    unit_ids = []
    for session in sessions:
        units = catalog.units_of(session)
        unit_ids.extend(units.index[(units["quality"] == "good").to_numpy()])
    index = pd.Index(np.asarray(unit_ids, dtype=np.int64), name="ecephys_unit_id")
    rng = rng_for(catalog.seed, "analysis_metrics", SESSION_TYPES.index(session_type))
    n = len(index)
    columns: dict[str, np.ndarray] = {}
    for names, shown_in in METRICS_BY_STIMULUS.values():
        for name in names:
            if session_type not in shown_in:
                columns[name] = np.full(n, np.nan)
            elif name in _CHOICES:
                columns[name] = np.asarray(_CHOICES[name])[rng.integers(0, len(_CHOICES[name]), n)]
            elif name == "on_screen_rf":
                columns[name] = rng.random(n) < 0.8
            elif name.startswith(("p_value", "run_pval")):
                columns[name] = rng.random(n) ** 2
            else:
                columns[name] = rng.lognormal(0.0, 0.6, n)
    frame = pd.DataFrame(columns, index=index)
    # Some metrics could not be computed for some units.
    for name in ("g_osi_dg", "area_rf", "fano_fl"):
        frame.loc[rng.random(n) < 0.1, name] = np.nan
    return frame
