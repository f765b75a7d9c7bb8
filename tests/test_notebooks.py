"""The tutorial notebooks: committed clean, and executed against the synthetic dataset.

The notebooks read the real bucket by default and whatever ``S3ECEPHYS_ENDPOINT_URL`` names
otherwise; here they run, unchanged, against the synthetic dataset on the local S3.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = (
    "01_data_access.ipynb",
    "02_lfp_analysis.ipynb",
    "03_dask_cluster.ipynb",
    "04_cross_session.ipynb",
)
NOTEBOOKS = sorted(path.name for path in NOTEBOOK_DIR.glob("*.ipynb")) or list(EXPECTED)

# A notebook must find the data through the environment, never through a machine's address.
LOCAL_ADDRESSES = ("127.0.0.1", "localhost")
# Real and synthetic ids differ: code cells take ids from the tables (markdown may cite one).
ID_LITERAL = re.compile(r"(?<![\w.])\d{9}(?![\w.])")
KERNEL_NAME = "s3ecephys-notebook-test"
EXECUTION_TIMEOUT = 300


def _cells(name: str) -> list[dict]:
    return json.loads((NOTEBOOK_DIR / name).read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def test_the_tutorials_are_there():
    assert set(EXPECTED) <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
    for number, cell in enumerate(_cells(name), start=1):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{name}, cell {number}: clear its outputs"
            assert cell.get("execution_count") is None, f"{name}, cell {number}: execution count"
        source = _source(cell)
        for address in LOCAL_ADDRESSES:
            assert address not in source, f"{name}, cell {number}: hard-coded {address}"
        if cell["cell_type"] == "code":
            assert not ID_LITERAL.findall(source), f"{name}, cell {number}: hard-coded id"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_valid_nbformat_4(name):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=nbformat.NO_CONVERT)
    assert notebook.nbformat == 4
    nbformat.validate(notebook)


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Jupyter data folder holding one kernelspec that runs this interpreter.

    The spec named ``python3`` that jupyter_client finds first may belong to another Python (a
    user's ``~/.local/share/jupyter/kernels/python3``, say); the venv's own spec says just
    ``python``. A spec written by ``ipykernel install --prefix`` names ``sys.executable``, and
    its unique name, found through ``$JUPYTER_PATH`` (searched before every other folder), cannot
    be shadowed: the kernel is the interpreter running the tests, with this package installed.
    """
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    spec_dir = Path(install(kernel_name=KERNEL_NAME, display_name=KERNEL_NAME, prefix=str(prefix)))
    argv = json.loads((spec_dir / "kernel.json").read_text(encoding="utf-8"))["argv"]
    assert argv[0] == sys.executable
    return str(prefix / "share" / "jupyter")


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes_against_the_local_s3(
    name, s3_dataset, local_s3, kernel_path, tmp_path, monkeypatch
):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # The kernel is another process: it inherits os.environ as it is when it starts, so the
    # notebook's configuration is set there (and undone after the test).
    monkeypatch.setenv("S3ECEPHYS_ENDPOINT_URL", local_s3.endpoint_url)
    monkeypatch.setenv("S3ECEPHYS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JUPYTER_PATH", kernel_path)
    # 03 and 04 would connect to a scheduler named there instead of starting a local cluster.
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    work = tmp_path / "work"
    work.mkdir()

    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=EXECUTION_TIMEOUT,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(work)}},
    )
    # Raises CellExecutionError, with the cell and its traceback, when any cell fails.
    client.execute()

    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells)
    errors = [o for cell in code_cells for o in cell.outputs if o.output_type == "error"]
    assert not errors
