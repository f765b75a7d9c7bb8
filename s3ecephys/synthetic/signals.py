"""The recorded signals: spike trains, waveforms, LFP, CSD, running and eye tracking.

Everything is vectorised numpy (no Python loop over samples or spikes), so the benchmark size
(tens of millions of spikes, ~10^8 LFP samples) is generated in seconds to a minute, and values
depend only on the seed and the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s3ecephys.synthetic.catalog import LFP_VOLTS_PER_COUNT

WAVEFORM_SAMPLES = 82
RUNNING_RATE = 60.0
EYE_TRACKING_RATE = 30.0
CSD_WINDOW = (-0.1, 0.25)
# LFP generated this many channels at a time: bounds the FFT's memory at the benchmark size.
_LFP_CHANNEL_BLOCK = 8
_LFP_RMS_VOLTS = 1e-4


@dataclass(frozen=True)
class Ragged:
    """A ragged column: the values of all rows concatenated and each row's exclusive end."""

    data: np.ndarray
    ends: np.ndarray


def spike_trains(
    rng: np.random.Generator,
    counts: np.ndarray,
    start: float,
    stop: float,
    sampling_rate: float,
) -> Ragged:
    """Spike times (float64 s, sorted within each unit, on the probe's sample clock)."""
    counts = np.asarray(counts, dtype=np.int64)
    samples = np.floor(rng.uniform(0.0, (stop - start) * sampling_rate, int(counts.sum())))
    owner = np.repeat(np.arange(len(counts)), counts)
    samples = samples[np.lexsort((samples, owner))]
    return Ragged(start + samples / sampling_rate, np.cumsum(counts))


def spike_amplitudes(rng: np.random.Generator, trains: Ragged, amplitudes_uv: np.ndarray) -> Ragged:
    """Per-spike amplitudes (float64 volts) scattered around each unit's amplitude."""
    counts = np.diff(trains.ends, prepend=0)
    base = np.repeat(np.asarray(amplitudes_uv, dtype=float) * 1e-6, counts)
    return Ragged(base * rng.lognormal(0.0, 0.25, base.size), trains.ends)


def mean_waveforms(
    rng: np.random.Generator,
    peak_rows: np.ndarray,
    vertical_positions: np.ndarray,
    amplitudes_uv: np.ndarray,
    spreads_um: np.ndarray,
) -> Ragged:
    """Each unit's mean waveform on every channel of its probe: rows of 82 samples (float64 V),
    a unit's rows consecutive, the trough largest on its peak channel."""
    n_units, n_channels = len(peak_rows), len(vertical_positions)
    t = np.arange(WAVEFORM_SAMPLES) / 30.0 - 0.7  # ms around the trough
    shape = -np.exp(-((t / 0.15) ** 2)) + 0.35 * np.exp(-(((t - 0.45) / 0.3) ** 2))
    distance = np.abs(vertical_positions[None, :] - vertical_positions[peak_rows][:, None])
    gain = np.exp(-distance / np.asarray(spreads_um, dtype=float)[:, None])
    gain *= (np.asarray(amplitudes_uv, dtype=float) * 1e-6)[:, None]
    waveforms = gain[:, :, None] * shape[None, None, :]
    waveforms += rng.normal(0.0, 2e-7, waveforms.shape)
    rows = waveforms.reshape(n_units * n_channels, WAVEFORM_SAMPLES)
    return Ragged(rows, n_channels * np.arange(1, n_units + 1))


def lfp_volts(rng: np.random.Generator, n_samples: int, n_channels: int, rate: float) -> np.ndarray:
    """(time, channel) float32 volts: pink-ish noise of ~1e-4 V shared in part across channels,
    quantized to the acquisition's int16 steps so it compresses as the real LFP does."""
    frequencies = np.fft.rfftfreq(n_samples, 1.0 / rate)
    frequencies[0] = frequencies[1]
    pink = 1.0 / np.sqrt(frequencies)

    def noise(count: int) -> np.ndarray:
        # Gaussian noise shaped in the frequency domain: one inverse FFT per channel.
        shape = (count, frequencies.size)
        spectrum = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * pink
        series = np.fft.irfft(spectrum, n=n_samples, axis=1)
        return series / series.std(axis=1, keepdims=True)

    common = noise(1)[0]
    weights = np.linspace(0.8, 0.3, n_channels)
    out = np.empty((n_samples, n_channels), dtype=np.float32)
    for first in range(0, n_channels, _LFP_CHANNEL_BLOCK):
        last = min(first + _LFP_CHANNEL_BLOCK, n_channels)
        w = weights[first:last, None]
        block = (w * common + np.sqrt(1 - w**2) * noise(last - first)) * _LFP_RMS_VOLTS
        counts = np.clip(np.rint(block / LFP_VOLTS_PER_COUNT), -32768, 32767)
        out[:, first:last] = (counts * LFP_VOLTS_PER_COUNT).T
    return out


