"""The benchmark harness (bench/): a tiny end-to-end run plus its pure helpers. No timing assertions."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from bench.measure import FitRow, PredictRow, StepClock, classification_metrics, tail_mean
from bench.report import add_fit_ratios, add_predict_speedups, to_markdown, write_results
from bench.ttfr import _cache_env
from bench.workloads import DEFAULT_WORKLOADS, make_workloads, prototype_data

FIT_KEYS = {f.name for f in dataclasses.fields(FitRow)}
PREDICT_KEYS = {f.name for f in dataclasses.fields(PredictRow)}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The whole harness on moons, scaled down: every engine, predictive routes, one TTFR run.

    NumPyro's row is left out (its first trace and compile took 16-20 s of this fixture's 39 s);
    the ratio arithmetic against it is checked on rows in
    ``test_ratios_use_the_same_workloads_baseline_and_skip_errors``.
    """
    from bench.run import run_benchmark

    (w,) = make_workloads(["moons"], quick=True)
    w = dataclasses.replace(w, steps=2_000, pm_fit_steps=200, pymc_engine_steps=100, eval_draws=50)
    results = run_benchmark([w], seed=1, numpyro=False, predict_draws=20, predict_repeats=1,
                            ttfr_targets=("bnn_ppl",), ttfr_steps=100, ttfr_fresh_cache=False, quick=True,
                            argv=["--quick"])
    out = tmp_path_factory.mktemp("bench")
    json_path, md_path = write_results(results, out)
    return results, json.loads(json_path.read_text()), md_path.read_text()


def test_json_has_every_section_and_row_key(tiny_run):
    _, data, _ = tiny_run
    assert set(data) >= {"meta", "fits", "predict", "ttfr", "predict_workload"}
    assert {"command", "versions", "floatX", "default_engine", "total_s", "date"} <= set(data["meta"])
    assert data["meta"]["quick"] is True
    assert data["fits"] and all(set(row) == FIT_KEYS for row in data["fits"])
    assert data["predict"] and all(set(row) == PREDICT_KEYS for row in data["predict"])


def test_every_registered_engine_and_both_baselines_ran(tiny_run):
    from bnn_ppl.inference.engines import ENGINES

    _, data, _ = tiny_run
    fits = data["fits"]
    assert [r["error"] for r in fits] == [None] * len(fits)
    assert {r["runner"] for r in fits} == {"pm.fit default", "bnn_ppl"}
    assert {r["engine"] for r in fits if r["runner"] == "bnn_ppl"} == set(ENGINES.names())
    for r in fits:
        assert r["steps_per_s"] > 0 and r["setup_compile_s"] >= 0 and r["fit_wall_s"] > 0
        assert math.isfinite(r["final_neg_elbo"]) and 0.0 <= r["test_accuracy"] <= 1.0 and r["test_nll"] > 0
    pymc_row = next(r for r in fits if r["engine"] == "pymc")
    assert pymc_row["n_steps"] == 100 and "reduced" in pymc_row["notes"]
    assert next(r for r in fits if r["runner"] == "pm.fit default")["n_steps"] == 200


def test_fit_ratios_are_against_this_runs_baselines(tiny_run):
    _, data, _ = tiny_run
    base = next(r for r in data["fits"] if r["runner"] == "pm.fit default")["steps_per_s"]
    for r in data["fits"]:
        assert r["ratio_vs_pm_fit"] == pytest.approx(r["steps_per_s"] / base, rel=1e-12)
        assert r["ratio_vs_numpyro"] is None  # no NumPyro row in this run


def test_predictive_routes_and_speedups(tiny_run):
    from bench.predictive import SAMPLE_NODE_ROUTE, SPP_ROUTE

    _, data, _ = tiny_run
    rows = {(r["route"], r["backend"]): r for r in data["predict"]}
    routes = {route for route, _ in rows}
    assert {SAMPLE_NODE_ROUTE, SPP_ROUTE} <= routes
    assert any("kind='batched'" in r for r in routes) and any("kind='sample_node'" in r for r in routes)
    node = next(r for r in data["predict"] if r["route"] == SAMPLE_NODE_ROUTE)
    spp = next(r for r in data["predict"] if r["route"] == SPP_ROUTE)
    assert node["error"] is None and spp["error"] is None
    for r in data["predict"]:
        assert (r["draws"], r["rows"]) == (20, 500)
        if r["error"] is None:
            assert r["speedup_vs_sample_node"] == pytest.approx(node["predict_s"] / r["predict_s"])
            assert r["speedup_vs_spp"] == pytest.approx(spp["predict_s"] / r["predict_s"])
        else:
            assert r["predict_s"] is None and r["speedup_vs_spp"] is None


