"""docs/notebooks/quickstart.ipynb executes on this interpreter and shows what it promises."""

from __future__ import annotations

import base64
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebooks" / "quickstart.ipynb"
KERNEL = "python3"


def _kernel_runs_this_interpreter() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        return False
    command = spec.argv[0] if spec.argv else ""
    # jupyter_client runs a bare "python" as sys.executable
    return (
        command in ("python", "python3")
        or Path(command).resolve() == Path(sys.executable).resolve()
    )


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The notebook, executed by a ``python3`` kernel running this interpreter."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's migration warning
        patch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        if not _kernel_runs_this_interpreter():
            from ipykernel.kernelspec import install

            prefix = tmp_path_factory.mktemp("kernel")
            install(kernel_name=KERNEL, prefix=str(prefix))
            patch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        client = nbclient.NotebookClient(
            notebook,
            kernel_name=KERNEL,
            timeout=120,
            resources={"metadata": {"path": str(NOTEBOOK.parent)}},
        )
        client.execute()
    return notebook


def _outputs(notebook: Any) -> list[Any]:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def _text(output: Any) -> str:
    if output.output_type == "stream":
        return str(output.text)
    return str(output.get("data", {}).get("text/html", ""))


def test_the_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert notebook.metadata.kernelspec.name == KERNEL


def test_it_runs_without_errors_and_verifies_the_audit(executed: Any) -> None:
    outputs = _outputs(executed)
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    last = [cell for cell in executed.cells if cell.cell_type == "code"][-1]
    assert "audit ok" in "".join(o.text for o in last.outputs if o.output_type == "stream")


def test_it_shows_the_reports_as_tables(executed: Any) -> None:
    html = "\n".join(_text(o) for o in _outputs(executed))
    assert "Validation: 12 of 15 device(s) valid" in html  # the validation report's repr
    assert "<progress" in html  # a batch status's repr
    assert "100%" in html
    assert "completed" in html
    assert "round  1:" in html  # status between work() rounds
    assert 'class="dataframe' in html  # plans, devices, changes and the audit trail


def test_it_draws_a_chart(executed: Any) -> None:
    from matplotlib import image

    images = [o.data["image/png"] for o in _outputs(executed) if "image/png" in o.get("data", {})]
    assert len(images) == 1
    png = base64.b64decode(images[0])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = image.imread(io.BytesIO(png), format="png")
    height, width = pixels.shape[:2]
    assert width > 400
    assert height > 150
    assert pixels.std() > 0.05  # bars and text, not a blank canvas
