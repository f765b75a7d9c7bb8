"""What the synthetic dataset holds: sessions, probes, channels and units, with their ids.

Everything the CSV tables and the NWB files share is decided here, once, so the tables and the
files agree (units.csv rows are the NWB units, channels.csv rows the NWB electrodes). Which
session or probe carries which quirk of the real dataset is decided here too, so each quirk is in
exactly one place whatever the spec's size.

Randomness comes from :func:`rng_for`: one stream per purpose and entity, derived from the seed,
so a value does not change when an unrelated part of the dataset is resized.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from s3ecephys.synthetic.spec import SyntheticSpec

BRAIN_OBSERVATORY = "brain_observatory_1.1"
FUNCTIONAL_CONNECTIVITY = "functional_connectivity"
SESSION_TYPES = (BRAIN_OBSERVATORY, FUNCTIONAL_CONNECTIVITY)

# Cre lines carry ChR2 and get optotagging; the wild type does not.
GENOTYPES = (
    "Sst-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
    "wt/wt",
    "Pvalb-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
    "Vip-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
)
STRAIN = "C57BL/6J"
SPECIES = "Mus musculus"
PROBE_NAMES = ("probeA", "probeB", "probeC", "probeD", "probeE", "probeF")
FILTERING = "AP band: 500 Hz high-pass; LFP band: 1000 Hz low-pass"
# Neuropixels 1.0 geometry: two columns per row pair, staggered, 20 um rows.
HORIZONTAL_POSITIONS = (43, 11, 59, 27)
VERTICAL_PITCH = 20
# Allen CCF structure ids of the acronyms used.
STRUCTURE_IDS = {"APN": 215, "LGd": 170, "CA1": 382, "DG": 726, "VISp": 385, "VISl": 409}
# Tracks from the tip up, as (acronym, fraction of the probe's length); the rest is outside the
# brain (no structure, an empty location in the NWB files).
TRACKS = (
    (("APN", 0.25), ("CA1", 0.25), ("VISp", 0.3)),
    (("LGd", 0.3), ("CA1", 0.2), ("VISl", 0.25)),
    (("APN", 0.2), ("DG", 0.15), ("CA1", 0.15), ("VISp", 0.35)),
)
# Channels that are never valid: the Neuropixels reference channel, and one that falls on the
# LFP channel grid, so an LFP file of 384 channels keeps 95 rather than 96 (as real ones do).
INVALID_LOCAL_INDICES = (38, 191)
LFP_CHANNEL_OFFSET = 2
LFP_CHANNEL_STEP = 4
# The LFP file of the "narrow" probe keeps only the channels below this fraction of the probe:
# 35 channels of 384, as in the real files with few LFP channels.
NARROW_LFP_FRACTION = 0.37
# The LFP recording starts a little after the session clock's zero, as in the real files.
RECORDING_START = 13.5
# Amplitude of one LFP count: the real files hold int16 counts times this, in volts.
LFP_VOLTS_PER_COUNT = 0.195e-6
AP_SAMPLING_RATE = 30000.0
LFP_SUBSAMPLING_FACTOR = 2.0

SESSION_COLUMNS = (
    "date_of_acquisition",
    "isi_experiment_id",
    "published_at",
    "specimen_id",
    "session_type",
    "age_in_days",
    "sex",
    "genotype",
    "has_nwb",
    "structure_acronyms",
)
PROBE_COLUMNS = (
    "air_channel_index",
    "ecephys_session_id",
    "lfp_sampling_rate",
    "lfp_temporal_subsampling_factor",
    "name",
    "phase",
    "sampling_rate",
    "surface_channel_index",
    "has_lfp_data",
)
CHANNEL_COLUMNS = (
    "ecephys_probe_id",
    "local_index",
    "probe_horizontal_position",
    "probe_vertical_position",
    "anterior_posterior_ccf_coordinate",
    "dorsal_ventral_ccf_coordinate",
    "left_right_ccf_coordinate",
    "ecephys_structure_id",
    "ecephys_structure_acronym",
)
UNIT_COLUMNS = (
    "ecephys_channel_id",
    "quality",
    "snr",
    "firing_rate",
    "isi_violations",
    "presence_ratio",
    "amplitude_cutoff",
    "isolation_distance",
    "l_ratio",
    "d_prime",
    "nn_hit_rate",
    "nn_miss_rate",
    "silhouette_score",
    "max_drift",
    "cumulative_drift",
    "epoch_name_quality_metrics",
    "epoch_name_waveform_metrics",
    "duration",
    "halfwidth",
    "PT_ratio",
    "repolarization_slope",
    "recovery_slope",
    "amplitude",
    "spread",
    "velocity_above",
    "velocity_below",
)
# Metrics that are NaN for some units (beside the noise units' gaps).
_SOMETIMES_MISSING = ("isolation_distance", "l_ratio", "velocity_above", "velocity_below")


def rng_for(seed: int, purpose: str, *keys: int) -> np.random.Generator:
    """An independent random stream for one purpose and entity (e.g. a probe id)."""
    return np.random.default_rng([int(seed), zlib.crc32(purpose.encode()), *map(int, keys)])


@dataclass(frozen=True)
class ProbePlan:
    """One probe: its identity, clock and where its LFP comes from."""

    probe_id: int
    name: str
    session_id: int
    sampling_rate: float
    lfp_sampling_rate: float
    """The acquisition rate of the LFP band (≈2500 Hz), as probes.csv states it."""
    phase: str
    has_lfp: bool
    lfp_local_indices: tuple[int, ...]
    """Local indices of the channels in its LFP file (empty without LFP)."""
    registered: bool
    halved_lfp_rate_in_lfp_file: bool
    """The LFP file's electrode group states half the true rate (a quirk of real files)."""

    @property
    def lfp_rate(self) -> float:
        """The rate of the LFP file's samples: the acquisition rate after subsampling."""
        return self.lfp_sampling_rate / LFP_SUBSAMPLING_FACTOR


