"""Cache policies: which copy of a file is read, what is downloaded, what is never touched."""

from __future__ import annotations

import json
import logging
import os

import pytest

from s3ecephys.allen import manifest
from s3ecephys.allen.files import DatasetFiles, MissingLocalFileError, resolve_policy
from s3ecephys.storage.ranges import RangeStore

PREFIX = "tests/files/"
CSV = b"id,name\n1,a\n2,b\n"
NWB = bytes(range(256)) * 400
NWB_PATH = "session_1/session_1.nwb"


@pytest.fixture(scope="module")
def remote(local_s3):
    local_s3.put_object(PREFIX + "sessions.csv", CSV)
    local_s3.put_object(PREFIX + NWB_PATH, NWB)
    return local_s3.location(PREFIX)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(RangeStore, "info", refuse)
    monkeypatch.setattr(RangeStore, "fetch", refuse)


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


def test_auto_reads_the_remote_copy_of_a_truncated_file(remote, tmp_path, caplog):
    local = tmp_path / NWB_PATH
    local.parent.mkdir()
    local.write_bytes(NWB[:1000])

    with caplog.at_level(logging.WARNING):
        source = DatasetFiles(remote, tmp_path, "auto").source(NWB_PATH)
    assert source.url == remote.join(NWB_PATH)
    assert "s3ecephys verify --repair" in caplog.text


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