def test_time_to_first_result_subprocess(tiny_run):
    _, data, _ = tiny_run
    (row,) = data["ttfr"]
    assert row.get("error") is None, row.get("error")
    assert (row["target"], row["cache"], row["steps"]) == ("bnn_ppl", "existing", 100)
    assert row["import_s"] > 0 and row["build_fit_s"] > 0 and row["predict_s"] > 0
    assert row["wall_s"] >= row["ttfr_s"] >= row["import_s"] + row["build_fit_s"] + row["predict_s"]


def test_markdown_tables(tiny_run):
    results, _, md = tiny_run
    assert md.startswith("# bnn_ppl benchmark (quick run)")
    for title in ("## Fit", "## Posterior predictive, 20 draws x 500 rows", "## Time to first result"):
        assert title in md
    fit_lines = [ln for ln in md.splitlines() if ln.startswith("| moons |")]
    assert len(fit_lines) == len(results["fits"])
    assert all(ln.count("|") == 17 for ln in fit_lines)  # 16 columns: no cell broke the table


# ------------------------------------------------------------------ pure helpers
def test_ratios_use_the_same_workloads_baseline_and_skip_errors():
    rows = [
        FitRow("a", "pm.fit default", "advi", "numba", steps_per_s=100.0),
        FitRow("a", "bnn_ppl", "jax", "cpu", steps_per_s=700.0),
        FitRow("a", "numpyro", "svi", "jax", steps_per_s=350.0),
        FitRow("b", "pm.fit default", "advi", "numba", error="boom"),
        FitRow("b", "bnn_ppl", "jax", "cpu", steps_per_s=50.0),
    ]
    add_fit_ratios(rows)
    assert rows[1].ratio_vs_pm_fit == pytest.approx(7.0) and rows[1].ratio_vs_numpyro == pytest.approx(2.0)
    assert rows[0].ratio_vs_pm_fit == pytest.approx(1.0)
    assert rows[4].ratio_vs_pm_fit is None and rows[4].ratio_vs_numpyro is None
    assert rows[3].ratio_vs_pm_fit is None


def test_predict_speedups_against_both_pymc_routes():
    from bench.predictive import SAMPLE_NODE_ROUTE, SPP_ROUTE

    rows = [PredictRow(SAMPLE_NODE_ROUTE, "numba", 500, 500, predict_s=0.04),
            PredictRow(SPP_ROUTE, "numba", 500, 500, predict_s=2.0),
            PredictRow("batched", "jax", 500, 500, predict_s=0.005)]
    add_predict_speedups(rows)
    assert rows[2].speedup_vs_sample_node == pytest.approx(8.0)
    assert rows[2].speedup_vs_spp == pytest.approx(400.0)
    assert rows[1].speedup_vs_sample_node == pytest.approx(0.02)


def test_step_clock_excludes_the_first_step(monkeypatch):
    import bench.measure

    clock = StepClock()
    assert math.isnan(clock.steps_per_s)
    times = iter([10.0, 11.0, 12.0])  # the first (compiling) chunk ends at t=10 s
    monkeypatch.setattr(bench.measure.time, "perf_counter", lambda: next(times))
    clock(None, None, 1000)
    assert math.isnan(clock.steps_per_s)
    clock(None, None, 2000)
    clock(None, None, 2500)
    assert clock.steps_per_s == pytest.approx(1500 / 2.0)


def test_classification_metrics_known_answers():
    y = np.array([0, 1, 1])
    p1 = np.array([[0.2, 0.9, 0.4], [0.4, 0.7, 0.4]])  # Bernoulli p(y=1): mean 0.3, 0.8, 0.4
    acc, nll = classification_metrics(p1, y)
    assert acc == pytest.approx(2 / 3)
    assert nll == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.4])))
    probs = np.array([[[0.1, 0.9], [0.6, 0.4], [0.5, 0.5]]])
    acc, nll = classification_metrics(probs, np.array([1, 0, 0]))
    assert acc == 1.0  # the tie in the last row goes to class 0
    assert nll == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.5])))
    assert classification_metrics(probs, y)[0] == 0.0


def test_tail_mean_ignores_non_finite_losses():
    losses = np.r_[np.full(50, 100.0), np.full(1000, 2.0), np.nan]
    assert tail_mean(losses) == pytest.approx(2.0)
    assert tail_mean(losses, tail=1050) == pytest.approx((50 * 100 + 1000 * 2) / 1050)
    assert math.isnan(tail_mean(np.array([np.nan])))


