"""``session_<id>/session_<id>.nwb``: probes, electrodes, units, stimuli, behaviour.

Groups and names as AllenSDK 2.16.2's ``write_ecephys_nwb`` writes them
(``allensdk/brain_observatory/ecephys/write_nwb/__main__.py``) with the helpers of
``allensdk/brain_observatory/nwb/__init__.py``: ``add_stimulus_timestamps`` (``processing/
stimulus/timestamps``), ``add_stimulus_presentations`` (``intervals/<name>_presentations``, tag
``stimulus_time_interval``), ``add_invalid_times`` (``intervals/invalid_times``),
``add_optotagging_table_to_nwbfile`` (``processing/optotagging``), ``add_running_speed_to_nwbfile``
and ``add_raw_running_data_to_nwbfile`` (``processing/running``, ``acquisition``),
``add_eye_tracking_rig_geometry_data_to_nwbfile`` (``processing/eye_tracking_rig_metadata``),
``create_eye_tracking_nwb_processing_module`` and ``create_gaze_mapping_nwb_processing_modules``
(``processing/eye_tracking``, ``raw_gaze_mapping``, ``filtered_gaze_mapping``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from s3ecephys.synthetic import signals
from s3ecephys.synthetic.catalog import Catalog, SessionPlan, rng_for
from s3ecephys.synthetic.extension import allen_types
from s3ecephys.synthetic.nwb_common import (
    add_probe,
    new_nwbfile,
    ragged_columns,
    set_electrodes,
    vector_columns,
    write_nwbfile,
)
from s3ecephys.synthetic.stimuli import OPTOTAGGING_TAG, PRESENTATION_TAG, Stimuli

# units.csv name -> NWB units column name, where they differ.
_UNIT_RENAMES = {"duration": "waveform_duration", "halfwidth": "waveform_halfwidth"}
_CSV_ONLY_UNIT_COLUMNS = (
    "ecephys_channel_id",
    "epoch_name_quality_metrics",
    "epoch_name_waveform_metrics",
)
_RIG_GEOMETRY = {
    "monitor_position": ([118.6, 86.2, 31.6], "mm"),
    "camera_position": ([130.0, 0.0, 0.0], "mm"),
    "led_position": ([265.1, -39.3, 1.0], "mm"),
    "monitor_rotation": ([0.0, 0.0, 0.0], "deg"),
    "camera_rotation": ([0.0, 0.0, 13.1], "deg"),
}


def write_session_file(
    catalog: Catalog, session: SessionPlan, stimuli: Stimuli, path: Path
) -> None:
    """Write one session's NWB file (before the HDF5-level edits of ``hdf5_edits``)."""
    nwbfile = new_nwbfile(
        session,
        identifier=session.session_id,
        description="Data and metadata for an Ecephys session",
        institution="Allen Institute",
    )
    _add_stimuli(nwbfile, stimuli)
    if stimuli.invalid_times is not None:
        _add_invalid_times(nwbfile, stimuli.invalid_times)
    if stimuli.optotagging is not None:
        _add_optotagging(nwbfile, stimuli.optotagging)
    groups = {probe.probe_id: add_probe(nwbfile, probe) for probe in session.probes}
    channels = pd.concat([catalog.channels_of(probe) for probe in session.probes])
    set_electrodes(nwbfile, channels, groups)
    nwbfile.units = _units(catalog, session, channels)
    seed = catalog.seed
    _add_running(
        nwbfile,
        signals.running(rng_for(seed, "running", session.session_id), session.start, session.stop),
    )
    if session.has_eye_tracking:
        _add_eye_tracking(
            nwbfile,
            signals.eye_tracking(
                rng_for(seed, "eye", session.session_id), session.start, session.stop
            ),
        )
    write_nwbfile(nwbfile, path, catalog.spec.nwb_version)


def _time_intervals(
    name: str,
    description: str,
    table: pd.DataFrame,
    tag: str,
    series,
    descriptions: dict[str, str] | None = None,
):
    """A TimeIntervals table from a frame of start_time, stop_time and other columns, every row
    tagged ``tag`` and referencing ``series`` from its first timestamp at or after the start up
    to its first at or after the stop, as pynwb's ``add_interval(timeseries=...)`` does."""
    from hdmf.common import VectorIndex
    from pynwb.base import TimeSeriesReference, TimeSeriesReferenceVectorData
    from pynwb.epoch import TimeIntervals

    n = len(table)
    times = np.asarray(series.timestamps)
    first = np.searchsorted(times, table["start_time"].to_numpy())
    last = np.searchsorted(times, table["stop_time"].to_numpy())
    references = TimeSeriesReferenceVectorData(
        name="timeseries",
        description="index into a TimeSeries object",
        data=[
            TimeSeriesReference(int(i), int(c), series)
            for i, c in zip(first, last - first, strict=True)
        ],
    )
    columns = [
        *vector_columns(table, descriptions),
        *ragged_columns("tags", "user-defined tags", [tag] * n, np.arange(1, n + 1)),
        references,
        VectorIndex(name="timeseries_index", data=np.arange(1, n + 1), target=references),
    ]
    return TimeIntervals(name=name, description=description, id=np.arange(n), columns=columns)


