"""The ``s3ecephys`` command: the demo end to end, the dataset writer, messages on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from s3ecephys.cli import main


@pytest.mark.slow
def test_the_demo_runs_the_tutorial_flow_and_writes_a_plot(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "s3ecephys.cli", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    for step in ("get_session_table", "get_units", "get_session_data", "get_lfp", "plot written"):
        assert step in completed.stdout
    plot = tmp_path / "lfp_window.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_make_dataset_writes_an_allensdk_cache_folder(tmp_path, capsys):
    assert main(["make-dataset", str(tmp_path / "dataset")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "dataset" / "manifest.json").is_file()
    assert list((tmp_path / "dataset").glob("session_*/session_*.nwb"))


def test_make_dataset_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["make-dataset", str(tmp_path)]) == 2
    message = capsys.readouterr().err
    assert str(tmp_path) in message and "make-dataset" in message
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_download_from_an_unreachable_endpoint_says_what_to_check(tmp_path, capsys):
    code = main(
        ["download", "--cache", str(tmp_path / "cache"), "--endpoint-url", "http://127.0.0.1:9",
         "--quiet"]
    )
    assert code == 2
    message = capsys.readouterr().err
    assert "cannot reach the S3 endpoint http://127.0.0.1:9" in message
    assert not any(Path(tmp_path).rglob("*.part"))
