"""The project cache's policies on the synthetic dataset: a folder in AllenSDK's layout filled by
verified downloads, read offline, or used only where its copies are complete."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import s3fs

from s3ecephys import EcephysProjectCache
from s3ecephys.allen import manifest
from s3ecephys.allen.files import MissingLocalFileError


def _refuse(*args, **kwargs):
    raise AssertionError("S3 was used")


@pytest.fixture
def no_s3(monkeypatch):
    """Any attempt to talk to S3 fails the test."""
    monkeypatch.setattr(s3fs.S3FileSystem, "__init__", _refuse)


def _first_session_with_lfp(synthetic_dataset) -> tuple[int, int]:
    for session_id in synthetic_dataset.session_ids:
        if synthetic_dataset.lfp_probe_ids[session_id]:
            return int(session_id), int(synthetic_dataset.lfp_probe_ids[session_id][0])
    pytest.fail("no session with LFP")


def test_download_policy_fills_a_folder_allensdk_can_open(s3_dataset, synthetic_dataset, tmp_path):
    folder = tmp_path / "cache"
    cache = EcephysProjectCache.from_s3(
        s3_dataset.url,
        storage_options=s3_dataset.storage_options,
        cache_dir=folder,
        policy="download",
        index_cache_dir=tmp_path / "indexes",
    )
    session_id = int(synthetic_dataset.session_ids[0])
    session = cache.get_session_data(session_id)
    assert len(session.units) > 0

    relative = f"session_{session_id}/session_{session_id}.nwb"
    original = Path(synthetic_dataset.root) / relative
    assert (folder / relative).read_bytes() == original.read_bytes()
    assert (folder / "manifest.json").read_text() == manifest.manifest_text()
    assert not list(folder.rglob("*.part")), "a partial download was left behind"
    assert not session._nwb.root.url.startswith("s3://"), "the downloaded copy is the one read"


def test_prefetch_then_read_offline(s3_dataset, synthetic_dataset, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    online = EcephysProjectCache.from_s3(
        s3_dataset.url, storage_options=s3_dataset.storage_options, cache_dir=folder
    )
    session_id, probe_id = _first_session_with_lfp(synthetic_dataset)
    report = online.prefetch([session_id], lfp=True, progress=False)
    assert report.ok, report.summary()

    monkeypatch.setattr(s3fs.S3FileSystem, "__init__", _refuse)  # offline from here on
    offline = EcephysProjectCache(
        manifest=folder / "manifest.json", policy="local", index_cache_dir=tmp_path / "indexes"
    )
    session = offline.get_session_data(session_id)
    window = session.get_lfp(probe_id).isel(time=slice(0, 100)).compute()
    assert window.shape[0] == 100
    pd.testing.assert_frame_equal(offline.get_session_table(), online.get_session_table())

    other = next(s for s in synthetic_dataset.session_ids if int(s) != session_id)
    with pytest.raises(MissingLocalFileError, match=f"session_{other}.nwb is not in the cache"):
        offline.get_session_data(other)


def test_the_dataset_folder_itself_is_an_allensdk_cache(synthetic_dataset, tmp_path, no_s3):
    cache = EcephysProjectCache(
        manifest=Path(synthetic_dataset.root) / "manifest.json",
        policy="local",
        index_cache_dir=tmp_path,
    )
    assert len(cache.get_session_table()) == len(synthetic_dataset.session_ids)
    session = cache.get_session_data(synthetic_dataset.session_ids[0])
    assert len(session.units) > 0


def test_auto_reads_in_place_when_the_local_copy_is_truncated(
    s3_dataset, synthetic_dataset, tmp_path
):
    folder = tmp_path / "copy"
    shutil.copytree(synthetic_dataset.root, folder)
    session_id = int(synthetic_dataset.session_ids[0])
    local = folder / f"session_{session_id}" / f"session_{session_id}.nwb"
    with local.open("r+b") as handle:
        handle.truncate(local.stat().st_size // 2)

    cache = EcephysProjectCache(
        manifest=folder / "manifest.json",
        url=s3_dataset.url,
        storage_options=s3_dataset.storage_options,
        policy="auto",
        index_cache_dir=tmp_path / "indexes",
    )
    session = cache.get_session_data(session_id)
    assert session._nwb.root.url.startswith("s3://"), "the truncated copy was read"
    unit_id = session.units.index[0]
    with pytest.warns(UserWarning, match="invalid time intervals"):
        spikes = session.spike_times[unit_id]
    assert np.all(np.diff(spikes) >= 0)


def test_from_warehouse_downloads_on_demand_like_allensdk(s3_dataset, synthetic_dataset, tmp_path):
    cache = EcephysProjectCache.from_warehouse(
        manifest=tmp_path / "ecephys_cache_dir" / "manifest.json",
        url=s3_dataset.url,
        storage_options=s3_dataset.storage_options,
    )
    session_id = int(synthetic_dataset.session_ids[0])
    cache.get_session_data(session_id)
    assert (tmp_path / "ecephys_cache_dir" / f"session_{session_id}" /
            f"session_{session_id}.nwb").is_file()


def test_a_wrong_endpoint_or_prefix_is_named_within_seconds(local_s3, tmp_path):
    from s3ecephys.storage.location import LocationError

    unreachable = EcephysProjectCache.from_s3(
        storage_options={"endpoint_url": "http://127.0.0.1:9"}, cache_dir=tmp_path / "a"
    )
    with pytest.raises(LocationError, match="cannot reach the S3 endpoint http://127.0.0.1:9"):
        unreachable.get_session_table()

    wrong_prefix = EcephysProjectCache.from_s3(
        local_s3.url("no/such/prefix/"),
        storage_options=local_s3.storage_options,
        cache_dir=tmp_path / "b",
    )
    with pytest.raises(LocationError, match="must name the ecephys-cache prefix"):
        wrong_prefix.get_session_table()
