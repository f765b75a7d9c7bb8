"""``write_dataset``: the whole synthetic dataset into one folder, laid out as an AllenSDK cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from s3ecephys.allen import manifest
from s3ecephys.synthetic.catalog import build_catalog
from s3ecephys.synthetic.hdf5_edits import finish_file
from s3ecephys.synthetic.lfp_nwb import write_lfp_file
from s3ecephys.synthetic.session_nwb import write_session_file
from s3ecephys.synthetic.spec import SyntheticSpec
from s3ecephys.synthetic.stimuli import build_stimuli
from s3ecephys.synthetic.tables import write_tables


@dataclass(frozen=True)
class SyntheticDataset:
    """A written synthetic dataset."""

    root: Path
    """The folder: an AllenSDK cache folder (``manifest.json`` and the relative paths below)."""
    files: list[str]
    """Every file written, as a path relative to ``root`` (posix), sorted."""
    session_ids: list[int]
    """Session ids, in sessions.csv order."""
    probe_ids: dict[int, list[int]]
    """Session id -> all its probe ids (probeA first)."""
    lfp_probe_ids: dict[int, list[int]]
    """Session id -> the probe ids that have an LFP file."""
    spec: SyntheticSpec = field(default_factory=SyntheticSpec)
    seed: int = 0


def write_dataset(
    directory: str | Path, spec: SyntheticSpec | None = None, seed: int = 0
) -> SyntheticDataset:
    """Write the dataset of ``spec`` (default :meth:`SyntheticSpec.small`) and ``seed`` into
    ``directory``, which is created if missing and must be empty if it exists.

    The same spec and seed give byte-identical CSVs and NWB files with identical dataset values
    (pynwb gives each object a random ``object_id`` attribute, so the files' bytes differ).
    """
    spec = SyntheticSpec.small() if spec is None else spec
    root = Path(directory)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"{root} exists and is not an empty folder: the synthetic dataset is written only "
            "into a new or empty folder; give another path or empty this one first"
        )
    root.mkdir(parents=True, exist_ok=True)
    catalog = build_catalog(spec, seed)
    written = [manifest.write_manifest(root).relative_to(root).as_posix()]
    written += write_tables(catalog, root)
    for session in catalog.sessions:
        relative = manifest.session_nwb(session.session_id)
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        stimuli = build_stimuli(session, spec.presentations_per_block, seed)
        write_session_file(catalog, session, stimuli, root / relative)
        finish_file(
            root / relative,
            spec.nwb_version,
            int64_spike_times_index=session.int64_spike_times_index,
        )
        written.append(relative)
        for probe in session.probes:
            if probe.has_lfp:
                relative = manifest.probe_lfp_nwb(session.session_id, probe.probe_id)
                write_lfp_file(catalog, session, probe, root / relative)
                finish_file(root / relative, spec.nwb_version)
                written.append(relative)
    return SyntheticDataset(
        root=root,
        files=sorted(written),
        session_ids=[session.session_id for session in catalog.sessions],
        probe_ids={
            session.session_id: [probe.probe_id for probe in session.probes]
            for session in catalog.sessions
        },
        lfp_probe_ids={
            session.session_id: [probe.probe_id for probe in session.probes if probe.has_lfp]
            for session in catalog.sessions
        },
        spec=spec,
        seed=seed,
    )
