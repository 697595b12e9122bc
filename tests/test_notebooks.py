"""Every notebook runs top to bottom (few ADVI steps) in a kernel on this interpreter."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
STEPS = 200


def _kernel_env() -> dict[str, str]:
    # The kernel is "python3" launched with this interpreter (jupyter_client swaps a bare
    # "python" in the kernelspec for sys.executable), so a fresh clone's venv needs no install.
    return {"BNN_PPL_NB_STEPS": str(STEPS), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def _outputs(nb, output_type: str) -> list:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == output_type]


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            parts.append(o.get("text", ""))
            parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "min_images", "expected"),
    [
        ("01_moons.ipynb", 8, ["Accuracy = ", "sample_posterior_predictive:", "minibatch: final loss"]),
        ("02_digits.ipynb", 6, ["test accuracy", "uniform noise images"]),
        (
            "03_priors_and_description_length.ipynb",
            1,
            ["LC (nats)", "ConjugateKnownMean", "Horseshoe on dense_0", "shortest code:", "are equal: True"],
        ),
        ("04_hierarchical.ipynb", 3, ["hierarchical, 2-16-16-1", "dense_0_w_scale"]),
        ("05_convolutional.ipynb", 4, ["convnet: 2,730 parameters", "acc / MI", "conv_0_kh"]),
        ("06_families_vs_nuts.ipynb", 2, ["std(0) / std(+-1.5)", "test LPD", "ensemble posterior dims", "low-rank: This fit has no PyMC"]),
    ],
)
def test_notebook_runs(name, min_images, expected, monkeypatch):
    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    for key, value in _kernel_env().items():
        monkeypatch.setenv(key, value)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    assert not _outputs(nb, "error")
    images = [o for o in _outputs(nb, "display_data") + _outputs(nb, "execute_result") if "image/png" in o.get("data", {})]
    assert len(images) >= min_images, f"{name} drew {len(images)} figures"
    text = _text(nb)
    assert f"{STEPS} ADVI steps per fit" in text  # the notebook honoured BNN_PPL_NB_STEPS
    for snippet in expected:
        assert snippet in text
    assert "Traceback" not in text and "install \"ipywidgets\"" not in text


def test_committed_notebooks_are_small_and_were_run_in_full():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        assert path.stat().st_size < 1_500_000, f"{path.name} is {path.stat().st_size} bytes"
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count == i for i, c in enumerate(code, start=1)), f"{path.name} was not run top to bottom"
        assert "30000 ADVI steps per fit" in _text(nb), f"{path.name} was committed from a short run"
        assert not _outputs(nb, "error")