def test_prototype_data_is_seeded_float32_and_learnable():
    X, y = prototype_data(2000, 50, 4, separation=0.5, seed=3)
    X2, y2 = prototype_data(2000, 50, 4, separation=0.5, seed=3)
    assert X.dtype == np.float32 and X.shape == (2000, 50) and set(np.unique(y)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    centroids = np.stack([X[y == k].mean(0) for k in range(4)])  # nearest-centroid classifier
    pred = np.argmin(((X[:, None, :] - centroids) ** 2).sum(-1), axis=1)
    assert (pred == y).mean() > 0.9


def test_workloads_match_the_issue_and_quick_scales_down():
    full = {w.name: w for w in make_workloads(("moons", "digits"))}
    assert full["moons"].architecture == "2-5-5-1" and full["moons"].batch_size is None
    assert full["moons"].steps == 30_000 and full["moons"].X_train.shape == (500, 2)
    assert full["digits"].architecture == "64-32-10" and full["digits"].batch_size == 128
    (quick784,) = make_workloads(["synthetic784"], quick=True)
    assert quick784.architecture == "784-256-10" and quick784.batch_size == 256
    assert quick784.X_train.dtype == np.float32 and quick784.X_train.shape[0] < 60_000
    assert DEFAULT_WORKLOADS == ("moons", "digits", "synthetic784")
    with pytest.raises(ValueError, match=r"Unknown workload\(s\) \['mnist'\]; choose from \["):
        make_workloads(["mnist"])


def test_unknown_engine_is_refused_with_the_registered_names():
    from bench.run import run_benchmark

    with pytest.raises(ValueError, match=r"Unknown engine\(s\) \['warp'\]; registered: \["):
        run_benchmark([], engines=["warp"], ttfr_targets=())


def test_cold_cache_env_points_every_cache_at_the_folder(monkeypatch):
    monkeypatch.setenv("PYTENSOR_FLAGS", "floatX=float32,base_compiledir=/old")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/old/jax")
    env = _cache_env("/tmp/fresh")
    assert env["PYTENSOR_FLAGS"] == "floatX=float32,base_compiledir=/tmp/fresh/pytensor"
    assert env["NUMBA_CACHE_DIR"] == "/tmp/fresh/numba"
    assert env["JAX_COMPILATION_CACHE_DIR"] == "/tmp/fresh/jax"


def test_json_is_strict_and_markdown_escapes_cells(tmp_path):
    row = dataclasses.asdict(FitRow("a", "bnn_ppl", "jax", "cpu", error="line one\nline | two"))
    results = {"meta": {"quick": False}, "fits": [row], "predict": [], "ttfr": []}
    json_path, md_path = write_results(results, tmp_path)
    data = json.loads(json_path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert data["fits"][0]["steps_per_s"] is None
    line = next(ln for ln in md_path.read_text().splitlines() if ln.startswith("| a |"))
    assert "line one line \\| two" in line and line.count(" | ") == 15
    assert to_markdown(results).count("## Fit") == 1


def test_speed_table_reports_ratios_against_the_limit_and_pm_fit():
    from bench.speed import RUNNERS, to_markdown

    runners = {name: {"steps_per_s": 100.0 * (k + 1), "rates": [1.0, 2.0, 3.0], "final_neg_elbo": 1.0,
                      "test_nll": 0.1, "wall_s": 1.0, "dtype": "float32", "steps": 10} for k, name in enumerate(RUNNERS)}
    text = to_markdown([{"config": "c", "floatX": "float32", "workloads": {"w": {"description": "", "runners": runners}}}])
    limit = runners["limit"]["steps_per_s"]
    bnn = runners["bnn_ppl"]["steps_per_s"]
    assert f"| w | bnn_ppl | 10 | {bnn:,.0f} | 1 / 2 / 3 | {bnn / limit:.2f} | {bnn / 100:.1f} |" in text
    runners["pm.fit default"].update(steps_per_s=float("nan"), errors=["FloatingPointError: NaN"])
    text = to_markdown([{"config": "c", "floatX": "float32", "workloads": {"w": {"description": "", "runners": runners}}}])
    assert "| w | pm.fit default | 10 | – |" in text and "FloatingPointError" in text
    assert f"| w | bnn_ppl | 10 | {bnn:,.0f} | 1 / 2 / 3 | {bnn / limit:.2f} | – |" in text


def test_layout_bench_times_every_layout_on_full_and_minibatch_data():
    pytest.importorskip("jax")
    from bench.layout import LAYOUTS, step_times

    for batch, widths in ((None, [2, 3, 1]), (8, [3, 4, 3])):
        times = step_times(40, widths, batch, "float32", steps=20, rounds=1)
        assert set(times) == set(LAYOUTS) and all(math.isfinite(t) and t > 0 for t in times.values())
