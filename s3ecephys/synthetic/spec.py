"""How big the synthetic dataset is, and in which NWB layout: :class:`SyntheticSpec`.

The spec scales the dataset and names the NWB layout of its files (the real files' NWB 2.2.2, or
today's pynwb's); what is in them (the quirks of the real files) does not depend on it.
``repr(spec)`` names the dataset completely together with the seed, so the benchmark harness uses
it as the identity of a written copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from s3ecephys.synthetic.nwb_versions import NWB_2_2_2, check_nwb_version

# Per block of one stimulus, how many presentations there are for each unit of
# ``presentations_per_block`` and how long one presentation and the pause after it last (s).
# Counts and times are those of the Allen stimulus scripts, scaled down.
STIMULUS_BLOCKS: dict[str, tuple[tuple[str, int, float, float], ...]] = {
    "brain_observatory_1.1": (
        ("spontaneous", 0, 0.0, 0.0),
        ("gabors", 2, 0.25, 0.0),
        ("spontaneous", 0, 0.0, 0.0),
        ("flashes", 1, 0.25, 1.75),
        ("spontaneous", 0, 0.0, 0.0),
        ("drifting_gratings", 1, 2.0, 1.0),
        ("natural_movie_three", 3, 1 / 30, 0.0),
        ("natural_movie_one", 3, 1 / 30, 0.0),
        ("spontaneous", 0, 0.0, 0.0),
        ("static_gratings", 2, 0.25, 0.0),
        ("natural_scenes", 2, 0.25, 0.0),
    ),
    "functional_connectivity": (
        ("spontaneous", 0, 0.0, 0.0),
        ("gabors", 2, 0.25, 0.0),
        ("spontaneous", 0, 0.0, 0.0),
        ("flashes", 1, 0.25, 1.75),
        ("drifting_gratings_contrast", 1, 0.5, 0.5),
        ("natural_movie_one_more_repeats", 3, 1 / 30, 0.0),
        ("spontaneous", 0, 0.0, 0.0),
        ("dot_motion", 1, 1.0, 0.0),
        ("natural_movie_one_shuffled", 3, 1 / 30, 0.0),
        ("drifting_gratings_75_repeats", 1, 2.0, 1.0),
    ),
}
# Time before the first stimulus, and the optotagging block after the last (Cre lines only).
LEAD_IN = 1.0
OPTOTAGGING_PULSES = 6
OPTOTAGGING_PERIOD = 1.0


def spontaneous_duration(presentations_per_block: int) -> float:
    """Length (s) of one spontaneous-activity presentation at this stimulus scale."""
    return max(2.0, presentations_per_block / 4)


def stimulus_span(session_type: str, presentations_per_block: int) -> float:
    """Seconds from the first presentation's start to the last one's end."""
    span = 0.0
    for name, count, duration, pause in STIMULUS_BLOCKS[session_type]:
        if name == "spontaneous":
            span += spontaneous_duration(presentations_per_block)
        else:
            span += count * presentations_per_block * (duration + pause)
    return span


@dataclass(frozen=True)
class SyntheticSpec:
    """The size of a synthetic dataset in the Allen Visual Coding – Neuropixels layout.

    Sessions alternate between the ``brain_observatory_1.1`` and ``functional_connectivity``
    session types; every probe has the same number of channels and units. The LFP, spikes,
    running and eye tracking all span ``duration`` seconds of the session clock.
    """

    sessions: int = 3
    """Number of sessions (each one ``session_<id>/`` folder)."""
    probes_per_session: int = 3
    """Probes per session (probeA, probeB, …; at most 6)."""
    channels_per_probe: int = 128
    """Channels per probe (384 on a real Neuropixels probe); the LFP file keeps every 4th."""
    units_per_probe: int = 20
    """Sorted units per probe, noise units included."""
    duration: float = 60.0
    """Seconds recorded per session (the LFP's time span)."""
    lfp_rate: float = 1250.0
    """Nominal rate of the LFP files (Hz); probes.csv states twice this, before subsampling."""
    presentations_per_block: int = 5
    """Scale of the stimulus blocks: presentations per block per unit of this number."""
    nwb_version: str = NWB_2_2_2
    """The NWB files' layout: ``"2.2.2"`` (the real files': schema, cached namespaces, types and
    attributes of pynwb 1.3) or ``"current"`` (as today's pynwb writes them)."""

    def __post_init__(self) -> None:
        check_nwb_version(self.nwb_version)
        if not 1 <= self.probes_per_session <= 6:
            raise ValueError(f"probes_per_session must be 1 to 6, not {self.probes_per_session}")
        for field in ("sessions", "channels_per_probe", "units_per_probe"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be at least 1, not {getattr(self, field)}")
        if self.channels_per_probe < 48:
            raise ValueError("channels_per_probe must be at least 48 (12 LFP channels)")
        needed = (
            LEAD_IN
            + OPTOTAGGING_PULSES * OPTOTAGGING_PERIOD
            + 1.0
            + max(stimulus_span(kind, self.presentations_per_block) for kind in STIMULUS_BLOCKS)
        )
        if self.duration < max(needed, 20.0):
            raise ValueError(
                f"duration {self.duration} s is too short for the stimuli at "
                f"presentations_per_block={self.presentations_per_block}: give at least "
                f"{max(needed, 20.0):.0f} s or fewer presentations"
            )

    @classmethod
    def small(cls) -> SyntheticSpec:
        """The default: 3 sessions of 3 probes, written in seconds (tens of MB)."""
        return cls()

    @classmethod
    def quick(cls) -> SyntheticSpec:
        """Smoke-test size for the benchmark harness: the same as :meth:`small`."""
        return cls.small()

    @classmethod
    def benchmark(cls) -> SyntheticSpec:
        """Real-file shapes at laptop scale: one session whose first LFP file holds 95 channels
        × 1.5 M samples (570 MB before compression) and whose session file holds 1,200 units
        with ~22 M spikes (~650 MB). Writing it takes minutes."""
        return cls(
            sessions=1,
            probes_per_session=3,
            channels_per_probe=384,
            units_per_probe=400,
            duration=1200.0,
            presentations_per_block=100,
        )