def lfp_timestamps(start: float, n_samples: int, rate: float) -> np.ndarray:
    """Explicit float64 sample times on the session clock."""
    return start + np.arange(n_samples) / rate


def current_source_density(
    rng: np.random.Generator, n_virtual: int, rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """(time, virtual channel) float64 CSD around the flash onset and its relative times."""
    times = np.arange(CSD_WINDOW[0], CSD_WINDOW[1], 1.0 / rate)
    depth = np.linspace(0.0, 1.0, n_virtual)
    sink = np.exp(-(((times[:, None] - 0.05) / 0.02) ** 2)) * np.sin(2 * np.pi * 3 * depth)
    csd = 1e3 * sink + rng.normal(0.0, 20.0, (times.size, n_virtual))
    return csd, times


def running(rng: np.random.Generator, start: float, stop: float) -> dict[str, np.ndarray]:
    """Wheel speed at the stimulus frame rate: frame start and end times, velocity (cm/s), net
    rotation per frame (radians) and the encoder's raw signal and supply voltages."""
    starts = np.arange(start, stop, 1.0 / RUNNING_RATE)
    ends = starts + 1.0 / RUNNING_RATE
    drive = np.cumsum(rng.normal(0.0, 0.4, starts.size))
    velocity = np.clip(np.abs(drive) - 2.0, -1.0, None) + rng.normal(0.0, 0.3, starts.size)
    wheel_radius_cm = 6.5
    rotation = velocity / RUNNING_RATE / wheel_radius_cm
    supply = np.full(starts.size, 4.9) + rng.normal(0.0, 0.002, starts.size)
    signal = np.mod(np.cumsum(rotation) / (2 * np.pi) * supply, supply)
    return {
        "start_time": starts,
        "end_time": ends,
        "velocity": velocity,
        "net_rotation": rotation,
        "signal_voltage": signal,
        "supply_voltage": supply,
    }


def eye_tracking(rng: np.random.Generator, start: float, stop: float) -> dict[str, object]:
    """Ellipse fits of pupil, corneal reflection and eye per camera frame (centre, half-axes in
    pixels, angle), and raw and filtered gaze mapping (areas, screen coordinates); blinks are
    NaN in the filtered mapping."""
    times = np.arange(start, stop, 1.0 / EYE_TRACKING_RATE)
    n = times.size

    def ellipse(x: float, y: float, half_axis: float, jitter: float) -> dict[str, np.ndarray]:
        wander = np.cumsum(rng.normal(0.0, jitter, (2, n)), axis=1) * 0.05
        return {
            "center_x": x + wander[0],
            "center_y": y + wander[1],
            "height": half_axis * (1 + rng.normal(0.0, 0.03, n)),
            "phi": rng.normal(0.0, 0.05, n),
            "width": half_axis * 1.1 * (1 + rng.normal(0.0, 0.03, n)),
        }

    fits = {
        "pupil": ellipse(320.0, 240.0, 30.0, 1.0),
        "cr": ellipse(330.0, 230.0, 5.0, 0.3),
        "eye": ellipse(315.0, 245.0, 120.0, 0.2),
    }
    blink = rng.random(n) < 0.01
    raw = {
        "pupil_area": np.pi * fits["pupil"]["height"] * fits["pupil"]["width"],
        "eye_area": np.pi * fits["eye"]["height"] * fits["eye"]["width"],
        "screen_coordinates": np.column_stack(
            [(fits["pupil"]["center_y"] - 240.0) * 0.2, (fits["pupil"]["center_x"] - 320.0) * 0.2]
        ),
    }
    raw["screen_coordinates_spherical"] = np.degrees(np.arctan(raw["screen_coordinates"] / 15.0))
    filtered = {
        name: np.where(blink if values.ndim == 1 else blink[:, None], np.nan, values)
        for name, values in raw.items()
    }
    return {"timestamps": times, "fits": fits, "raw": raw, "filtered": filtered}