@dataclass(frozen=True)
class SessionPlan:
    """One session: its metadata, probes and which optional parts its files have."""

    session_id: int
    session_type: str
    genotype: str
    sex: str
    age_in_days: float
    specimen_id: int
    specimen_name: str
    donor_id: int
    isi_experiment_id: int
    acquired: datetime
    published: datetime
    probes: tuple[ProbePlan, ...]
    start: float
    stop: float
    has_optotagging: bool
    has_eye_tracking: bool
    has_invalid_times: bool
    int64_spike_times_index: bool
    """The units' ``spike_times_index`` is int64, as in the 2020 files (else hdmf's uint)."""


@dataclass(frozen=True)
class Catalog:
    """The whole dataset's metadata: the plans and the four project tables (indexed by id)."""

    spec: SyntheticSpec
    seed: int
    sessions: tuple[SessionPlan, ...]
    session_table: pd.DataFrame
    probe_table: pd.DataFrame
    channel_table: pd.DataFrame
    unit_table: pd.DataFrame
    spike_counts: pd.Series
    """Spikes per unit (units.csv's ``firing_rate`` is this over the duration)."""

    def channels_of(self, probe: ProbePlan) -> pd.DataFrame:
        """channels.csv rows of one probe, in local index order."""
        table = self.channel_table
        return table.loc[(table["ecephys_probe_id"] == probe.probe_id).to_numpy()]

    def units_of(self, session: SessionPlan) -> pd.DataFrame:
        """units.csv rows of one session, probe by probe."""
        channel_probe = self.unit_table["ecephys_channel_id"].map(
            self.channel_table["ecephys_probe_id"]
        )
        wanted = channel_probe.isin([probe.probe_id for probe in session.probes]).to_numpy()
        return self.unit_table.loc[wanted]


