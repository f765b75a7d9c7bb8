"""`s3ecephys download` and `s3ecephys verify` on a small dataset in the Allen layout."""

from __future__ import annotations

import pytest

from s3ecephys.allen import manifest
from s3ecephys.cli import main

PREFIX = "tests/prefetch/"
SESSIONS = b"id,session_type\n11,brain_observatory_1.1\n22,functional_connectivity\n"
PROBES = (
    b"id,ecephys_session_id,has_lfp_data\n"
    b"101,11,True\n102,11,False\n201,22,True\n"
)
CONTENT = {
    manifest.sessions_csv(): SESSIONS,
    manifest.probes_csv(): PROBES,
    manifest.channels_csv(): b"id\n1\n",
    manifest.units_csv(): b"id\n1\n",
    manifest.typewise_analysis_metrics("brain_observatory_1.1"): b"ecephys_unit_id\n1\n",
    manifest.typewise_analysis_metrics("functional_connectivity"): b"ecephys_unit_id\n1\n",
    manifest.session_nwb(11): b"session 11" * 5000,
    manifest.session_nwb(22): b"session 22" * 5000,
    manifest.probe_lfp_nwb(11, 101): b"lfp 101" * 9000,
    manifest.probe_lfp_nwb(22, 201): b"lfp 201" * 9000,
}


@pytest.fixture(scope="module")
def source_arguments(local_s3):
    for path, data in CONTENT.items():
        local_s3.put_object(PREFIX + path, data)
    return ["--url", local_s3.url(PREFIX), "--endpoint-url", local_s3.endpoint_url, "--quiet"]


def test_download_fetches_a_session_with_its_lfp(source_arguments, tmp_path, capsys):
    status = main(["download", "--cache", str(tmp_path), "--sessions", "11", "--lfp"]
                  + source_arguments)

    assert status == 0
    wanted = [p for p in CONTENT if "22" not in p.split("/")[0]]
    for path in wanted:
        assert (tmp_path / path).read_bytes() == CONTENT[path]
    assert not (tmp_path / manifest.session_nwb(22)).exists()
    assert not (tmp_path / manifest.probe_lfp_nwb(11, 102)).exists()
    assert (tmp_path / "manifest.json").read_text() == manifest.manifest_text()
    # sessions.csv and probes.csv were fetched first, to know which files a session has.
    assert f"downloaded {len(wanted) - 2} file(s)" in capsys.readouterr().out

    assert main(["download", "--cache", str(tmp_path), "--sessions", "11"] + source_arguments) == 0
    assert "downloaded 0 file(s)" in capsys.readouterr().out


def test_a_failed_file_does_not_stop_the_others(source_arguments, local_s3, tmp_path, capsys):
    missing = manifest.probe_lfp_nwb(22, 201)
    local_s3.client.delete_object(Bucket=local_s3.bucket, Key=PREFIX + missing)
    try:
        status = main(["download", "--cache", str(tmp_path), "--lfp"] + source_arguments)
    finally:
        local_s3.put_object(PREFIX + missing, CONTENT[missing])

    assert status == 1
    out = capsys.readouterr().out
    assert f"FAILED {missing}" in out and "run the same command again" in out
    assert (tmp_path / manifest.session_nwb(22)).read_bytes() == CONTENT[manifest.session_nwb(22)]
    assert not (tmp_path / missing).exists()


def test_verify_finds_and_repairs_broken_files(source_arguments, tmp_path, capsys):
    assert main(["download", "--cache", str(tmp_path), "--lfp"] + source_arguments) == 0
    truncated, interrupted = manifest.session_nwb(11), manifest.probe_lfp_nwb(22, 201)
    (tmp_path / truncated).write_bytes(CONTENT[truncated][:100])
    (tmp_path / interrupted).rename(tmp_path / (interrupted + ".part"))
    capsys.readouterr()

    assert main(["verify", "--cache", str(tmp_path)] + source_arguments) == 1
    out = capsys.readouterr().out
    assert f"CORRUPT {truncated}" in out and f"PARTIAL {interrupted}" in out

    assert main(["verify", "--cache", str(tmp_path), "--repair"] + source_arguments) == 0
    for path in (truncated, interrupted):
        assert (tmp_path / path).read_bytes() == CONTENT[path]
    assert main(["verify", "--cache", str(tmp_path), "--checksum"] + source_arguments) == 0


def test_unknown_sessions_are_named_with_the_known_ones(source_arguments, tmp_path, capsys):
    assert main(["download", "--cache", str(tmp_path), "--sessions", "33"] + source_arguments) == 2
    assert "unknown session id(s) [33]; the sessions are [11, 22]" in capsys.readouterr().err
