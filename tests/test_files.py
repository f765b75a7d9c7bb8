"""Cache policies: which copy of a file is read, what is downloaded, what is never touched."""

from __future__ import annotations

import io
import json
import logging
import os

import h5py
import numpy as np
import pytest

from s3ecephys.allen import manifest
from s3ecephys.allen.files import (
    POLICIES,
    DatasetFiles,
    IncompleteLocalFileError,
    MissingLocalFileError,
    resolve_policy,
)
from s3ecephys.hdf5.superblock import stored_file_size
from s3ecephys.storage.ranges import RangeStore

PREFIX = "tests/files/"
CSV = b"id,name\n1,a\n2,b\n"
NWB_PATH = "session_1/session_1.nwb"


def _hdf5_bytes(libver: str = "earliest") -> bytes:
    """A small HDF5 file (100 kB), as the NWB files are HDF5."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", libver=libver) as f:
        f["data"] = np.arange(12_800, dtype="f8")
    return buffer.getvalue()


NWB = _hdf5_bytes()


@pytest.fixture(scope="module")
def remote(local_s3):
    local_s3.put_object(PREFIX + "sessions.csv", CSV)
    local_s3.put_object(PREFIX + NWB_PATH, NWB)
    return local_s3.location(PREFIX)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    for name in ("info", "fetch", "fetch_each", "fetch_ends"):
        monkeypatch.setattr(RangeStore, name, refuse)


def test_lazy_reads_nwb_in_place_and_keeps_csvs(remote, tmp_path):
    files = DatasetFiles(remote, tmp_path / "cache", "lazy")

    assert files.source(NWB_PATH).url == remote.join(NWB_PATH)
    with files.open_small("sessions.csv") as handle:
        assert handle.read() == CSV
    assert (tmp_path / "cache" / "sessions.csv").read_bytes() == CSV
    assert (tmp_path / "cache" / "manifest.json").read_text() == manifest.manifest_text()
    assert not (tmp_path / "cache" / "session_1").exists()


def test_local_makes_no_request_and_names_missing_files(remote, tmp_path, no_network):
    (tmp_path / "sessions.csv").write_bytes(CSV)
    files = DatasetFiles(remote, tmp_path, "local")

    with files.open_small("sessions.csv") as handle:
        assert handle.read() == CSV
    with pytest.raises(MissingLocalFileError, match="session_1.nwb is not in the cache folder"):
        files.source(NWB_PATH)


def test_download_fetches_verified_files_once(remote, tmp_path):
    files = DatasetFiles(remote, tmp_path, "download")

    source = files.source(NWB_PATH)
    assert source.is_local and (tmp_path / NWB_PATH).read_bytes() == NWB
    assert files.fetch(NWB_PATH).already_complete


def test_auto_prefers_a_complete_local_copy(remote, tmp_path):
    local = tmp_path / NWB_PATH
    local.parent.mkdir()
    local.write_bytes(NWB)

    assert DatasetFiles(remote, tmp_path, "auto").source(NWB_PATH).url == str(local)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_file_in_the_folder_is_read_without_a_request(remote, tmp_path, policy, no_network):
    (tmp_path / "sessions.csv").write_bytes(CSV)
    local = tmp_path / NWB_PATH
    local.parent.mkdir()
    local.write_bytes(NWB)
    files = DatasetFiles(remote, tmp_path, policy)

    with files.open_small("sessions.csv") as handle:
        assert handle.read() == CSV
    assert files.source(NWB_PATH).url == str(local)


def test_a_file_that_is_not_hdf5_is_trusted_as_it_is(remote, tmp_path, no_network):
    # AllenSDK's rule: nothing local tells a short CSV from a whole one; `s3ecephys verify` does.
    (tmp_path / "sessions.csv").write_bytes(CSV[:5])
    with DatasetFiles(remote, tmp_path, "auto").open_small("sessions.csv") as handle:
        assert handle.read() == CSV[:5]


def test_a_part_file_is_never_read(remote, tmp_path, no_network):
    local = tmp_path / NWB_PATH
    local.parent.mkdir()
    local.with_name(local.name + ".part").write_bytes(NWB)

    assert DatasetFiles(remote, tmp_path, "auto").source(NWB_PATH).url == remote.join(NWB_PATH)
    with pytest.raises(MissingLocalFileError, match="session_1.nwb is not in the cache folder"):
        DatasetFiles(remote, tmp_path, "local").source(NWB_PATH)


def test_auto_reads_the_remote_copy_of_a_truncated_file(remote, tmp_path, caplog, no_network):
    local = tmp_path / NWB_PATH
    local.parent.mkdir()
    local.write_bytes(NWB[:-1000])

    with caplog.at_level(logging.WARNING):
        source = DatasetFiles(remote, tmp_path, "auto").source(NWB_PATH)
    assert source.url == remote.join(NWB_PATH)
    assert "lacks 1000 bytes" in caplog.text and "s3ecephys verify --repair" in caplog.text


def test_local_names_a_truncated_file(remote, tmp_path, no_network):
    local = tmp_path / NWB_PATH
    local.parent.mkdir()
    local.write_bytes(NWB[:-1000])

    with pytest.raises(IncompleteLocalFileError, match="1000 bytes missing at its end"):
        DatasetFiles(remote, tmp_path, "local").source(NWB_PATH)


def test_download_replaces_a_truncated_file(remote, tmp_path):
    local = tmp_path / NWB_PATH
    local.parent.mkdir()
    local.write_bytes(NWB[:-1000])

    assert DatasetFiles(remote, tmp_path, "download").source(NWB_PATH).url == str(local)
    assert local.read_bytes() == NWB


@pytest.mark.parametrize("libver", ["earliest", "v108", "latest"])
def test_the_superblock_gives_the_files_size(libver):
    data = _hdf5_bytes(libver)
    assert stored_file_size(data[:64]) == len(data)


def test_a_version_1_superblock_gives_the_files_size():
    data = _hdf5_bytes("earliest")
    assert data[8] == 0
    # Version 1 is version 0 with 4 more bytes (indexed storage K, reserved) before the addresses.
    version_1 = data[:8] + b"\x01" + data[9:24] + b"\x20\x00\x00\x00" + data[24:64]
    assert stored_file_size(version_1) == len(data)


def test_no_size_is_read_from_what_is_not_a_superblock():
    assert stored_file_size(CSV) is None
    assert stored_file_size(b"\x89HDF\r\n\x1a\n\x07" + bytes(60)) is None


def test_a_read_only_cache_is_read_and_never_written(remote, tmp_path, monkeypatch):
    (tmp_path / "sessions.csv").write_bytes(CSV)
    before = sorted(os.listdir(tmp_path))
    # As a read-only mount appears to a process, whatever user runs the tests (root may write
    # into a chmod 555 folder).
    monkeypatch.setattr("s3ecephys.allen.files.os.access", lambda path, mode: False)
    files = DatasetFiles(remote, tmp_path, "auto")

    with files.open_small("sessions.csv") as handle:
        assert handle.read() == CSV
    assert files.source(NWB_PATH).url == remote.join(NWB_PATH)
    assert sorted(os.listdir(tmp_path)) == before


def test_missing_small_files_of_a_read_only_cache_come_from_memory(remote, tmp_path, monkeypatch):
    monkeypatch.setattr("s3ecephys.allen.files.os.access", lambda path, mode: False)
    files = DatasetFiles(remote, tmp_path, "lazy")

    with files.open_small("sessions.csv") as handle:
        assert handle.read() == CSV
    assert os.listdir(tmp_path) == []


def test_policy_comes_from_argument_environment_or_default(monkeypatch):
    assert resolve_policy(None, "lazy") == "lazy"
    monkeypatch.setenv("S3ECEPHYS_CACHE_POLICY", "auto")
    assert resolve_policy(None, "lazy") == "auto"
    assert resolve_policy("local", "lazy") == "local"
    with pytest.raises(ValueError, match="S3ECEPHYS_CACHE_POLICY='sometimes'"):
        monkeypatch.setenv("S3ECEPHYS_CACHE_POLICY", "sometimes")
        resolve_policy(None, "lazy")


def test_an_existing_manifest_is_checked_not_rewritten(tmp_path):
    path = manifest.write_manifest(tmp_path)
    assert manifest.check_manifest(path) == tmp_path

    document = json.loads(path.read_text())
    document["manifest"][0]["value"] = "0.1.0"
    path.write_text(json.dumps(document))
    with pytest.raises(manifest.ManifestError, match="manifest version 0.1.0"):
        manifest.check_manifest(path)