class _Ids:
    """Ids that look like the real ones (9 digits) and never repeat across tables: sessions and
    probes count up from 7xx,xxx,xxx, channels from 8xx,xxx,xxx, units from 9xx,xxx,xxx."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._next = {
            "session": int(rng.integers(710_000_000, 720_000_000)),
            "channel": int(rng.integers(850_000_000, 860_000_000)),
            "unit": int(rng.integers(950_000_000, 960_000_000)),
        }

    def take(self, kind: str, count: int = 1, gap: tuple[int, int] = (1, 2)) -> np.ndarray:
        start = self._next[kind] + int(self._rng.integers(*gap))
        self._next[kind] = start + count
        return np.arange(start, start + count, dtype=np.int64)


def build_catalog(spec: SyntheticSpec, seed: int) -> Catalog:
    """Decide every id, metadata value and quirk of the dataset for ``spec`` and ``seed``."""
    ids = _Ids(rng_for(seed, "ids"))
    sessions: list[SessionPlan] = []
    session_rows, probe_rows, channel_frames, unit_frames, count_series = [], [], [], [], []
    for index in range(spec.sessions):
        session_id = int(ids.take("session", gap=(1_000_000, 40_000_000))[0])
        probe_ids = ids.take("session", spec.probes_per_session, gap=(30_000, 60_000))
        rng = rng_for(seed, "session", index)
        probes = tuple(
            _plan_probe(spec, seed, index, position, int(probe_id), session_id)
            for position, probe_id in enumerate(probe_ids)
        )
        session = _plan_session(spec, index, session_id, probes, rng)
        sessions.append(session)
        for probe in probes:
            channels = _channels(spec, seed, probe, ids)
            units, counts = _units(spec, seed, probe, channels, ids)
            channel_frames.append(channels)
            unit_frames.append(units)
            count_series.append(counts)
            probe_rows.append(_probe_row(spec, probe))
        session_rows.append(_session_row(session, channel_frames[-len(probes) :]))
    return Catalog(
        spec=spec,
        seed=seed,
        sessions=tuple(sessions),
        session_table=_frame(session_rows, SESSION_COLUMNS),
        probe_table=_frame(probe_rows, PROBE_COLUMNS),
        channel_table=pd.concat(channel_frames),
        unit_table=pd.concat(unit_frames),
        spike_counts=pd.concat(count_series),
    )


def _frame(rows: list[dict], columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows).set_index("id")
    return frame.loc[:, list(columns)]


def _plan_session(
    spec: SyntheticSpec,
    index: int,
    session_id: int,
    probes: tuple[ProbePlan, ...],
    rng: np.random.Generator,
) -> SessionPlan:
    genotype = GENOTYPES[index % len(GENOTYPES)]
    acquired = datetime(2019, 1, 8, 13, 0, tzinfo=timezone(timedelta(hours=-8))) + timedelta(
        days=int(rng.integers(0, 300)), minutes=int(rng.integers(0, 600))
    )
    donor_id = int(rng.integers(380_000, 460_000))
    start = RECORDING_START + float(rng.uniform(0.0, 0.2))
    return SessionPlan(
        session_id=session_id,
        session_type=SESSION_TYPES[index % len(SESSION_TYPES)],
        genotype=genotype,
        sex=("M", "F")[int(rng.integers(0, 2))],
        age_in_days=float(rng.integers(90, 140)),
        specimen_id=int(rng.integers(700_000_000, 800_000_000)),
        specimen_name=f"{genotype.split('/')[0].split('-')[0]}-{donor_id}",
        donor_id=donor_id,
        isi_experiment_id=int(rng.integers(700_000_000, 800_000_000)),
        acquired=acquired,
        published=datetime(2019, 10, 3, tzinfo=timezone.utc),
        probes=probes,
        start=start,
        stop=start + spec.duration,
        has_optotagging=genotype != "wt/wt",
        # The wild-type session lacks eye tracking too: one session without either.
        has_eye_tracking=index != 1,
        has_invalid_times=index == 0,
        int64_spike_times_index=index == 0,
    )


def _plan_probe(
    spec: SyntheticSpec,
    seed: int,
    session_index: int,
    position: int,
    probe_id: int,
    session_id: int,
) -> ProbePlan:
    rng = rng_for(seed, "probe", probe_id)
    last_session = session_index == spec.sessions - 1
    # The last probe of the last session has no LFP (like 3 real probes), if that leaves one.
    has_lfp = not (last_session and position == spec.probes_per_session - 1 and position > 0)
    lfp_grid = [
        local
        for local in range(LFP_CHANNEL_OFFSET, spec.channels_per_probe, LFP_CHANNEL_STEP)
        if local not in INVALID_LOCAL_INDICES
    ]
    narrow = session_index == 0 and position == 1
    if narrow:
        lfp_grid = [
            local for local in lfp_grid if local < NARROW_LFP_FRACTION * spec.channels_per_probe
        ]
    drift = float(rng.normal(0.0, 2e-6))
    return ProbePlan(
        probe_id=probe_id,
        name=PROBE_NAMES[position],
        session_id=session_id,
        sampling_rate=AP_SAMPLING_RATE * (1 + drift),
        lfp_sampling_rate=2 * spec.lfp_rate * (1 + drift),
        phase="3a" if session_index % 3 == 2 else "PXI",
        has_lfp=has_lfp,
        lfp_local_indices=tuple(lfp_grid) if has_lfp else (),
        # One probe without CCF registration: sentinel coordinates, acronyms still known.
        registered=not (
            session_index == min(2, spec.sessions - 1) and position == 0 and spec.sessions > 1
        ),
        halved_lfp_rate_in_lfp_file=session_index == 0 and position == 0,
    )


def _session_row(session: SessionPlan, channel_frames: list[pd.DataFrame]) -> dict:
    acronyms = pd.concat(channel_frames)["ecephys_structure_acronym"].dropna().unique()
    return {
        "id": session.session_id,
        "date_of_acquisition": session.acquired.astimezone(timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "isi_experiment_id": session.isi_experiment_id,
        "published_at": session.published.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "specimen_id": session.specimen_id,
        "session_type": session.session_type,
        "age_in_days": session.age_in_days,
        "sex": session.sex,
        "genotype": session.genotype,
        "has_nwb": True,
        "structure_acronyms": repr([str(acronym) for acronym in acronyms]),
    }


def _probe_row(spec: SyntheticSpec, probe: ProbePlan) -> dict:
    return {
        "id": probe.probe_id,
        "air_channel_index": spec.channels_per_probe - 1,
        "ecephys_session_id": probe.session_id,
        "lfp_sampling_rate": probe.lfp_sampling_rate,
        "lfp_temporal_subsampling_factor": LFP_SUBSAMPLING_FACTOR,
        "name": probe.name,
        "phase": probe.phase,
        "sampling_rate": probe.sampling_rate,
        "surface_channel_index": _surface_index(spec, probe),
        "has_lfp_data": probe.has_lfp,
    }


def _track(probe: ProbePlan) -> tuple[tuple[str, float], ...]:
    return TRACKS[PROBE_NAMES.index(probe.name) % len(TRACKS)]


def _surface_index(spec: SyntheticSpec, probe: ProbePlan) -> int:
    inside = sum(fraction for _, fraction in _track(probe))
    return int(round(inside * spec.channels_per_probe))


def _channels(spec: SyntheticSpec, seed: int, probe: ProbePlan, ids: _Ids) -> pd.DataFrame:
    """channels.csv rows of a probe plus the NWB-only electrode columns (``valid_data``)."""
    count = spec.channels_per_probe
    rng = rng_for(seed, "channels", probe.probe_id)
    local = np.arange(count)
    acronyms = np.full(count, np.nan, dtype=object)
    edge = 0
    for acronym, fraction in _track(probe):
        top = edge + int(round(fraction * count))
        acronyms[edge:top] = acronym
        edge = top
    structure_ids = np.array(
        [STRUCTURE_IDS[a] if isinstance(a, str) else np.nan for a in acronyms], dtype=float
    )
    vertical = VERTICAL_PITCH * (local // 2) + VERTICAL_PITCH
    if probe.registered:
        # A straight track: deeper (larger DV) towards the tip, drifting in AP and LR.
        tip = np.array(
            [rng.integers(7600, 9600), rng.integers(3800, 4600), rng.integers(6800, 9200)]
        )
        direction = np.array([rng.uniform(-0.3, 0.3), -1.0, rng.uniform(-0.3, 0.3)])
        coordinates = np.rint(tip + np.outer(vertical, direction)).astype(np.int64)
    else:
        coordinates = np.full((count, 3), -1, dtype=np.int64)
    valid = ~np.isin(local, INVALID_LOCAL_INDICES)
    frame = pd.DataFrame(
        {
            "id": ids.take("channel", count, gap=(1, 3)),
            "ecephys_probe_id": probe.probe_id,
            "local_index": local,
            "probe_horizontal_position": np.array(HORIZONTAL_POSITIONS)[local % 4],
            "probe_vertical_position": vertical,
            "anterior_posterior_ccf_coordinate": coordinates[:, 0],
            "dorsal_ventral_ccf_coordinate": coordinates[:, 1],
            "left_right_ccf_coordinate": coordinates[:, 2],
            "ecephys_structure_id": structure_ids,
            "ecephys_structure_acronym": acronyms,
            "valid_data": valid,
        }
    )
    return frame.set_index("id")


def _units(
    spec: SyntheticSpec, seed: int, probe: ProbePlan, channels: pd.DataFrame, ids: _Ids
) -> tuple[pd.DataFrame, pd.Series]:
    """units.csv rows of a probe (noise units included) and their spike counts."""
    count = spec.units_per_probe
    rng = rng_for(seed, "units", probe.probe_id)
    in_brain = channels.index[
        (channels["ecephys_structure_acronym"].notna() & channels["valid_data"]).to_numpy()
    ]
    peak = np.sort(rng.choice(in_brain.to_numpy(), size=count, replace=count > len(in_brain)))
    rates = rng.uniform(0.5, 30.0, count)
    spikes = np.maximum(rng.poisson(rates * spec.duration), 2)
    noise = rng.random(count) < 0.12
    noise[0] = True  # every probe has at least one noise unit
    uniform = rng.uniform
    metrics = {
        "ecephys_channel_id": peak,
        "quality": np.where(noise, "noise", "good"),
        "snr": uniform(1.0, 6.0, count),
        "firing_rate": spikes / spec.duration,
        "isi_violations": rng.exponential(0.3, count),
        "presence_ratio": np.clip(1.0 - rng.exponential(0.04, count), 0.5, 0.99),
        "amplitude_cutoff": np.clip(rng.exponential(0.08, count), 0.0, 0.5),
        "isolation_distance": uniform(10.0, 120.0, count),
        "l_ratio": rng.exponential(0.05, count),
        "d_prime": uniform(1.0, 8.0, count),
        "nn_hit_rate": uniform(0.5, 1.0, count),
        "nn_miss_rate": rng.exponential(0.01, count),
        "silhouette_score": uniform(-0.1, 0.3, count),
        "max_drift": uniform(5.0, 60.0, count),
        "cumulative_drift": uniform(50.0, 600.0, count),
        "epoch_name_quality_metrics": "complete_session",
        "epoch_name_waveform_metrics": "complete_session",
        "duration": uniform(0.2, 1.0, count),
        "halfwidth": uniform(0.1, 0.5, count),
        "PT_ratio": uniform(0.2, 1.2, count),
        "repolarization_slope": uniform(0.1, 1.5, count),
        "recovery_slope": uniform(-0.5, 0.0, count),
        "amplitude": uniform(50.0, 300.0, count),
        "spread": 10.0 * rng.integers(2, 15, count),
        "velocity_above": rng.normal(0.0, 1.0, count),
        "velocity_below": rng.normal(0.0, 1.0, count),
    }
    frame = pd.DataFrame(metrics, index=pd.Index(ids.take("unit", count, gap=(1, 4)), name="id"))
    for column in _SOMETIMES_MISSING:
        frame.loc[rng.random(count) < 0.1, column] = np.nan
    # Noise units have no meaningful isolation: their cluster metrics are missing.
    frame.loc[noise, ["isolation_distance", "l_ratio", "d_prime", "nn_hit_rate"]] = np.nan
    # A metric the default filters use, missing: such units drop out even with no bounds.
    frame.iloc[-1, frame.columns.get_loc("amplitude_cutoff")] = np.nan
    return frame.loc[:, list(UNIT_COLUMNS)], pd.Series(spikes, index=frame.index)