_PRESENTATION_DESCRIPTIONS = {
    "start_time": "Start time of epoch, in seconds",
    "stop_time": "Stop time of epoch, in seconds",
    "stimulus_name": "Name of stimulus",
    "stimulus_block": "Index of contiguous presentations of one stimulus type",
    "stimulus_index": "Index of stimulus type",
}


def _add_stimuli(nwbfile, stimuli: Stimuli) -> None:
    import pynwb

    module = pynwb.ProcessingModule(name="stimulus", description="Stimulus Times processing")
    nwbfile.add_processing_module(module)
    series = pynwb.TimeSeries(
        name="timestamps", data=stimuli.frame_times, timestamps=stimuli.frame_times, unit="s"
    )
    module.add(series)
    for name, table in stimuli.presentations.items():
        stimulus = name.removesuffix("_presentations")
        nwbfile.add_time_intervals(
            _time_intervals(
                name,
                f"Presentation times and stimuli details for '{stimulus}' stimuli",
                table,
                PRESENTATION_TAG,
                series,
                _PRESENTATION_DESCRIPTIONS,
            )
        )


def _add_invalid_times(nwbfile, invalid: pd.DataFrame) -> None:
    from pynwb.epoch import TimeIntervals

    n = len(invalid)
    tags = [tag for row in invalid["tags"] for tag in row]
    columns = [
        *vector_columns(invalid[["start_time", "stop_time"]], _PRESENTATION_DESCRIPTIONS),
        *ragged_columns(
            "tags", "user-defined tags", tags, np.cumsum([len(row) for row in invalid["tags"]])
        ),
    ]
    nwbfile.invalid_times = TimeIntervals(
        name="invalid_times",
        description="time intervals to be removed from analysis",
        id=np.arange(n),
        columns=columns,
    )


def _add_optotagging(nwbfile, table: pd.DataFrame) -> None:
    import pynwb

    series = pynwb.TimeSeries(
        name="optotagging",
        timestamps=table["start_time"].to_numpy(),
        data=table["duration"].to_numpy(),
        unit="seconds",
    )
    module = pynwb.ProcessingModule(name="optotagging", description="optogenetic stimulution data")
    module.add(series)
    module.add(
        _time_intervals(
            "optogenetic_stimulation",
            "optogenetic stimulation",
            table,
            OPTOTAGGING_TAG,
            series,
        )
    )
    nwbfile.add_processing_module(module)


def _units(catalog: Catalog, session: SessionPlan, channels: pd.DataFrame):
    """The units table: the scalar columns of units.csv (NWB names) and the ragged spike times,
    spike amplitudes and mean waveforms, all concatenated in table order."""
    from pynwb.misc import Units

    units = catalog.units_of(session)
    scalars = units.drop(columns=list(_CSV_ONLY_UNIT_COLUMNS)).rename(columns=_UNIT_RENAMES)
    peak = channels.loc[units["ecephys_channel_id"]]
    scalars["peak_channel_id"] = units["ecephys_channel_id"].to_numpy()
    scalars["local_index"] = peak["local_index"].to_numpy()
    # Kilosort cluster numbers: per probe, increasing with gaps.
    rng = rng_for(catalog.seed, "clusters", session.session_id)
    probe_of_unit = peak["ecephys_probe_id"].to_numpy()
    steps = pd.Series(rng.integers(1, 4, len(units)))
    scalars["cluster_id"] = steps.groupby(probe_of_unit).cumsum().to_numpy() - 1
    scalars = scalars[sorted(scalars.columns)]

    trains, amplitudes, waveforms = [], [], []
    for probe in session.probes:
        mine = probe_of_unit == probe.probe_id
        if not mine.any():
            continue
        probe_units = units.loc[mine]
        probe_channels = catalog.channels_of(probe)
        rng = rng_for(catalog.seed, "spikes", probe.probe_id)
        train = signals.spike_trains(
            rng,
            catalog.spike_counts.loc[probe_units.index].to_numpy(),
            session.start,
            session.stop,
            probe.sampling_rate,
        )
        trains.append(train)
        amplitudes.append(signals.spike_amplitudes(rng, train, probe_units["amplitude"].to_numpy()))
        waveforms.append(
            signals.mean_waveforms(
                rng,
                probe_channels.index.get_indexer(probe_units["ecephys_channel_id"]),
                probe_channels["probe_vertical_position"].to_numpy(dtype=float),
                probe_units["amplitude"].to_numpy(),
                probe_units["spread"].to_numpy(),
            )
        )

    def joined(parts: list[signals.Ragged]) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.cumsum([0] + [len(p.data) for p in parts[:-1]])
        data = np.concatenate([p.data for p in parts])
        ends = np.concatenate([p.ends + offset for p, offset in zip(parts, offsets, strict=True)])
        return data, ends

    columns = [
        *vector_columns(scalars),
        *ragged_columns("spike_times", "times (s) of detected spiking events", *joined(trains)),
        *ragged_columns(
            "spike_amplitudes", "amplitude (s) of detected spiking events", *joined(amplitudes)
        ),
        *ragged_columns(
            "waveform_mean", "mean waveforms on peak channels (over samples)", *joined(waveforms)
        ),
    ]
    return Units(
        name="units",
        description="Autogenerated by NWBFile",
        id=units.index.to_numpy(dtype=np.int64),
        columns=columns,
    )


