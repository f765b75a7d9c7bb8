"""A cache folder that holds the files is read with the network unreachable, and with no request.

Every endpoint points at a closed local port, and every socket connection is refused and counted
(name lookups are counted too), so a request anywhere underneath (a HEAD to check a file, an
index, a retry) fails fast and shows up in the count, which must stay zero.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from s3ecephys import EcephysProjectCache
from s3ecephys.allen.files import POLICIES

# Each test takes about a second; a request retried against the closed port would take far longer.
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def network_attempts(monkeypatch) -> list[str]:
    """Makes the network unreachable for the test; returns the list of attempts to use it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for variable in ("S3ECEPHYS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(variable, closed)
    attempts: list[str] = []

    def connect(sock, address, *args):
        attempts.append(f"connect {address}")
        raise ConnectionRefusedError(f"the network is unreachable in this test ({address})")

    def connect_ex(sock, address, *args):
        attempts.append(f"connect {address}")
        return errno.ECONNREFUSED

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        attempts.append(f"getaddrinfo {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


@pytest.fixture
def folder(synthetic_dataset, tmp_path) -> Path:
    """The synthetic dataset as a cache folder of this test's own (hard links: instant)."""
    copy = tmp_path / "ecephys-cache"
    shutil.copytree(synthetic_dataset.root, copy, copy_function=os.link)
    return copy


@pytest.fixture
def index_folder(tmp_path, monkeypatch) -> Path:
    """Where file indexes go, also for constructors without ``index_cache_dir`` (``fixed``)."""
    monkeypatch.setenv("S3ECEPHYS_CACHE_DIR", str(tmp_path / "user-cache"))
    return tmp_path / "indexes"


def _session_with_lfp(synthetic_dataset) -> tuple[int, int]:
    for session_id in synthetic_dataset.session_ids:
        if synthetic_dataset.lfp_probe_ids[session_id]:
            return int(session_id), int(synthetic_dataset.lfp_probe_ids[session_id][0])
    pytest.fail("no session with LFP")


def _read_a_little(cache: EcephysProjectCache, session_id: int, probe_id: int) -> None:
    """A table, a session, one unit's spikes and a second of LFP."""
    assert len(cache.get_session_table()) > 0
    session = cache.get_session_data(session_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AllenSDK's note on invalid intervals
        assert len(session.spike_times[session.units.index[0]]) > 0
    lfp = session.get_lfp(probe_id)
    start = float(lfp["time"][0])
    assert lfp.sel(time=slice(start, start + 1.0)).compute().size > 0


def test_the_tutorial_flow_on_a_local_cache_makes_no_request(
    folder, index_folder, synthetic_dataset, network_attempts
):
    cache = EcephysProjectCache(manifest=folder / "manifest.json", index_cache_dir=index_folder)

    sessions = cache.get_session_table()
    assert list(sessions.index) == [int(s) for s in synthetic_dataset.session_ids]
    probes = cache.get_probes()
    channels = cache.get_channels()
    assert len(probes) > 0 and len(channels) > len(probes)
    default_units = cache.get_units()
    all_units = cache.get_units(amplitude_cutoff_maximum=np.inf, presence_ratio_minimum=-np.inf,
                                isi_violations_maximum=np.inf)
    assert 0 < len(default_units) < len(all_units)
    session_type = sessions["session_type"].iloc[0]
    assert len(cache.get_unit_analysis_metrics_by_session_type(session_type)) > 0

    session_id, probe_id = _session_with_lfp(synthetic_dataset)
    session = cache.get_session_data(session_id, amplitude_cutoff_maximum=np.inf)
    units = session.units
    assert len(units) > 0 and set(units.index) <= set(all_units.index)
    with pytest.warns(UserWarning, match="invalid time intervals"):
        spikes = session.spike_times[units.index[0]]
    assert np.all(np.diff(spikes) >= 0)
    presentations = session.stimulus_presentations
    counts = session.presentationwise_spike_counts(
        bin_edges=np.linspace(0, 0.25, 11),
        stimulus_presentation_ids=presentations.index[:5],
        unit_ids=units.index,
    )
    assert counts.shape == (5, 10, len(units))

    lfp = session.get_lfp(probe_id)
    start = float(lfp["time"][0])
    window = lfp.sel(time=slice(start, start + 1.0)).compute()
    assert window.sizes["time"] > 0 and np.isfinite(window.values).any()
    csd = session.get_current_source_density(probe_id)
    assert csd.dims == ("virtual_channel_index", "time") and csd.size > 0

    assert network_attempts == []


@pytest.mark.parametrize(
    "constructor",
    [
        "EcephysProjectCache(manifest=...)",
        "from_warehouse(manifest=...)",
        "fixed(...)",
        "from_s3(cache_dir=...)",
    ],
)
def test_every_constructor_reads_a_local_cache_offline(
    constructor, folder, index_folder, synthetic_dataset, network_attempts
):
    manifest = folder / "manifest.json"
    cache = {
        "EcephysProjectCache(manifest=...)": lambda: EcephysProjectCache(
            manifest=manifest, index_cache_dir=index_folder
        ),
        "from_warehouse(manifest=...)": lambda: EcephysProjectCache.from_warehouse(
            manifest=manifest, index_cache_dir=index_folder
        ),
        "fixed(...)": lambda: EcephysProjectCache.fixed(manifest),
        "from_s3(cache_dir=...)": lambda: EcephysProjectCache.from_s3(
            cache_dir=folder, index_cache_dir=index_folder
        ),
    }[constructor]()

    _read_a_little(cache, *_session_with_lfp(synthetic_dataset))
    assert network_attempts == []


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_reads_a_local_cache_offline(
    policy, folder, index_folder, synthetic_dataset, network_attempts, monkeypatch
):
    monkeypatch.setenv("S3ECEPHYS_CACHE_POLICY", policy)
    cache = EcephysProjectCache(manifest=folder / "manifest.json", index_cache_dir=index_folder)
    assert cache.files.policy == policy

    _read_a_little(cache, *_session_with_lfp(synthetic_dataset))
    assert network_attempts == []


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }


@pytest.fixture
def read_only_mount(synthetic_dataset, tmp_path, monkeypatch) -> Iterator[Path]:
    """The dataset where people mount the bucket on AWS, as a folder that cannot be written."""
    mount = tmp_path / "data/allen-brain-observatory/visual-coding-neuropixels/ecephys-cache"
    shutil.copytree(synthetic_dataset.root, mount, copy_function=os.link)
    # Only the folders are made read-only: the files are hard links to the shared dataset's.
    folders = [mount, *(path for path in mount.rglob("*") if path.is_dir())]
    for path in folders:
        path.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    # As a read-only mount appears to a process, whatever user runs the tests (root may write
    # into a folder without write permission).
    monkeypatch.setattr("s3ecephys.allen.files.os.access", lambda path, mode: False)
    yield mount
    for path in folders:
        path.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("constructor", ["manifest", "from_warehouse"])
def test_a_read_only_mounted_copy_is_read_offline_and_never_written(
    constructor, read_only_mount, synthetic_dataset, index_folder, network_attempts
):
    before = _snapshot(read_only_mount)

    manifest = read_only_mount / "manifest.json"
    if constructor == "manifest":
        cache = EcephysProjectCache(manifest=manifest, index_cache_dir=index_folder)
    else:
        cache = EcephysProjectCache.from_warehouse(manifest=manifest,
                                                   index_cache_dir=index_folder)
    _read_a_little(cache, *_session_with_lfp(synthetic_dataset))

    assert network_attempts == []
    assert _snapshot(read_only_mount) == before
