"""What the session file and the LFP files share: the file header, the subject, the probes'
devices and electrode groups, the electrodes table and how a file is written.

Names, attributes and column order follow AllenSDK 2.16.2's ecephys writer
(``allensdk/brain_observatory/ecephys/write_nwb/__main__.py``: ``add_metadata_to_nwbfile``,
``add_probe_to_nwbfile``, ``add_ecephys_electrodes``). Where modern pynwb cannot write what the
2020 files hold (an empty electrode ``location``, ``strain`` as an attribute of the subject), a
stand-in is written and :mod:`s3ecephys.synthetic.hdf5_edits` puts the real form in afterwards.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from s3ecephys.synthetic.catalog import (
    FILTERING,
    LFP_SUBSAMPLING_FACTOR,
    SPECIES,
    STRAIN,
    ProbePlan,
    SessionPlan,
)
from s3ecephys.synthetic.extension import allen_types
from s3ecephys.synthetic.nwb_versions import CURRENT

# Written where a channel has no structure; replaced by "" after writing (pynwb refuses "").
BLANK_LOCATION_PLACEHOLDER = "<no structure>"


def new_nwbfile(session: SessionPlan, identifier: int, description: str, institution: str):
    """An NWBFile with the Allen header fields and subject; times fixed by the session, so two
    writes of one dataset hold the same values."""
    import pynwb

    nwbfile = pynwb.NWBFile(
        session_description=description,
        identifier=str(identifier),
        session_id=str(session.session_id),
        session_start_time=session.acquired,
        file_create_date=[session.acquired + timedelta(days=120)],
        institution=institution,
        stimulus_notes=session.session_type,
    )
    nwbfile.subject = allen_types().EcephysSpecimen(
        subject_id=str(session.donor_id),
        specimen_name=session.specimen_name,
        age_in_days=session.age_in_days,
        age=f"P{int(session.age_in_days)}D",
        genotype=session.genotype,
        sex=session.sex,
        species=SPECIES,
        strain=STRAIN,
    )
    return nwbfile


def add_probe(nwbfile, probe: ProbePlan, halve_lfp_rate: bool = False):
    """Add the probe's EcephysProbe device and EcephysElectrodeGroup; return the group.

    The group's ``lfp_sampling_rate`` is the subsampled LFP rate (≈1250 Hz); with
    ``halve_lfp_rate`` it is divided by the subsampling factor once more, as the Allen writer
    did for LFP files whose probe record it had already divided.
    """
    types = allen_types()
    device = types.EcephysProbe(
        name=probe.name,
        description="Neuropixels 1.0 Probe",
        probe_id=probe.probe_id,
        sampling_rate=probe.sampling_rate,
    )
    lfp_rate = probe.lfp_rate / (LFP_SUBSAMPLING_FACTOR if halve_lfp_rate else 1.0)
    group = types.EcephysElectrodeGroup(
        name=probe.name,
        description="Ecephys Electrode Group",
        location="See electrode locations",
        device=device,
        probe_id=probe.probe_id,
        has_lfp_data=probe.has_lfp,
        lfp_sampling_rate=lfp_rate,
    )
    nwbfile.add_device(device)
    nwbfile.add_electrode_group(group)
    return group


def set_electrodes(nwbfile, channels: pd.DataFrame, groups: dict[int, object]) -> None:
    """The electrodes table: one row per channel (index = channel id), Allen's columns.

    ``channels`` are channels.csv rows with ``valid_data``; ``groups`` maps probe id to its
    electrode group. CCF coordinates are x (AP), y (DV), z (LR), as floats.
    """
    from hdmf.common import VectorData
    from pynwb.ecephys import ElectrodesTable

    acronyms = channels["ecephys_structure_acronym"]
    locations = [a if isinstance(a, str) else BLANK_LOCATION_PLACEHOLDER for a in acronyms]
    probe_ids = channels["ecephys_probe_id"].to_numpy()
    columns = {
        "x": (
            "the x coordinate of the channel location (AP, um)",
            channels["anterior_posterior_ccf_coordinate"].to_numpy(dtype=float),
        ),
        "y": (
            "the y coordinate of the channel location (DV, um)",
            channels["dorsal_ventral_ccf_coordinate"].to_numpy(dtype=float),
        ),
        "z": (
            "the z coordinate of the channel location (LR, um)",
            channels["left_right_ccf_coordinate"].to_numpy(dtype=float),
        ),
        "imp": ("the impedance of the channel", np.full(len(channels), np.nan)),
        "location": ("the location of channel within the subject e.g. brain region", locations),
        "filtering": ("description of hardware filtering", [FILTERING] * len(channels)),
        "group": (
            "a reference to the ElectrodeGroup this electrode is a part of",
            [groups[int(p)] for p in probe_ids],
        ),
        "group_name": (
            "the name of the ElectrodeGroup this electrode is a part of",
            [groups[int(p)].name for p in probe_ids],
        ),
        "probe_vertical_position": (
            "Length-wise position of electrode/channel on device (microns)",
            channels["probe_vertical_position"].to_numpy(dtype=np.int64),
        ),
        "probe_horizontal_position": (
            "Width-wise position of electrode/channel on device (microns)",
            channels["probe_horizontal_position"].to_numpy(dtype=np.int64),
        ),
        "probe_id": ("The unique id of this electrode's/channel's device", probe_ids),
        "local_index": (
            "The local index of electrode/channel on device",
            channels["local_index"].to_numpy(dtype=np.int64),
        ),
        "valid_data": (
            "Whether data from this electrode/channel is usable",
            channels["valid_data"].to_numpy(dtype=bool),
        ),
    }
    nwbfile.electrodes = ElectrodesTable(
        id=channels.index.to_numpy(dtype=np.int64),
        columns=[
            VectorData(name=name, description=description, data=data)
            for name, (description, data) in columns.items()
        ],
    )


def vector_columns(frame: pd.DataFrame, descriptions: dict[str, str] | None = None) -> list:
    """One VectorData per column of ``frame``: numbers as they are, text as str."""
    from hdmf.common import VectorData

    descriptions = descriptions or {}
    columns = []
    for name, series in frame.items():
        data = series.to_numpy()
        if data.dtype.kind in "OUS" or isinstance(series.dtype, pd.StringDtype):
            data = [str(value) for value in data]
        columns.append(
            VectorData(name=name, description=descriptions.get(name, "No description"), data=data)
        )
    return columns


def ragged_columns(name: str, description: str, data, ends) -> list:
    """A ragged column as (VectorData, VectorIndex); the index's ``ends[i]`` is row i's end."""
    from hdmf.common import VectorData, VectorIndex

    values = VectorData(name=name, description=description, data=data)
    return [values, VectorIndex(name=f"{name}_index", data=np.asarray(ends), target=values)]


def write_nwbfile(nwbfile, path: Path, nwb_version: str) -> None:
    """Write without hdmf's expandable (chunked) table columns, and with today's spec cached
    for today's layout (the 2.2.2 one is cached by ``hdf5_edits``, after writing).

    The Allen files were written contiguous and uncompressed except where compression was asked
    for; hdmf 4+ would otherwise chunk every table column to make it appendable.
    """
    import pynwb

    with warnings.catch_warnings():
        # The subject's ``strain``: an attribute in the Allen extension, a dataset in NWB 2.3+
        # core; pynwb writes the dataset and warns the attribute is missing. hdf5_edits moves it.
        warnings.filterwarnings(
            "ignore", message=r"EcephysSpecimen .* missing required value for attribute"
        )
        with pynwb.NWBHDF5IO(str(path), mode="w") as io:
            io.write(nwbfile, cache_spec=nwb_version == CURRENT, expandable=())
