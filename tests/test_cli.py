"""The bnn-ppl command line, run as subprocesses: outputs, exit codes and one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bnn_ppl.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "moons"
    proc = run("fit", "models/moons.toml", "--out", out, "--steps", "1500", "--draws", "100", "--ensemble", "2")
    return proc, out


def test_fit_embedded_moons_writes_everything(moons_run):
    proc, out = moons_run
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "decision_surface.png", "loss.png", "metrics.json", "model.bnn", "uncertainty_surface.png"]
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"] == "moons" and metrics["steps"] == 1500
    assert metrics["method"] == "fullrank_advi" and metrics["ensemble"] == 2  # auto: 51 parameters
    assert metrics["test"]["rows"] == 500
    assert 0.85 < metrics["test"]["accuracy"] <= 1.0
    assert f"{metrics['test']['accuracy']:.3f}" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_predict_csv_matches_library(moons_run, tmp_path):
    import bnn_ppl as bp

    _, out = moons_run
    X = np.array([[0.0, 0.0], [1.5, -1.0], [-1.5, 1.0]])
    (tmp_path / "in.csv").write_text("x0,x1\n" + "\n".join(f"{a},{b}" for a, b in X) + "\n")
    proc = run("predict", out / "model.bnn", tmp_path / "in.csv", "--out", tmp_path / "pred.csv", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((tmp_path / "pred.csv").open()))
    assert list(rows[0]) == ["prediction", "p_0", "p_1", "std_0", "std_1", "entropy", "expected_entropy",
                             "mutual_information"]
    expected = bp.load(out / "model.bnn").predictor().uncertainty(X, draws=500, random_seed=7)
    np.testing.assert_allclose([float(r["p_1"]) for r in rows], expected.proba[:, 1], rtol=1e-12)
    np.testing.assert_allclose([float(r["mutual_information"]) for r in rows], expected.mutual_information,
                               rtol=1e-9, atol=1e-15)
    assert [r["prediction"] for r in rows] == [str(k) for k in expected.proba.argmax(1)]


def test_fit_and_predict_csv_with_string_target(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3)) * [1.0, 100.0, 0.01] + [0.0, 500.0, 0.0]
    label = np.where(X[:, 0] + (X[:, 1] - 500.0) / 100.0 > 0, "yes", "no")
    lines = ["a,b,c,answer"] + [f"{r[0]},{r[1]},{r[2]},{lab}" for r, lab in zip(X, label, strict=True)]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    spec = tmp_path / "spec.toml"
    spec.write_text((ROOT / "models/moons.toml").read_text().replace('input_dim = 2\n', "").replace(
        'name = "moons"', 'name = "mine"'))
    proc = run("fit", spec, "--data", tmp_path / "data.csv", "--target", "answer", "--out", tmp_path / "run",
               "--steps", "800", "--draws", "50", "--no-plots", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.json", "model.bnn"]
    assert json.loads((tmp_path / "run/metrics.json").read_text())["test"]["accuracy"] > 0.75
    proc = run("predict", tmp_path / "run/model.bnn", tmp_path / "data.csv", cwd=tmp_path)  # target column ignored
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(proc.stdout.splitlines()))
    assert len(rows) == 80 and {"p_no", "p_yes"} <= set(rows[0])
    assert np.mean([r["prediction"] == lab for r, lab in zip(rows, label, strict=True)]) > 0.75


def test_validate_good_and_bad_specs(tmp_path):
    proc = run("validate", "models/digits.toml")
    assert proc.returncode == 0 and "valid" in proc.stdout and "64 -> 32 -> 10" in proc.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "models/moons.toml").read_text().replace('"identity"', '"tanh"'))
    proc = run("validate", bad)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "activation='identity'" in proc.stderr
    assert "Traceback" not in proc.stderr
    # several files (a shell glob): one line each, exit 1 when any is invalid
    models = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "models").glob("*.toml"))
    proc = run("validate", *models)
    assert proc.returncode == 0 and proc.stdout.count(": valid.") == len(models) > 5
    proc = run("validate", "models/moons.toml", bad)
    assert proc.returncode == 1 and "models/moons.toml: valid." in proc.stdout and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("args, code, message", [
    (("frobnicate",), 2, "invalid choice"),
    (("fit",), 2, "the following arguments are required: SPEC"),
    (("fit", "models/moons.toml", "--steps", "0"), 2, "expected a positive integer"),
    (("fit", "models/moons.toml", "--data", "iris"), 2, "--data must be one of ['moons', 'digits', 'synthetic_mnist']"),
    (("fit", "models/moons.toml", "--target", "y"), 2, "--target only applies to CSV data"),
    (("validate", "missing.toml"), 1, "No spec file at 'missing.toml'"),
    (("predict", "missing.bnn", "x.csv"), 1, "No model file at 'missing.bnn'"),
])
def test_usage_and_runtime_errors(args, code, message):
    proc = run(*args)
    assert proc.returncode == code
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_damaged_model_file_one_line_error_and_debug_traceback(tmp_path):
    (tmp_path / "broken.bnn").write_bytes(b"PK\x03\x04 definitely not a complete zip")
    (tmp_path / "x.csv").write_text("x0,x1\n0,0\n")
    proc = run("predict", tmp_path / "broken.bnn", tmp_path / "x.csv")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "truncated or corrupted" in lines[0]
    proc = run("--debug", "predict", tmp_path / "broken.bnn", tmp_path / "x.csv")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ModelFileError" in proc.stderr


def test_non_utf8_spec_is_a_one_line_error(tmp_path):
    spec = tmp_path / "latin1.toml"
    spec.write_bytes((ROOT / "models/moons.toml").read_text().replace('name = "moons"', 'name = "caf\u00e9"')
                     .encode("latin-1"))
    proc = run("validate", spec)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "latin1.toml is not UTF-8 text" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_regression_target_far_from_unit_scale_is_standardised_and_mapped_back(tmp_path):
    # the CLI fitted y raw under unit-scale priors: y + 100 gave R^2 -2514 (exit 0)
    import warnings

    import bnn_ppl as bp

    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, size=120)
    y = 1e6 + 100 * np.sin(x) + 5 * rng.normal(size=120)
    (tmp_path / "reg.csv").write_text("x,y\n" + "\n".join(f"{a},{b}" for a, b in zip(x, y, strict=True)) + "\n")
    spec = tmp_path / "reg.toml"
    spec.write_text((ROOT / "models/moons.toml").read_text().replace('name = "moons"', 'name = "reg"').replace(
        'kind = "bernoulli"', 'kind = "normal"').replace("input_dim = 2\n", ""))
    proc = run("fit", spec, "--data", tmp_path / "reg.csv", "--target", "y", "--steps", "3000", "--draws", "100",
               "--no-plots", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert test["r2"] > 0.8 and 3 < test["rmse"] < 40  # in the units of y (sd 70, noise 5)
    (tmp_path / "in.csv").write_text("x\n-1.5\n0\n1.5\n")
    proc = run("predict", tmp_path / "run" / "model.bnn", tmp_path / "in.csv", "--out", tmp_path / "pred.csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((tmp_path / "pred.csv").open()))
    np.testing.assert_allclose([float(r["mean"]) for r in rows], 1e6 + 100 * np.sin([-1.5, 0, 1.5]), atol=30)
    assert all(1 < float(r["std"]) < 60 for r in rows)
    with warnings.catch_warnings(record=True) as caught:  # loaded in Python: told the rows are standardised
        warnings.simplefilter("always")
        bp.load(tmp_path / "run" / "model.bnn")
    assert any("takes standardised rows" in str(w.message) for w in caught)
