"""The Allen ``ndx-aibs-ecephys`` extension (namespace version 0.2.0), defined here at runtime.

The extension ships only inside AllenSDK, which cannot be installed beside modern numpy, so its
five types are declared again with pynwb's spec builder, following the namespace AllenSDK 2.16.2
carries (``allensdk/brain_observatory/ecephys/nwb/ndx-aibs-ecephys.extension.yaml``). The spec is
exported to a temporary folder and loaded once per process; the classes come from
``pynwb.get_class``, so files written with them carry the same ``neurodata_type`` and
``namespace`` attributes as the Allen files and cache the same spec.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

NAMESPACE = "ndx-aibs-ecephys"
NAMESPACE_VERSION = "0.2.0"

_TEXT_VECTOR_UNIT = ("unit", "Unit of measurement for the data")
_RIG_VECTORS = (
    ("monitor_position", "position of monitor (x, y, z)"),
    ("camera_position", "position of camera (x, y, z)"),
    ("led_position", "position of LED (x, y, z)"),
    ("monitor_rotation", "rotation of monitor (x, y, z)"),
    ("camera_rotation", "rotation of camera (x, y, z)"),
)


@dataclass(frozen=True)
class AllenTypes:
    """The generated pynwb classes of the extension."""

    EcephysProbe: type
    EcephysElectrodeGroup: type
    EcephysSpecimen: type
    EcephysEyeTrackingRigMetadata: type
    EcephysCSD: type


def _specs() -> list:
    from pynwb.spec import NWBAttributeSpec, NWBDatasetSpec, NWBGroupSpec

    def unit_attribute() -> NWBAttributeSpec:
        return NWBAttributeSpec(name=_TEXT_VECTOR_UNIT[0], dtype="text", doc=_TEXT_VECTOR_UNIT[1])

    probe = NWBGroupSpec(
        neurodata_type_def="EcephysProbe",
        neurodata_type_inc="Device",
        doc="A neuropixels probe device",
        attributes=[
            NWBAttributeSpec(
                name="sampling_rate", dtype="float64", doc="The sampling rate for the device"
            ),
            NWBAttributeSpec(
                name="probe_id", dtype="int", doc="Unique ID of the neuropixels probe"
            ),
        ],
    )
    electrode_group = NWBGroupSpec(
        neurodata_type_def="EcephysElectrodeGroup",
        neurodata_type_inc="ElectrodeGroup",
        doc="A group consisting of the channels on a single neuropixels probe",
        attributes=[
            NWBAttributeSpec(
                name="has_lfp_data", dtype="bool", doc="Indicates availability of LFP data"
            ),
            NWBAttributeSpec(
                name="probe_id", dtype="int", doc="Unique ID of the neuropixels probe"
            ),
            NWBAttributeSpec(
                name="lfp_sampling_rate",
                dtype="float64",
                doc="The sampling rate at which data were acquired on this electrode group's "
                "channels",
            ),
        ],
    )
    specimen = NWBGroupSpec(
        neurodata_type_def="EcephysSpecimen",
        neurodata_type_inc="Subject",
        doc="Metadata for ecephys specimen",
        attributes=[
            NWBAttributeSpec(name="specimen_name", dtype="text", doc="Full name of specimen"),
            NWBAttributeSpec(name="age_in_days", dtype="float", doc="Age of specimen in days"),
            NWBAttributeSpec(name="strain", dtype="text", doc="Specimen strain"),
        ],
    )
    rig = NWBGroupSpec(
        neurodata_type_def="EcephysEyeTrackingRigMetadata",
        neurodata_type_inc="NWBDataInterface",
        doc="Metadata for ecephys experiment rig",
        attributes=[NWBAttributeSpec(name="equipment", dtype="text", doc="Description of rig")],
        datasets=[
            NWBDatasetSpec(
                name=name,
                dtype="float32",
                dims=["3"],
                shape=[None],
                doc=doc,
                attributes=[unit_attribute()],
            )
            for name, doc in _RIG_VECTORS
        ],
    )
    csd = NWBGroupSpec(
        neurodata_type_def="EcephysCSD",
        neurodata_type_inc="NWBDataInterface",
        doc="A group containing current source density (CSD) data and virtual electrode locations",
        datasets=[
            NWBDatasetSpec(
                name=f"virtual_electrode_{axis}_positions",
                dtype="float32",
                shape=[None],
                doc=f"Virtual {direction} positions of electrodes from which CSD was calculated",
                attributes=[unit_attribute()],
            )
            for axis, direction in (("x", "horizontal"), ("y", "vertical"))
        ],
        groups=[
            NWBGroupSpec(
                neurodata_type_inc="TimeSeries",
                doc="A timeseries containing current source density (CSD) data",
            )
        ],
    )
    return [probe, electrode_group, specimen, rig, csd]


def write_namespace(directory: Path) -> Path:
    """Export the extension's namespace and spec YAML files into ``directory``; return the
    namespace file's path."""
    from pynwb.spec import NWBNamespaceBuilder

    builder = NWBNamespaceBuilder(
        doc="Allen Institute Ecephys Extension",
        name=NAMESPACE,
        version=NAMESPACE_VERSION,
        author="Allen Institute for Brain Science",
        contact="waynew@alleninstitute.org",
    )
    builder.include_namespace("core")
    source = f"{NAMESPACE}.extension.yaml"
    for spec in _specs():
        builder.add_spec(source, spec)
    path = Path(directory) / f"{NAMESPACE}.namespace.yaml"
    builder.export(path.name, outdir=str(directory))
    return path


@cache
def allen_types() -> AllenTypes:
    """Register the extension with pynwb (once per process) and return its classes."""
    import pynwb

    if NAMESPACE not in pynwb.available_namespaces():
        # pynwb reads the YAML at load time and keeps the spec in memory, so the folder can go.
        with tempfile.TemporaryDirectory(prefix="ndx-aibs-ecephys-") as folder:
            pynwb.load_namespaces(str(write_namespace(Path(folder))))
    return AllenTypes(
        **{name: pynwb.get_class(name, NAMESPACE) for name in AllenTypes.__dataclass_fields__}
    )
