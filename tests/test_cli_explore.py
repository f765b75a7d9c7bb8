"""``s3ecephys ls``, ``info`` and ``lfp`` against the synthetic dataset on the local S3."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from s3ecephys.cli import build_parser, main


@pytest.fixture
def source(s3_dataset, local_s3, tmp_path) -> list[str]:
    """The arguments that point a command at the dataset on the local S3."""
    return ["--url", s3_dataset.url, "--endpoint-url", local_s3.endpoint_url,
            "--cache", str(tmp_path / "cache"), "--index-cache", str(tmp_path / "indexes")]


def _csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), index_col=0)


def test_ls_lists_sessions_by_default(source, synthetic_dataset, capsys):
    assert main(["ls", *source]) == 0
    out = capsys.readouterr().out
    assert all(str(s) in out for s in synthetic_dataset.session_ids)
    assert f"{len(synthetic_dataset.session_ids)} sessions" in out


def test_ls_channels_of_one_structure_and_session_type(source, synthetic_dataset, capsys):
    command = ["ls", "--channels", "--structure", "VISp", "--session-type",
               "brain_observatory_1.1", "--csv", *source]
    assert main(command) == 0
    table = _csv(capsys.readouterr().out)
    channels = pd.read_csv(synthetic_dataset.root / "channels.csv", index_col="id")
    sessions = pd.read_csv(synthetic_dataset.root / "sessions.csv", index_col="id")
    probes = pd.read_csv(synthetic_dataset.root / "probes.csv", index_col="id")
    wanted_sessions = sessions.index[sessions["session_type"] == "brain_observatory_1.1"]
    session_of = channels["ecephys_probe_id"].map(probes["ecephys_session_id"])
    expected = channels.index[(channels["ecephys_structure_acronym"] == "VISp")
                              & session_of.isin(wanted_sessions)]
    assert sorted(table.index) == sorted(expected) and len(expected)


def test_ls_probes_of_a_session_with_chosen_columns_and_a_query(
    source, synthetic_dataset, capsys
):
    session_id = synthetic_dataset.session_ids[0]
    assert main(["ls", "--probes", "--session", str(session_id), "--columns", "name",
                 "has_lfp_data", "--csv", *source]) == 0
    table = _csv(capsys.readouterr().out)
    assert list(table.columns) == ["name", "has_lfp_data"]
    assert sorted(table.index) == sorted(synthetic_dataset.probe_ids[session_id])

    assert main(["ls", "--units", "--where", "snr > 1e9", *source]) == 1
    assert "0 units" in capsys.readouterr().out
    assert main(["ls", "--units", "--where", "snr >", *source]) == 2
    assert "--where" in capsys.readouterr().err
    assert main(["ls", "--columns", "no_such_column", *source]) == 2
    assert "unknown column" in capsys.readouterr().err


def test_info_prints_the_tree_from_the_index(source, s3_dataset, synthetic_dataset, tmp_path,
                                             capsys):
    session_id = synthetic_dataset.session_ids[0]
    probe_id = synthetic_dataset.lfp_probe_ids[session_id][0]
    relative = f"session_{session_id}/probe_{probe_id}_lfp.nwb"
    url = s3_dataset.url + relative
    options = source[2:4] + source[-2:]  # --endpoint-url, --index-cache
    assert main(["info", url, *options, "--chunk-tables"]) == 0
    out = capsys.readouterr().out
    with h5py.File(synthetic_dataset.root / relative) as file:
        data = file[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data/data"]
        stored = data.id.get_storage_size()
        line = (f"data: {'x'.join(map(str, data.shape))}, float32, chunks "
                f"{'x'.join(map(str, data.chunks))}, gzip({data.compression_opts})")
        assert line in out
    assert f"stored {stored / 2**20:.1f} MiB" in out
    assert "probe_vertical_position: " in out and "electrodes/" in out

    # Opened again: everything from the kept index, no request.
    assert main(["info", url, *options, "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "0 requests" in out and "acquisition/" in out and "  probe_" not in out

    assert main(["info", s3_dataset.url + "no_such_file.nwb", *options]) == 2
    assert "no_such_file.nwb" in capsys.readouterr().err


def test_info_reads_no_chunk_table_unless_asked(source, s3_dataset, synthetic_dataset,
                                                monkeypatch, capsys):
    def no_background_walk(job, what):
        raise AssertionError(f"info started a background walk: {what}")

    monkeypatch.setattr("s3ecephys.hdf5.chunk_tables.read_later", no_background_walk)
    session_id = synthetic_dataset.session_ids[0]
    probe_id = synthetic_dataset.lfp_probe_ids[session_id][0]
    url = f"{s3_dataset.url}session_{session_id}/probe_{probe_id}_lfp.nwb"
    assert main(["info", url, *source[2:4], *source[-2:]]) == 0
    # The same answer however fast the network: the LFP's size is left unknown, as asked.
    assert "stored ? (chunk table not read: --chunk-tables)" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".nc", ".npy", ".png"])
def test_lfp_writes_a_window(suffix, source, synthetic_dataset, tmp_path, capsys):
    session_id = synthetic_dataset.session_ids[0]
    probe_id = synthetic_dataset.lfp_probe_ids[session_id][0]
    relative = f"session_{session_id}/probe_{probe_id}_lfp.nwb"
    with h5py.File(synthetic_dataset.root / relative) as file:
        series = file[f"acquisition/probe_{probe_id}_lfp/probe_{probe_id}_lfp_data"]
        times = series["timestamps"][()]
        ids = file["general/extracellular_ephys/electrodes/id"][()]
        start, stop = float(times[100]), float(times[300])
        inside = np.flatnonzero((times >= start) & (times <= stop))
        columns = [1, 4]
        expected = series["data"][inside[0] : inside[-1] + 1][:, columns]
    output = tmp_path / f"window{suffix}"
    command = ["lfp", str(session_id), str(probe_id), "--start", str(start), "--stop",
               str(stop), "--channels", *map(str, ids[columns]), "-o", str(output), "--quiet",
               *source]
    assert main(command) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    if suffix == ".npy":
        values = np.load(output)
    elif suffix == ".nc":
        with xr.open_dataset(output, engine="h5netcdf") as written:
            values = written["LFP"].to_numpy()
            assert np.array_equal(written["channel"], ids[columns])
            assert np.array_equal(written["time"], times[inside])
            assert "probe_vertical_position" in written.coords
    else:
        assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        return
    finite = ~np.isnan(values)  # samples in invalid intervals are NaN
    assert np.array_equal(values[finite], expected[finite]) and finite.any()


def test_lfp_names_bad_input_and_exits_2(source, synthetic_dataset, tmp_path, capsys):
    session_id = synthetic_dataset.session_ids[0]
    probe_id = synthetic_dataset.lfp_probe_ids[session_id][0]
    base = ["lfp", str(session_id), str(probe_id), "--quiet", *source]
    cases = {
        ("--start", "1", "--stop", "2", "-o", str(tmp_path / "x.txt")): "--output must end",
        ("--start", "2", "--stop", "1", "-o", str(tmp_path / "x.npy")): "must be after",
        ("--start", "1e6", "--stop", "2e6", "-o", str(tmp_path / "x.npy")): "no LFP sample",
        ("--start", "0", "--stop", "1e6", "--channels", "5", "-o",
         str(tmp_path / "x.npy")): "have no LFP on probe",
    }
    for arguments, message in cases.items():
        assert main([*base, *arguments]) == 2
        assert message in capsys.readouterr().err
    assert main(["lfp", str(session_id), "1", "--start", "0", "--stop", "1", "-o",
                 str(tmp_path / "x.npy"), *source]) == 2
    assert "is not in session" in capsys.readouterr().err
    assert not list(tmp_path.glob("x.*"))


def test_help_explains_each_command(capsys):
    parser = build_parser()
    for command, words in {"ls": "--structure", "info": "stored bytes", "lfp": "netCDF"}.items():
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        assert words in capsys.readouterr().out
