"""The synthetic files in both NWB layouts: the real files' NWB 2.2.2 (the default) and today's
pynwb's; the session and LFP readers give the same results on both (ALLEN_LAYOUT.md §5, §8)."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from synthetic_specs import TINY

from s3ecephys import EcephysSession
from s3ecephys.allen import manifest
from s3ecephys.synthetic import SyntheticSpec, write_dataset
from s3ecephys.synthetic.nwb_versions import specifications_2_2_2

SEED = 5
ELECTRODES = "general/extracellular_ephys/electrodes"
CACHED_NAMESPACES_2_2_2 = {"core": "2.2.2", "hdmf-common": "1.1.3", "ndx-aibs-ecephys": "0.2.0"}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict:
    """The TINY dataset (same seed) in each layout, by ``nwb_version``."""
    return {
        version: write_dataset(
            tmp_path_factory.mktemp(f"nwb-{version}"),
            spec=dataclasses.replace(TINY, nwb_version=version),
            seed=SEED,
        )
        for version in ("2.2.2", "current")
    }


def nwb_paths(dataset) -> list[Path]:
    return [dataset.root / name for name in dataset.files if name.endswith(".nwb")]


def typed_objects(handle: h5py.File) -> dict[str, tuple[str, str]]:
    """path -> (neurodata_type, namespace) of every typed group or dataset."""
    found = {}

    def visit(name: str, obj) -> None:
        if "neurodata_type" in obj.attrs:
            found[name] = (
                _text(obj.attrs["neurodata_type"]),
                _text(obj.attrs["namespace"]),
            )

    handle.visititems(visit)
    return found


def attribute_owners(handle: h5py.File, attribute: str) -> list[str]:
    """Paths of the objects that have ``attribute``."""
    owners = []
    handle.visititems(lambda name, obj: owners.append(name) if attribute in obj.attrs else None)
    return owners


def cached_documents(handle: h5py.File) -> dict[str, str]:
    """``"<namespace>/<version>/<source>"`` -> the text cached in ``/specifications``."""
    documents = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            documents[name] = obj.asstr()[()]

    handle["specifications"].visititems(visit)
    return documents


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def type_specs(documents: dict[str, str]) -> dict[str, tuple[str, dict]]:
    """neurodata_type -> (namespace, its spec), from cached specification documents."""
    types = {}

    def walk(namespace: str, spec) -> None:
        if isinstance(spec, dict):
            name = spec.get("neurodata_type_def") or spec.get("data_type_def")
            if name:
                types[name] = (namespace, spec)
            for value in spec.values():
                walk(namespace, value)
        elif isinstance(spec, list):
            for value in spec:
                walk(namespace, value)

    for path, text in documents.items():
        walk(path.split("/")[0], json.loads(text))
    return types


def undeclared_attributes(handle: h5py.File, documents: dict[str, str]) -> list[str]:
    """``path@attribute`` for every attribute the specification does not declare, on typed
    objects and on the untyped datasets their type names (a TimeSeries' ``data`` …): what a
    validator of that schema version would question."""
    types = type_specs(documents)
    found = []

    def chain(kind: str):
        while kind in types:
            spec = types[kind][1]
            yield spec
            kind = spec.get("neurodata_type_inc") or spec.get("data_type_inc")

    def child_attributes(parent_kind: str, name: str) -> set[str]:
        return {
            attribute["name"]
            for spec in chain(parent_kind)
            for child in spec.get("datasets", []) + spec.get("groups", [])
            if child.get("name") == name
            for attribute in child.get("attributes", [])
        }

    def visit(path: str, obj) -> None:
        if path.startswith("specifications"):
            return
        kind = _text(obj.attrs.get("neurodata_type", ""))
        parent_kind = _text(obj.parent.attrs.get("neurodata_type", ""))
        name = path.rsplit("/", 1)[-1]
        if kind:
            allowed = {"namespace", "neurodata_type", "object_id", ".specloc"} | {
                attribute["name"]
                for spec in chain(kind)
                for attribute in spec.get("attributes", [])
            }
        elif parent_kind:
            allowed = set()
        else:
            return
        allowed |= child_attributes(parent_kind, name)
        found.extend(f"{path}@{attribute}" for attribute in set(obj.attrs) - allowed)

    visit("", handle)
    handle.visititems(visit)
    return found


def test_2_2_2_files_carry_the_version_and_cached_namespaces_of_the_real_files(datasets):
    shipped = specifications_2_2_2()
    for path in nwb_paths(datasets["2.2.2"]):
        with h5py.File(path, "r") as f:
            assert f.attrs["nwb_version"] == "2.2.2"
            assert f[f.attrs[".specloc"]] == f["specifications"]
            cached = cached_documents(f)
            assert cached == shipped
            assert {name: list(f["specifications"][name]) for name in f["specifications"]} == {
                name: [version] for name, version in CACHED_NAMESPACES_2_2_2.items()
            }
            for name, version in CACHED_NAMESPACES_2_2_2.items():
                (namespace,) = json.loads(cached[f"{name}/{version}/namespace"])["namespaces"]
                assert (namespace["name"], namespace["version"]) == (name, version)


def test_2_2_2_files_use_only_types_their_cached_spec_defines(datasets):
    types = type_specs(specifications_2_2_2())
    assert {"ElectrodesTable", "TimeSeriesReferenceVectorData"}.isdisjoint(types)
    for path in nwb_paths(datasets["2.2.2"]):
        with h5py.File(path, "r") as f:
            for name, (kind, namespace) in typed_objects(f).items():
                assert types[kind][0] == namespace, (path.name, name, kind, namespace)


def test_2_2_2_files_hold_only_attributes_their_cached_spec_declares(datasets):
    documents = specifications_2_2_2()
    for path in nwb_paths(datasets["2.2.2"]):
        with h5py.File(path, "r") as f:
            assert not undeclared_attributes(f, documents), path.name
    # Today's layout has attributes 2.2.2 does not declare (the check can fail).
    current = datasets["current"]
    with h5py.File(current.root / manifest.session_nwb(current.session_ids[0]), "r") as f:
        extra = undeclared_attributes(f, documents)
    assert "processing/stimulus/timestamps/data@offset" in extra
    assert "units/spike_times_index@description" in extra


def test_2_2_2_files_have_the_types_and_attributes_pynwb_1_wrote(datasets):
    dataset = datasets["2.2.2"]
    session_id = dataset.session_ids[0]
    with h5py.File(dataset.root / manifest.session_nwb(session_id), "r") as f:
        objects = typed_objects(f)
        assert objects[ELECTRODES] == ("DynamicTable", "hdmf-common")
        assert objects["intervals/gabors_presentations/timeseries"] == ("VectorData", "hdmf-common")
        assert f["intervals/gabors_presentations/timeseries"].dtype.names == (
            "idx_start", "count", "timeseries",
        )
        assert "description" not in f["general/devices/probeA"].attrs
        subject = f["general/subject"]
        assert _text(subject.attrs["strain"]) and "strain" not in subject
        assert "reference" not in subject["age"].attrs
        indexes = [name for name, (kind, _) in objects.items() if kind == "VectorIndex"]
        assert "units/spike_times_index" in indexes
        for name in indexes:
            assert f[name].dtype == np.int64, name
            assert set(f[name].attrs) == {"namespace", "neurodata_type", "object_id", "target"}
    for path in nwb_paths(dataset):
        with h5py.File(path, "r") as f:
            assert not attribute_owners(f, "offset"), path.name


def test_current_files_carry_todays_pynwb_layout(datasets):
    import pynwb

    dataset = datasets["current"]
    today = pynwb.get_type_map().namespace_catalog.get_namespace("core").version
    spike_index_types = set()
    for session_id in dataset.session_ids:
        with h5py.File(dataset.root / manifest.session_nwb(session_id), "r") as f:
            assert f.attrs["nwb_version"] == today != "2.2.2"
            assert list(f["specifications/core"]) == [today]
            objects = typed_objects(f)
            assert objects[ELECTRODES] == ("ElectrodesTable", "core")
            assert objects["intervals/gabors_presentations/timeseries"][0] == (
                "TimeSeriesReferenceVectorData"
            )
            assert "processing/stimulus/timestamps/data" in attribute_owners(f, "offset")
            assert f["units/spike_amplitudes_index"].dtype.kind == "u"
            spike_index_types.add(f["units/spike_times_index"].dtype)
    # Today's hdmf narrows indexes to unsigned types; one session keeps an int64 one.
    assert np.dtype(np.int64) in spike_index_types
    assert any(dtype.kind == "u" for dtype in spike_index_types)


def test_both_layouts_open_with_todays_pynwb_without_warnings(datasets):
    import pynwb

    for dataset in datasets.values():
        path = dataset.root / manifest.session_nwb(dataset.session_ids[0])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pynwb.NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
                nwbfile = io.read()
                assert len(nwbfile.electrodes) == len(nwbfile.electrodes.id[:]) > 0


def _session_results(dataset, session_id: int, cache_dir: Path) -> dict:
    session = EcephysSession.from_nwb_path(
        dataset.root / manifest.session_nwb(session_id), cache_dir=cache_dir
    )
    with warnings.catch_warnings():
        # Spike times inside invalid intervals warn, as in AllenSDK: alike in both layouts.
        warnings.simplefilter("ignore", UserWarning)
        results = {
            "units": session.units,
            "channels": session.channels,
            "probes": session.probes,
            "stimulus_presentations": session.stimulus_presentations,
            "invalid_times": session.invalid_times,
            "running_speed": session.running_speed,
            "spike_times": dict(session.spike_times),
            "spike_amplitudes": dict(session.spike_amplitudes),
            "metadata": session.metadata,
        }
    unit_id = session.units.index[0]
    results["mean_waveform"] = session.mean_waveforms[unit_id]
    for probe_id in dataset.lfp_probe_ids[session_id]:
        results[f"lfp {probe_id}"] = session.get_lfp(probe_id).compute()
        results[f"csd {probe_id}"] = session.get_current_source_density(probe_id)
    return results


@pytest.mark.slow
def test_the_session_and_lfp_readers_give_the_same_results_on_both_layouts(datasets, tmp_path):
    old, new = datasets["2.2.2"], datasets["current"]
    assert old.session_ids == new.session_ids and old.lfp_probe_ids == new.lfp_probe_ids
    for session_id in old.session_ids:
        from_old = _session_results(old, session_id, tmp_path / "old")
        from_new = _session_results(new, session_id, tmp_path / "new")
        assert from_old.keys() == from_new.keys()
        assert any(key.startswith("lfp") for key in from_old)
        for key, value in from_old.items():
            other = from_new[key]
            if isinstance(value, pd.DataFrame):
                assert not value.empty or key == "invalid_times", key
                pd.testing.assert_frame_equal(value, other, obj=key)
            elif isinstance(value, xr.DataArray):
                assert value.identical(other), key
            else:
                assert value.keys() == other.keys(), key
                for unit_id, values in value.items():
                    np.testing.assert_array_equal(values, other[unit_id], err_msg=key)


def test_an_unknown_nwb_version_is_refused():
    with pytest.raises(ValueError, match="nwb_version must be one of '2.2.2', 'current'"):
        SyntheticSpec(nwb_version="2.6.0")
