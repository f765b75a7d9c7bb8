"""``session_<id>/probe_<id>_lfp.nwb``: one probe's LFP and current source density.

As AllenSDK 2.16.2's ``write_probe_lfp_file`` and ``add_csd_to_nwbfile`` write them
(``allensdk/brain_observatory/ecephys/write_nwb/__main__.py``): the identifier is the probe id,
the electrodes table holds only the LFP channels, ``acquisition/probe_<id>_lfp`` is an LFP
container holding the ElectricalSeries ``probe_<id>_lfp_data``, and the same series is added to
``acquisition`` itself, which hdmf stores as the HDF5 soft link ``acquisition/probe_<id>_lfp_data``
seen on the real files. Data and timestamps are gzip level 9 with no chunk shape given, so h5py
chooses the chunks, as it did for the real files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s3ecephys.synthetic import signals
from s3ecephys.synthetic.catalog import Catalog, ProbePlan, SessionPlan, rng_for
from s3ecephys.synthetic.extension import allen_types
from s3ecephys.synthetic.nwb_common import add_probe, new_nwbfile, set_electrodes, write_nwbfile

CSD_UNIT = "V/cm^2"
POSITION_UNIT = "um"


def lfp_series_name(probe_id: int) -> str:
    """The ElectricalSeries' name, also the soft link's name in ``acquisition``."""
    return f"probe_{probe_id}_lfp_data"


def write_lfp_file(catalog: Catalog, session: SessionPlan, probe: ProbePlan, path: Path) -> None:
    """Write one probe's LFP file."""
    import pynwb
    from pynwb import H5DataIO

    nwbfile = new_nwbfile(
        session,
        identifier=probe.probe_id,
        description="LFP data and associated info for one probe",
        institution="Allen Institute for Brain Science",
    )
    group = add_probe(nwbfile, probe, halve_lfp_rate=probe.halved_lfp_rate_in_lfp_file)
    channels = catalog.channels_of(probe)
    lfp_channels = channels.loc[channels["local_index"].isin(probe.lfp_local_indices).to_numpy()]
    set_electrodes(nwbfile, lfp_channels, {probe.probe_id: group})

    n_samples = int(catalog.spec.duration * probe.lfp_rate)
    rng = rng_for(catalog.seed, "lfp", probe.probe_id)
    data = signals.lfp_volts(rng, n_samples, len(lfp_channels), probe.lfp_rate)
    timestamps = signals.lfp_timestamps(session.start, n_samples, probe.lfp_rate)

    lfp = pynwb.ecephys.LFP(name=f"probe_{probe.probe_id}_lfp")
    # The container must be in the file before the series' electrode region is made.
    nwbfile.add_acquisition(lfp)
    region = nwbfile.create_electrode_table_region(
        region=list(range(len(lfp_channels))),
        name="electrodes",
        description=f"lfp channels on probe {probe.probe_id}",
    )
    series = lfp.create_electrical_series(
        name=lfp_series_name(probe.probe_id),
        data=H5DataIO(data=data, compression="gzip", compression_opts=9),
        timestamps=H5DataIO(data=timestamps, compression="gzip", compression_opts=9),
        electrodes=region,
    )
    nwbfile.add_acquisition(series)
    _add_csd(nwbfile, rng, channels, probe.lfp_rate)
    write_nwbfile(nwbfile, path, catalog.spec.nwb_version)


def _add_csd(nwbfile, rng: np.random.Generator, channels, rate: float) -> None:
    import pynwb

    n_virtual = len(channels)
    csd, times = signals.current_source_density(rng, n_virtual, rate)
    module = pynwb.ProcessingModule(
        name="current_source_density", description="Precalculated current source density"
    )
    nwbfile.add_processing_module(module)
    series = pynwb.TimeSeries(
        name="current_source_density", data=csd, timestamps=times, unit=CSD_UNIT
    )
    module.add(
        allen_types().EcephysCSD(
            name="ecephys_csd",
            time_series=series,
            virtual_electrode_x_positions=np.full(n_virtual, 35.0, dtype=np.float32),
            virtual_electrode_x_positions__unit=POSITION_UNIT,
            virtual_electrode_y_positions=(10.0 * np.arange(n_virtual)).astype(np.float32),
            virtual_electrode_y_positions__unit=POSITION_UNIT,
        )
    )
