"""A file written by pynwb reads back, object by object, as h5py reads it."""

from __future__ import annotations

from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

from s3ecephys.hdf5 import Dataset, Group, Reference, open_hdf5

pynwb = pytest.importorskip("pynwb")
# pynwb notes that the electrode region was linked before its table had a parent: harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:The linked table:UserWarning")


@pytest.fixture(scope="module")
def nwb_path(tmp_path_factory):
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb.ecephys import LFP, ElectricalSeries

    nwb = pynwb.NWBFile(
        session_description="synthetic",
        identifier="715093703",
        session_start_time=datetime(2019, 1, 1, tzinfo=timezone.utc),
    )
    device = nwb.create_device("probeA")
    group = nwb.create_electrode_group("probeA", "a probe", "VISp", device)
    for number in range(6):
        nwb.add_electrode(x=1.0, y=2.0, z=float(number), location="CA1", group=group)
    region = nwb.create_electrode_table_region(list(range(6)), "all electrodes")
    rng = np.random.default_rng(5)
    series = ElectricalSeries(
        name="probe_1_lfp_data",
        data=H5DataIO(
            rng.normal(size=(5000, 6)).astype(np.float32), compression="gzip", compression_opts=9
        ),
        electrodes=region,
        timestamps=np.arange(5000) / 1250.0,
    )
    nwb.add_acquisition(LFP(name="probe_1_lfp", electrical_series=series))
    nwb.add_trial_column("stimulus_name", "which stimulus")
    for number in range(20):
        nwb.add_trial(
            start_time=number * 1.0, stop_time=number + 0.5, stimulus_name=f"gabor_{number % 3}"
        )
    nwb.add_unit_column("quality", "good or noise")
    for number in range(4):
        nwb.add_unit(spike_times=np.sort(rng.random(10 + number)), quality="good")
    path = tmp_path_factory.mktemp("nwb") / "session.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def plain(value):
    """h5py's values in the forms the engine gives: str for text, paths for references."""
    if isinstance(value, h5py.Reference):
        return value
    if isinstance(value, bytes):
        return value.decode()
    return value


def test_every_dataset_and_attribute_matches_h5py(nwb_path, tmp_path):
    ours = open_hdf5(nwb_path, cache_dir=tmp_path)
    theirs = h5py.File(nwb_path)
    compared = 0

    def compare(name, their_item):
        nonlocal compared
        item = ours[name]
        assert isinstance(item, Dataset if isinstance(their_item, h5py.Dataset) else Group)
        assert set(item.attrs) == set(their_item.attrs)
        for key, their_value in their_item.attrs.items():
            value = item.attrs[key]
            if isinstance(their_value, h5py.Reference):
                assert value == Reference(theirs[their_value].name)
            elif isinstance(their_value, np.ndarray) and their_value.dtype.kind in "OS":
                assert [str(v) for v in value] == [plain(v) for v in their_value]
            else:
                assert np.array_equal(value, plain(their_value))
        if isinstance(their_item, h5py.Dataset):
            expected = their_item[()]
            values = item[()]
            reference = h5py.check_ref_dtype(their_item.dtype)
            fields = their_item.dtype.names or ()
            if reference is not None:
                assert [v.path for v in values] == [theirs[r].name for r in expected]
            elif any(h5py.check_ref_dtype(their_item.dtype[f]) for f in fields):
                for field in fields:
                    if h5py.check_ref_dtype(their_item.dtype[field]):
                        paths = [theirs[r].name for r in expected[field]]
                        assert [v.path for v in values[field]] == paths
                    else:
                        assert np.array_equal(values[field], expected[field])
            else:
                assert type(values) is type(expected)
                assert np.asarray(values).dtype == np.asarray(expected).dtype
                assert np.array_equal(values, expected)
            compared += 1

    theirs.visititems(compare)
    assert compared > 20


def test_the_lfp_series_is_found_through_its_container(nwb_path, tmp_path):
    f = open_hdf5(nwb_path, cache_dir=tmp_path)
    series = f["acquisition/probe_1_lfp/probe_1_lfp_data"]
    assert series.attrs["neurodata_type"] == "ElectricalSeries"
    data = series["data"]
    assert data.compression == "gzip" and data.compression_opts == 9
    electrodes = series["electrodes"]
    assert f[electrodes.attrs["table"]].name == "/general/extracellular_ephys/electrodes"
