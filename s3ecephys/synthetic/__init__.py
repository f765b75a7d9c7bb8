"""A deterministic synthetic dataset in the exact layout of the Allen Visual Coding – Neuropixels
cache (as the project's ALLEN_LAYOUT.md describes it): ``manifest.json``, the project CSVs, one
session NWB file per session and one LFP NWB file per probe with LFP, written with pynwb as
AllenSDK's 2020 writer did, quirks of the real files included, in the real files' NWB 2.2.2
layout (or, with ``SyntheticSpec(nwb_version="current")``, in today's pynwb's).

>>> from s3ecephys.synthetic import SyntheticSpec, write_dataset
>>> dataset = write_dataset("/tmp/cache", spec=SyntheticSpec.small())  # doctest: +SKIP

Modules: :mod:`.spec` (sizes), :mod:`.catalog` (ids, metadata, quirks), :mod:`.signals`
(spikes, LFP …), :mod:`.stimuli`, :mod:`.extension` (the ``ndx-aibs-ecephys`` types),
:mod:`.tables` (CSVs), :mod:`.nwb_common`, :mod:`.session_nwb`, :mod:`.lfp_nwb`,
:mod:`.hdf5_edits`, :mod:`.nwb_versions` (the 2.2.2 layout) and :mod:`.writer`. Writing needs
pynwb and hdmf (the ``test`` or ``demo`` extras).
"""

from s3ecephys.synthetic.spec import SyntheticSpec
from s3ecephys.synthetic.writer import SyntheticDataset, write_dataset

__all__ = ["SyntheticDataset", "SyntheticSpec", "write_dataset"]
