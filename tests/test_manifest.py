"""The AllenSDK cache layout: paths resolve as AllenSDK resolves them."""

import json

from s3ecephys.allen import manifest


def test_paths_follow_the_allensdk_layout():
    assert manifest.sessions_csv() == "sessions.csv"
    assert manifest.units_csv() == "units.csv"
    assert manifest.session_nwb(715093703) == "session_715093703/session_715093703.nwb"
    assert (
        manifest.probe_lfp_nwb(715093703, 810755797)
        == "session_715093703/probe_810755797_lfp.nwb"
    )
    assert (
        manifest.typewise_analysis_metrics("brain_observatory_1.1")
        == "brain_observatory_1.1_analysis_metrics.csv"
    )
    assert (
        manifest.session_analysis_metrics(7)
        == "session_7/session_7_analysis_metrics.csv"
    )


def test_written_manifest_is_version_0_3_0_with_basedir_first(tmp_path):
    path = manifest.write_manifest(tmp_path)
    entries = json.loads(path.read_text())["manifest"]
    assert entries[0] == {"type": "manifest_version", "value": "0.3.0"}
    assert entries[1] == {"key": "BASEDIR", "type": "dir", "spec": "."}
    assert [e["key"] for e in entries[2:6]] == ["sessions", "probes", "channels", "units"]
