"""Edits at the HDF5 level after pynwb has written a file, for what the 2020 Allen files hold
and modern pynwb will not write:

- empty electrode ``location`` strings (pynwb refuses ``""``);
- the subject's ``strain`` as an attribute (the extension's form; NWB 2.3+ core made it a
  dataset, and hdmf will not hold both);
- an int64 ``units/spike_times_index`` (hdmf writes the smallest unsigned type that fits).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from s3ecephys.synthetic.nwb_common import BLANK_LOCATION_PLACEHOLDER

ELECTRODE_LOCATIONS = "general/extracellular_ephys/electrodes/location"
SUBJECT = "general/subject"
SPIKE_TIMES_INDEX = "units/spike_times_index"


def finish_file(path: Path, int64_spike_times_index: bool = False) -> None:
    """Apply the edits every file needs and, if asked, widen the spike times index."""
    with h5py.File(path, "r+") as handle:
        _blank_locations(handle)
        _strain_as_attribute(handle)
        if int64_spike_times_index:
            _widen_index(handle, SPIKE_TIMES_INDEX)


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


def _widen_index(handle: h5py.File, path: str) -> None:
    """Replace an index dataset by an int64 copy with the same attributes (its ``target``
    reference included); nothing refers to the index itself, so nothing else changes."""
    old = handle[path]
    values = old[()].astype(np.int64)
    attributes = dict(old.attrs)
    parent, name = old.parent, path.rsplit("/", 1)[-1]
    del parent[name]
    new = parent.create_dataset(name, data=values)
    for key, value in attributes.items():
        new.attrs[key] = value