def _add_running(nwbfile, run: dict[str, np.ndarray]) -> None:
    import pynwb

    module = pynwb.ProcessingModule(name="running", description="running speed data")
    nwbfile.add_processing_module(module)
    speed = pynwb.TimeSeries(
        name="running_speed", timestamps=run["start_time"], data=run["velocity"], unit="cm/s"
    )
    # Only end times; the NaN data keeps the TimeSeries valid (as the Allen writer does).
    end_times = pynwb.TimeSeries(
        name="running_speed_end_times",
        timestamps=run["end_time"],
        data=np.full(run["velocity"].shape, np.nan),
        unit="cm/s",
    )
    rotation = pynwb.TimeSeries(
        name="running_wheel_rotation", timestamps=speed, data=run["net_rotation"], unit="radians"
    )
    for series in (speed, end_times, rotation):
        module.add(series)
    raw_rotation = pynwb.TimeSeries(
        name="raw_running_wheel_rotation",
        timestamps=run["start_time"],
        data=run["net_rotation"],
        unit="radians",
    )
    nwbfile.add_acquisition(raw_rotation)
    for name, key in (
        ("running_wheel_signal_voltage", "signal_voltage"),
        ("running_wheel_supply_voltage", "supply_voltage"),
    ):
        nwbfile.add_acquisition(
            pynwb.TimeSeries(name=name, timestamps=raw_rotation, data=run[key], unit="V")
        )


def _add_eye_tracking(nwbfile, eye: dict) -> None:
    import pynwb
    from hdmf.common import DynamicTable

    rig = pynwb.ProcessingModule(
        name="eye_tracking_rig_metadata", description="Eye tracking rig metadata module"
    )
    rig.add(
        allen_types().EcephysEyeTrackingRigMetadata(
            name="eye_tracking_rig_metadata",
            equipment="CAM2P.5",
            **{
                name: np.asarray(values, dtype=np.float32)
                for name, (values, _) in _RIG_GEOMETRY.items()
            },
            **{f"{name}__unit": unit for name, (_, unit) in _RIG_GEOMETRY.items()},
        )
    )
    nwbfile.add_processing_module(rig)

    tracking = pynwb.ProcessingModule(
        name="eye_tracking", description="Eye tracking processing module"
    )
    n = eye["timestamps"].size
    for prefix in ("pupil", "cr", "eye"):
        frame = pd.DataFrame(eye["fits"][prefix]).assign(timestamps=eye["timestamps"])
        tracking.add(
            DynamicTable(
                name=f"{prefix}_ellipse_fits",
                description=f"{prefix} ellipse fits",
                id=np.arange(n),
                columns=vector_columns(frame),
            )
        )
    nwbfile.add_processing_module(tracking)

    units = {
        "pupil_area": "Pixels ^ 2",
        "eye_area": "Pixels ^ 2",
        "screen_coordinates": "Centimeters",
        "screen_coordinates_spherical": "Degrees",
    }
    for module_name, key, description in (
        ("raw_gaze_mapping", "raw", "Gaze mapping processing module raw outputs"),
        ("filtered_gaze_mapping", "filtered", "Gaze mapping processing module filtered outputs"),
    ):
        module = pynwb.ProcessingModule(name=module_name, description=description)
        for name, unit in units.items():
            module.add(
                pynwb.TimeSeries(
                    name=name, data=eye[key][name], timestamps=eye["timestamps"], unit=unit
                )
            )
        nwbfile.add_processing_module(module)
