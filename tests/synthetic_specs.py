"""Synthetic dataset specs several test modules share."""

from s3ecephys.synthetic import SyntheticSpec

# The smallest dataset whose stimulus schedule still fits: a few seconds to write, so a test can
# write it several times.
TINY = SyntheticSpec(
    sessions=2,
    probes_per_session=2,
    channels_per_probe=48,
    units_per_probe=4,
    duration=30.0,
    presentations_per_block=2,
)
