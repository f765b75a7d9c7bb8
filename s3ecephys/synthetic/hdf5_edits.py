"""Edits at the HDF5 level after pynwb has written a file, for what the 2020 Allen files hold
and modern pynwb will not write:

- empty electrode ``location`` strings (pynwb refuses ``""``);
- the subject's ``strain`` as an attribute (the extension's form; NWB 2.3+ core made it a
  dataset, and hdmf will not hold both);
- an int64 ``units/spike_times_index`` (hdmf writes the smallest unsigned type that fits);
- for the 2.2.2 layout, the schema version, cached specifications, types and attributes of the
  real files (:mod:`s3ecephys.synthetic.nwb_versions`).
"""

from __future__ import annotations

from pathlib import Path

import h5py

from s3ecephys.synthetic.nwb_common import BLANK_LOCATION_PLACEHOLDER
from s3ecephys.synthetic.nwb_versions import NWB_2_2_2, rewrite_index, to_nwb_2_2_2

ELECTRODE_LOCATIONS = "general/extracellular_ephys/electrodes/location"
SUBJECT = "general/subject"
SPIKE_TIMES_INDEX = "units/spike_times_index"


def finish_file(path: Path, nwb_version: str, int64_spike_times_index: bool = False) -> None:
    """Apply the edits every file needs, those of the layout ``nwb_version`` and, if asked,
    widen the spike times index (which the 2.2.2 layout writes int64 anyway)."""
    with h5py.File(path, "r+") as handle:
        _blank_locations(handle)
        _strain_as_attribute(handle)
        if nwb_version == NWB_2_2_2:
            to_nwb_2_2_2(handle)
        elif int64_spike_times_index:
            rewrite_index(handle, SPIKE_TIMES_INDEX)


def _blank_locations(handle: h5py.File) -> None:
    locations = handle[ELECTRODE_LOCATIONS]
    values = locations.asstr()[()]
    blank = values == BLANK_LOCATION_PLACEHOLDER
    if blank.any():
        values[blank] = ""
        locations[...] = values.astype(object)


def _strain_as_attribute(handle: h5py.File) -> None:
    subject = handle[SUBJECT]
    if "strain" in subject:
        strain = subject["strain"].asstr()[()]
        del subject["strain"]
        subject.attrs["strain"] = strain
