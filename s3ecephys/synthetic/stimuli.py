"""The stimulus side of a session: presentations, invalid intervals and optotagging pulses.

Presentation tables follow the Allen stimulus tables as AllenSDK's writer stored them: one
``<stimulus>_presentations`` table per stimulus, columns that are all NaN for a stimulus left out,
numeric parameters as float64 and the parameters whose stimulus-table column held list literals
anywhere (``phase``, ``size``, ``spatial_frequency``, ``color`` …) as text such as ``"[0.0, 0.0]"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from s3ecephys.synthetic.catalog import SessionPlan, rng_for
from s3ecephys.synthetic.spec import (
    LEAD_IN,
    OPTOTAGGING_PERIOD,
    OPTOTAGGING_PULSES,
    STIMULUS_BLOCKS,
    spontaneous_duration,
)

PRESENTATION_TAG = "stimulus_time_interval"
OPTOTAGGING_TAG = "optical_stimulation"
_WHITE = "[1.0, 1.0, 1.0]"


@dataclass(frozen=True)
class Stimuli:
    """A session's stimulus tables (each sorted by start time) and the times they reference."""

    presentations: dict[str, pd.DataFrame]
    """``<stimulus>_presentations`` -> start_time, stop_time, stimulus_name, … (no tags)."""
    frame_times: np.ndarray
    """Start times of all presentations in order: ``/processing/stimulus/timestamps``."""
    invalid_times: pd.DataFrame | None
    """start_time, stop_time, tags ([type, id, label]) or None."""
    optotagging: pd.DataFrame | None
    """start_time, stop_time, condition, level, stimulus_name, duration; or None."""


def _choice(rng: np.random.Generator, values, count: int) -> np.ndarray:
    return np.asarray(values)[rng.integers(0, len(values), count)]


def _parameters(name: str, count: int, rng: np.random.Generator) -> dict[str, object]:
    """Parameter columns of ``count`` presentations of one stimulus."""
    if name == "gabors":
        return {
            "color": _WHITE,
            "contrast": 0.8,
            "mask": "circle",
            "opacity": 1.0,
            "orientation": _choice(rng, [0.0, 45.0, 90.0], count),
            "phase": "[3644.93333333, 3644.93333333]",
            "size": "[20.0, 20.0]",
            "spatial_frequency": "0.08",
            "temporal_frequency": 4.0,
            "units": "deg",
            "x_position": _choice(rng, np.arange(-40.0, 50.0, 10.0), count),
            "y_position": _choice(rng, np.arange(-40.0, 50.0, 10.0), count),
        }
    if name == "flashes":
        return {
            "color": _choice(rng, ["-1.0", "1.0"], count),
            "contrast": 0.8,
            "mask": "None",
            "opacity": 1.0,
            "orientation": 0.0,
            "phase": "[0.0, 0.0]",
            "size": "[300.0, 300.0]",
            "spatial_frequency": "[0.0, 0.0]",
            "units": "deg",
        }
    if name.startswith("drifting_gratings"):
        contrast = (
            _choice(rng, [0.01, 0.02, 0.04, 0.08, 0.13, 0.2, 0.35, 0.6, 1.0], count)
            if name.endswith("contrast")
            else 0.8
        )
        all_orientations = name == "drifting_gratings"
        orientations = np.arange(0.0, 360.0, 45.0) if all_orientations else [0.0, 45.0, 90.0, 135.0]
        return {
            "color": _WHITE,
            "contrast": contrast,
            "mask": "None",
            "opacity": 1.0,
            "orientation": _choice(rng, orientations, count),
            "phase": "[42471.86666667, 42471.86666667]",
            "size": "[250.0, 250.0]",
            "spatial_frequency": "0.04",
            "temporal_frequency": (
                _choice(rng, [1.0, 2.0, 4.0, 8.0, 15.0], count) if all_orientations else 2.0
            ),
            "units": "deg",
        }
    if name == "static_gratings":
        return {
            "color": _WHITE,
            "contrast": 0.8,
            "mask": "None",
            "opacity": 1.0,
            "orientation": _choice(rng, np.arange(0.0, 180.0, 30.0), count),
            "phase": _choice(rng, ["0.0", "0.25", "0.5", "0.75"], count),
            "size": "[250.0, 250.0]",
            "spatial_frequency": _choice(rng, ["0.02", "0.04", "0.08", "0.16", "0.32"], count),
            "units": "deg",
        }
    if name == "natural_scenes":
        return {"frame": _choice(rng, np.arange(-1.0, 118.0), count)}
    if name == "natural_movie_one_shuffled":
        return {"frame": rng.permutation(count).astype(float)}
    if name.startswith("natural_movie"):
        return {"frame": np.arange(count, dtype=float)}
    if name == "dot_motion":
        return {
            "Dir": _choice(rng, np.arange(0.0, 360.0, 45.0), count),
            "Speed": _choice(rng, [0.0005, 0.001, 0.005, 0.01, 0.02, 0.04], count),
            "coherence": 1.0,
            "dotLife": 999.0,
            "dotSize": 1.0,
            "fieldPos": "[0.0, 0.0]",
            "fieldShape": "circle",
            "fieldSize": "[250.0, 250.0]",
            "nDots": 200.0,
        }
    raise ValueError(f"no parameters known for stimulus {name!r}")


