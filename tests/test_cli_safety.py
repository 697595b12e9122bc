"""The CLI as a careless or hostile user drives it: paths from specs, bad engines, Ctrl-C, columns."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bnn_ppl.cli import ENGINE_CHOICES, EXIT_INTERRUPTED
from bnn_ppl.inference.engines import ENGINES

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "bnn_ppl.cli"]


def run(*args, cwd=ROOT, timeout=300):
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", ["../../etc/evil", "/tmp/evil_abs", "a/b"])
def test_a_spec_name_cannot_choose_where_fit_writes(tmp_path, name):
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    spec = work / "evil.toml"
    spec.write_text((ROOT / "models/moons.toml").read_text().replace('name = "moons"', f'name = "{name}"'))
    proc = run("validate", spec, cwd=work)
    assert proc.returncode == 1 and "'name'" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("fit", spec, "--steps", "10", "--no-plots", cwd=work)
    assert proc.returncode == 1 and "'name'" in proc.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "evil.toml", "work"]
    assert not Path("/tmp/evil_abs").exists()


def test_engine_choices_are_the_registry_and_are_checked_before_the_data():
    assert set(ENGINE_CHOICES) == {"auto", *ENGINES.names()}
    from bnn_ppl import cli
    from bnn_ppl.inference import estimator

    assert (cli.KL_CHOICES, cli.GRADIENTS) == (estimator.KL_CHOICES, estimator.GRADIENTS)
    started = time.perf_counter()
    proc = run("fit", "models/moons.toml", "--engine", "tpu", "--data", "no_such_file.csv")
    assert proc.returncode == 2 and "invalid choice: 'tpu'" in proc.stderr and "'auto'" in proc.stderr
    assert "no_such_file" not in proc.stderr and time.perf_counter() - started < 20


def test_predict_help_and_columns_say_what_the_csv_needs(tmp_path):
    proc = run("predict", "--help")
    assert proc.returncode == 0 and "feature columns" in proc.stdout and "--columns" in proc.stdout
    proc = run("fit", "models/moons.toml", "--steps", "50", "--kl-weight", "0")
    assert proc.returncode == 2 and "--kl-weight: expected a positive number, got '0'" in proc.stderr
    proc = run("fit", "models/moons.toml", "--steps", "50", "--kl-weight", "0.5", "--no-plots", "--out", tmp_path / "m")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["elbo"]["kl_weight"] == 0.5
    proc = run("predict", tmp_path / "m" / "model.bnn", "--columns")
    assert proc.returncode == 0 and proc.stdout.strip() == "x0,x1"
    proc = run("predict", tmp_path / "m" / "model.bnn")
    assert proc.returncode == 2 and "--columns" in proc.stderr
    # a model with named features reads them by name, never by position
    (tmp_path / "renamed.csv").write_text("x1,extra\n0.3,9\n")
    proc = run("predict", tmp_path / "m" / "model.bnn", tmp_path / "renamed.csv")
    assert proc.returncode == 1 and "lacks the model's feature column(s) ['x0']" in proc.stderr
    (tmp_path / "noheader.csv").write_text("0.1,0.2\n0.3,0.4\n")
    proc = run("predict", tmp_path / "m" / "model.bnn", tmp_path / "noheader.csv")
    assert proc.returncode == 1 and "seems to have no header row" in proc.stderr
    (tmp_path / "reordered.csv").write_text("extra,x1,x0\n9,0.3,0.1\n")
    proc = run("predict", tmp_path / "m" / "model.bnn", tmp_path / "reordered.csv")
    assert proc.returncode == 0, proc.stderr
    # metadata edited (with its checksum): refused, not read as other columns or scales
    import hashlib
    import zipfile

    with zipfile.ZipFile(tmp_path / "m" / "model.bnn") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members["metadata.json"])
    meta["cli"]["feature_columns"] = "x0"
    members["metadata.json"] = json.dumps(meta).encode()
    manifest = json.loads(members["manifest.json"])
    if "metadata.json" in manifest["members"]:
        manifest["members"]["metadata.json"] = hashlib.sha256(members["metadata.json"]).hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(tmp_path / "edited.bnn", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    proc = run("predict", tmp_path / "edited.bnn", tmp_path / "reordered.csv")
    assert proc.returncode == 1 and "the command line's metadata" in proc.stderr and "edited" in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_an_interrupted_fit_says_so_records_it_and_exits_130(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([*CLI, "fit", "models/moons.toml", "--steps", "100000000", "--no-plots", "--draws", "20",
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("Fitting"), first + proc.stderr.read()
        time.sleep(8)  # compile and run a few chunks
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "Interrupted after" in stdout and "of 100000000 steps" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["stop_reason"] == "interrupted"
    assert 0 < metrics["steps"] < 100_000_000 and (out / "model.bnn").is_file()


def test_fit_local_reparameterization_from_the_command_line(tmp_path):
    proc = run("fit", "models/moons.toml", "--steps", "50", "--local-reparameterization", "--no-plots",
               "--out", tmp_path / "bad")
    assert proc.returncode != 0 and "use ELBO(kl='closed_form'" in proc.stderr
    proc = run("fit", "models/moons.toml", "--steps", "50", "--kl", "closed_form", "--local-reparameterization",
               "--no-plots", "--out", tmp_path / "fullrank")
    assert proc.returncode != 0 and "needs a mean-field q (method='advi')" in proc.stderr
    proc = run("fit", "models/moons.toml", "--steps", "300", "--method", "advi", "--kl", "closed_form",
               "--local-reparameterization", "--no-plots", "--out", tmp_path / "m")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["elbo"]["local_reparameterization"] is True


def test_a_fit_that_fails_leaves_no_output_directory(tmp_path):
    out = tmp_path / "runs" / "moons"
    proc = run("fit", "models/moons.toml", "--steps", "10", "--ensemble", "2", "--engine", "numba", "--no-plots",
               "--out", out)
    assert proc.returncode == 1 and "ensemble=2" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()
    taken = tmp_path / "taken"
    taken.write_text("mine")
    proc = run("fit", "models/moons.toml", "--steps", "10", "--no-plots", "--out", taken)
    assert proc.returncode == 1 and f"--out {taken} is a file" in proc.stderr and taken.read_text() == "mine"


def test_csv_fits_that_cannot_go_well_say_why(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    moons = (ROOT / "models/moons.toml").read_text()
    reg = tmp_path / "reg.toml"
    reg.write_text(moons.replace('name = "moons"', 'name = "reg"').replace('kind = "bernoulli"', 'kind = "normal"'))
    # a constant regression target: R^2 is undefined, and metrics.json stays strict JSON (no NaN)
    (tmp_path / "const.csv").write_text("a,b,y\n" + "\n".join(f"{a},{b},3.0" for a, b in X) + "\n")
    proc = run("fit", reg, "--data", tmp_path / "const.csv", "--target", "y", "--steps", "300", "--no-plots",
               "--out", tmp_path / "const")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "const" / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"metrics.json holds {c}"))
    assert metrics["test"]["r2"] is None and "R^2 -" in proc.stdout
    # one class where the spec needs two; a column of 1e200s; a negative seed
    (tmp_path / "one.csv").write_text("a,b,y\n" + "\n".join(f"{a},{b},1" for a, b in X) + "\n")
    proc = run("fit", "models/moons.toml", "--data", tmp_path / "one.csv", "--target", "y", "--no-plots",
               "--out", tmp_path / "one")
    assert proc.returncode == 1 and "has 1 distinct value(s) ['1']" in proc.stderr and "Bernoulli" in proc.stderr
    (tmp_path / "huge.csv").write_text("a,b,y\n" + "\n".join(f"{a * 1e200},{b},{int(a > 0)}" for a, b in X) + "\n")
    proc = run("fit", "models/moons.toml", "--data", tmp_path / "huge.csv", "--target", "y", "--no-plots",
               "--steps", "1000", "--out", tmp_path / "huge")  # standardised without squaring 1e200
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "huge" / "metrics.json").read_text())["train"]["accuracy"] > 0.9
    proc = run("fit", "models/moons.toml", "--seed", "-1", "--no-plots", "--out", tmp_path / "neg")
    assert proc.returncode == 2 and "--seed: expected a non-negative integer, got '-1'" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["const", "const.csv", "huge", "huge.csv", "one.csv",
                                                          "reg.toml"]


def test_a_csv_without_a_header_is_refused_and_numeric_names_are_a_header(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    rows = "\n".join(f"{a},{b},{int(a > 0)}" for a, b in X) + "\n"
    (tmp_path / "bare.csv").write_text(rows)  # the first row became the column names (and was not fitted)
    proc = run("fit", "models/moons.toml", "--data", tmp_path / "bare.csv", "--target", "1", "--no-plots",
               "--out", tmp_path / "bare")
    assert proc.returncode == 1 and "seems to have no header row" in proc.stderr and not (tmp_path / "bare").exists()
    (tmp_path / "years.csv").write_text("2019,2020,label\n" + rows)
    proc = run("fit", "models/moons.toml", "--data", tmp_path / "years.csv", "--target", "label", "--steps", "50",
               "--draws", "10", "--no-plots", "--out", tmp_path / "years")
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "in.csv").write_text("2019,2020\n0.5,0.1\n-1,2\n")  # the model's own names: read, not refused
    proc = run("predict", tmp_path / "years" / "model.bnn", tmp_path / "in.csv", "--draws", "10")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 3


def test_numeric_class_labels_are_compared_as_numbers(tmp_path):
    from bnn_ppl.datasets import load_dataset

    labels = ["1", "1.0", "2.5", "1", "2.50", "1.00"] * 5  # "1" and "1.0" were two classes beside a 2.5
    (tmp_path / "labels.csv").write_text("a,y\n" + "\n".join(f"{i},{v}" for i, v in enumerate(labels)) + "\n")
    data = load_dataset(str(tmp_path / "labels.csv"), target="y", task="classification", random_seed=0)
    assert data.class_names == ["1", "2.5"]
    assert sorted(set(data.y_train) | set(data.y_test)) == [0, 1]
