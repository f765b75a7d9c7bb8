"""Opening a benchmark-size session reads a few percent of its file (benchmark tier: it writes a
673 MB session file first, about two minutes)."""

from __future__ import annotations

import pytest

from s3ecephys import EcephysProjectCache
from s3ecephys.synthetic import SyntheticSpec, write_dataset


@pytest.mark.benchmark
def test_a_session_and_its_units_cost_at_most_5_percent_of_the_file(tmp_path):
    dataset = write_dataset(tmp_path / "dataset", spec=SyntheticSpec.benchmark())
    cache = EcephysProjectCache(
        manifest=dataset.root / "manifest.json", policy="local", index_cache_dir=tmp_path / "ix"
    )
    session_id = dataset.session_ids[0]
    session = cache.get_session_data(session_id)
    assert len(session.units) > 0
    size = (dataset.root / f"session_{session_id}" / f"session_{session_id}.nwb").stat().st_size
    # The index is built cold here: every metadata read is counted, ragged arrays are not read.
    assert session._nwb.root.store.stats.bytes <= 0.05 * size