def build_stimuli(session: SessionPlan, presentations_per_block: int, seed: int) -> Stimuli:
    """The session's presentations, laid out block after block from the recording's start."""
    rng = rng_for(seed, "stimuli", session.session_id)
    blocks = STIMULUS_BLOCKS[session.session_type]
    stimulus_index = {
        name: float(position)
        for position, name in enumerate(dict.fromkeys(n for n, *_ in blocks if n != "spontaneous"))
    }
    rows: list[pd.DataFrame] = []
    clock = session.start + LEAD_IN
    block_number = 0
    for name, scale, duration, pause in blocks:
        if name == "spontaneous":
            length = spontaneous_duration(presentations_per_block)
            rows.append(
                pd.DataFrame(
                    {"start_time": [clock], "stop_time": [clock + length], "stimulus_name": name}
                )
            )
            clock += length
            continue
        count = scale * presentations_per_block
        starts = clock + np.arange(count) * (duration + pause)
        table = pd.DataFrame(
            {
                "start_time": starts,
                "stop_time": starts + duration,
                "stimulus_name": name,
                "stimulus_block": float(block_number),
                "stimulus_index": stimulus_index[name],
                **_parameters(name, count, rng),
            }
        )
        rows.append(table)
        clock = float(starts[-1] + duration + pause)
        block_number += 1
    presentations: dict[str, list[pd.DataFrame]] = {}
    for table in rows:
        presentations.setdefault(f"{table['stimulus_name'].iloc[0]}_presentations", []).append(
            table
        )
    tables = {
        key: pd.concat(parts, ignore_index=True) for key, parts in sorted(presentations.items())
    }
    frame_times = np.sort(np.concatenate([t["start_time"].to_numpy() for t in tables.values()]))
    return Stimuli(
        presentations=tables,
        frame_times=frame_times,
        invalid_times=_invalid_times(session, tables) if session.has_invalid_times else None,
        optotagging=_optotagging(clock + 1.0) if session.has_optotagging else None,
    )


def _invalid_times(session: SessionPlan, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Invalid intervals as AllenSDK's writer tags them, ``[type, str(id), label]``: one inside a
    single gabor presentation (label ``stimulus``: AllenSDK masks that presentation), one for all
    probes and one for the last probe with LFP (AllenSDK masks their LFP)."""
    gabors = tables["gabors_presentations"]
    gabor = gabors.iloc[min(2, len(gabors) - 1)]
    span = session.stop - session.start
    with_lfp = [probe for probe in session.probes if probe.has_lfp]
    rows = [
        (
            gabor["start_time"] + 0.05,
            gabor["start_time"] + 0.15,
            ["EcephysSession", str(session.session_id), "stimulus"],
        ),
        (
            session.start + 0.55 * span,
            session.start + 0.55 * span + 0.5,
            ["EcephysSession", str(session.session_id), "all_probes"],
        ),
    ]
    if with_lfp:
        probe = with_lfp[-1]
        rows.append(
            (
                session.start + 0.7 * span,
                session.start + 0.7 * span + 2.0,
                ["EcephysProbe", str(probe.probe_id), probe.name],
            )
        )
    rows.sort(key=lambda row: row[0])
    return pd.DataFrame(rows, columns=["start_time", "stop_time", "tags"])


def _optotagging(start: float) -> pd.DataFrame:
    """Alternating single pulses and raised-cosine ramps at three light levels."""
    starts = start + OPTOTAGGING_PERIOD * np.arange(OPTOTAGGING_PULSES)
    pulse = np.arange(OPTOTAGGING_PULSES) % 2 == 0
    durations = np.where(pulse, 0.005, 0.5)
    return pd.DataFrame(
        {
            "start_time": starts,
            "stop_time": starts + durations,
            "condition": np.where(pulse, "a single square pulse", "half-period of a cosine wave"),
            "level": np.resize([1.0, 1.3, 1.7], OPTOTAGGING_PULSES),
            "stimulus_name": np.where(pulse, "pulse", "raised_cosine"),
            "duration": durations,
        }
    )
