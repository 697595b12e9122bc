"""Variational families against NUTS: moons 2-5-1, the gap regression, digits (issue 11's studies).

Usage::

    .venv/bin/python -m bench.families [--studies moons,gap,digits] [--seeds 5] [--steps 30000]
                                       [--out runs/families.jsonl]

- ``moons``: ``make_moons(400, noise=0.2, random_state=0)``, scaled, 200/200
  (``train_test_split(test_size=0.5, random_state=0)``), 2-5-1 tanh, ``Normal(1)`` priors.
  Every setting in ``SETTINGS`` over ``--seeds`` seeds, and NUTS (PyMC's sampler on the same
  ``pm.Model``, 4 chains x 1000 draws after 1000 tuning steps). Test log predictive density
  (nats/row), accuracy, wall time.
- ``gap``: 40 points, x uniform on [-2, -1] U [1, 2], y = sin(3x) + N(0, 0.1^2), 1-50-1 tanh,
  ``Normal(1)`` priors, the known noise ``NormalLikelihood(sigma=0.1)``: the predictive std at
  x = 0 over the mean std at x = +-1.5 ("in-between" uncertainty), for each setting and NUTS.
- ``digits``: ``models/digits.toml`` (64-32-10), stratified 50/50 split, batch 128: accuracy,
  NLL, ECE, wall time per setting.
- ``calibration``: the same digits split with ``Normal(10)`` priors, single fits, 4-member
  ensembles and ensembles with a tempered KL (``bp.ELBO(kl_weight=...)``), against the default.

Every fit is scored by :meth:`bnn_ppl.FitResult.evaluate` (4000 draws for the classifiers);
NUTS's draws are scored by the same forward pass. One JSON line per fit is appended to
``--out``; the median tables are printed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pymc as pm
from sklearn.datasets import load_digits, make_moons
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import bnn_ppl as bp
from bnn_ppl.compile.likelihoods import OBSERVED_NAME
from bnn_ppl.predictive.quality import evaluate

#: label -> fit keyword arguments.
SETTINGS: dict[str, dict[str, Any]] = {
    "mean-field": {"method": "advi"},
    "full-rank": {"method": "fullrank_advi"},
    "low-rank r=2": {"method": bp.LowRank(rank=2)},
    "low-rank r=8": {"method": bp.LowRank(rank=8)},
    "unit-rank": {"method": "unitrank_advi"},
    "mean-field x8 ensemble": {"method": "advi", "ensemble": 8},
    "low-rank r=8 x8 ensemble": {"method": bp.LowRank(rank=8), "ensemble": 8},
}
GAP_SETTINGS = ("mean-field", "low-rank r=2", "unit-rank", "mean-field x8 ensemble")
DIGITS_SETTINGS = ("mean-field", "low-rank r=8", "unit-rank", "mean-field x8 ensemble")
EVAL_DRAWS = 4000
SKIP_GAP_NUTS = False


def moons_data():
    X, y = make_moons(n_samples=400, noise=0.2, random_state=0)
    X = StandardScaler().fit_transform(X)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=0)
    spec = bp.Network([bp.Dense(5, "tanh"), bp.Dense(1, "identity")], bp.Bernoulli(), prior=bp.Normal(1.0),
                      name="moons_2_5_1")
    return spec, X_tr, y_tr, X_te, y_te


def gap_data(seed: int = 0, known_noise: bool = True):
    """The gap regression; ``known_noise`` fixes the likelihood's sigma at the true 0.1 (else it is
    fitted under a HalfNormal(1) prior, where every variational family explains the data as noise)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(-2, -1, 20), rng.uniform(1, 2, 20)])
    y = np.sin(3 * x) + rng.normal(0, 0.1, x.size)
    likelihood = bp.NormalLikelihood(sigma=0.1) if known_noise else bp.NormalLikelihood(sigma_prior=1.0)
    spec = bp.Network([bp.Dense(50, "tanh"), bp.Dense(1, "identity")], likelihood, prior=bp.Normal(1.0),
                      name="gap_1_50_1")
    return spec, x[:, None], y


GAP_PROBE = np.array([[-1.5], [0.0], [1.5]])


def nuts_result(built, seed: int = 0, draws: int = 1000, tune: int = 1000, chains: int = 4):
    """NUTS on ``built.model`` as a FitResult-shaped object scored by the same forward pass."""
    t0 = time.perf_counter()
    idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=1, model=built.model, random_seed=seed,
                      progressbar=False, compute_convergence_checks=False)
    wall = time.perf_counter() - t0
    shell = bp.fit(built, n=1, method="lowrank_advi", progressbar=False, random_seed=0)
    thetas = _flat_draws(built, idata)
    divergences = int(np.asarray(idata["sample_stats"]["diverging"]).sum())
    return shell, thetas, wall, divergences


def _flat_draws(built, idata) -> np.ndarray:
    """Posterior draws in the flat unconstrained layout (value variables, C order)."""
    from bnn_ppl.inference.families import flat_layout

    model = built.model
    post = idata["posterior"]
    columns = []
    for name in flat_layout(model):
        value_var = next(v for v in model.value_vars if v.name == name)
        rv = model.values_to_rvs[value_var]
        arr = np.asarray(post[rv.name]).reshape(-1, *np.shape(post[rv.name])[2:])
        transform = model.rvs_to_transforms.get(rv)
        if transform is not None:
            arr = np.asarray(transform.forward(arr, *rv.owner.inputs).eval())
        columns.append(arr.reshape(arr.shape[0], -1))
    return np.concatenate(columns, axis=1)


class _FixedDraws:
    """A predictor's sampler that replays fixed flat draws (NUTS's) instead of drawing from q."""

    def __init__(self, sampler, thetas: np.ndarray) -> None:
        self._sampler, self._thetas, self._next = sampler, thetas, 0

    def __getattr__(self, name):
        return getattr(self._sampler, name)

    def draw_params(self, draws: int, rng) -> np.ndarray:
        idx = np.arange(self._next, self._next + draws) % self._thetas.shape[0]
        self._next += draws
        return self._thetas[idx].astype(self._sampler.draw_params(1, rng).dtype)


def nuts_predictor(shell, thetas):
    predictor = shell.predictor()
    predictor.sampler = _FixedDraws(predictor.sampler, thetas)
    return predictor


def _append(out: Path, row: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def run_moons(seeds: int, steps: int, out: Path) -> list[dict]:
    spec, X_tr, y_tr, X_te, y_te = moons_data()
    built = bp.build_model(spec, X_tr, y_tr)
    rows = []
    shell, thetas, wall, div = nuts_result(built)
    q = evaluate(nuts_predictor(shell, thetas), X_te, y_te, draws=thetas.shape[0])
    rows.append({"study": "moons", "setting": "NUTS", "seed": 0, **q.to_dict(), "fit_s": wall, "divergences": div})
    _append(out, rows[-1])
    return rows + _scored_fits("moons", built, SETTINGS, X_te, y_te, seeds, steps, out)


def _scored_fits(study: str, built, settings: dict, X_te, y_te, seeds: int, steps: int, out: Path) -> list[dict]:
    """Every setting for every seed, interleaved (load drifts hit every setting alike), scored on the test rows."""
    rows = []
    for seed in range(seeds):
        for label, kwargs in settings.items():
            t0 = time.perf_counter()
            result = bp.fit(built, n=steps, random_seed=seed, progressbar=False, **kwargs)
            fit_s = time.perf_counter() - t0
            q = result.evaluate(X_te, y_te, draws=EVAL_DRAWS)
            rows.append({"study": study, "setting": label, "seed": seed, **q.to_dict(), "fit_s": fit_s,
                         "final_loss": result.final_loss})
            _append(out, rows[-1])
    return rows


def _gap_ratio(predictor, draws: int) -> tuple[float, float, float]:
    mean = predictor.sample(GAP_PROBE, draws=draws, random_seed=0)
    sigma = predictor.sample_noise(draws=draws, random_seed=0)
    std = np.sqrt(mean.var(axis=0) + np.mean(sigma**2))
    return float(std[1] / (0.5 * (std[0] + std[2]))), float(std[1]), float(0.5 * (std[0] + std[2]))


def run_gap(seeds: int, steps: int, out: Path) -> list[dict]:
    spec, X, y = gap_data()
    built = bp.build_model(spec, X, y)
    rows = []
    if not SKIP_GAP_NUTS:
        shell, thetas, wall, div = nuts_result(built, chains=2)
        ratio, s0, s15 = _gap_ratio(nuts_predictor(shell, thetas), thetas.shape[0])
        rows.append({"study": "gap", "setting": "NUTS", "seed": 0, "std_ratio": ratio, "std_0": s0, "std_1.5": s15,
                     "fit_s": wall, "divergences": div})
        _append(out, rows[-1])
    for seed in range(seeds):
        for label, kwargs in {"auto (full-rank here)": {}, **{k: SETTINGS[k] for k in GAP_SETTINGS}}.items():
            t0 = time.perf_counter()
            result = bp.fit(built, n=steps, random_seed=seed, progressbar=False, **kwargs)
            fit_s = time.perf_counter() - t0
            ratio, s0, s15 = _gap_ratio(result.predictor(), 2000)
            rows.append({"study": "gap", "setting": label, "seed": seed, "std_ratio": ratio, "std_0": s0,
                         "std_1.5": s15, "fit_s": fit_s})
            _append(out, rows[-1])
    return rows


def run_digits(seeds: int, steps: int, out: Path) -> list[dict]:
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X / 16.0, y, test_size=0.5, random_state=0, stratify=y)
    built = bp.build_model(bp.load_spec("models/digits.toml"), X_tr, y_tr, batch_size=128)
    return _scored_fits("digits", built, {label: SETTINGS[label] for label in DIGITS_SETTINGS}, X_te, y_te,
                        seeds, steps, out)


#: The calibration study: label -> (prior sigma, fit keyword arguments); 1.0 is models/digits.toml's.
CALIBRATION_SETTINGS: dict[str, tuple[float, dict[str, Any]]] = {
    "default (Normal(1), mean-field)": (1.0, {"method": "advi"}),
    "Normal(10)": (10.0, {"method": "advi"}),
    "Normal(10) x4": (10.0, {"method": "advi", "ensemble": 4}),
    "Normal(10) x4, kl_weight 1/3": (10.0, {"method": "advi", "ensemble": 4, "elbo": bp.ELBO(kl_weight=1 / 3)}),
    "Normal(10) x4, kl_weight 1/5": (10.0, {"method": "advi", "ensemble": 4, "elbo": bp.ELBO(kl_weight=1 / 5)}),
    "Normal(10) x4, kl_weight 1/10": (10.0, {"method": "advi", "ensemble": 4, "elbo": bp.ELBO(kl_weight=1 / 10)}),
    "Normal(10) x4, kl_weight 1/20": (10.0, {"method": "advi", "ensemble": 4, "elbo": bp.ELBO(kl_weight=1 / 20)}),
}


def run_calibration(seeds: int, steps: int, out: Path) -> list[dict]:
    """digits 64-32-10 (batch 128): wider priors, ensembles and a tempered KL against the default."""
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X / 16.0, y, test_size=0.5, random_state=0, stratify=y)
    base = bp.load_spec("models/digits.toml")
    models = {}
    for sigma, _ in CALIBRATION_SETTINGS.values():
        if sigma not in models:
            spec = bp.Network(base.layers, base.likelihood, prior=bp.Normal(sigma), bias_prior=bp.Normal(sigma),
                              name=base.name)
            models[sigma] = bp.build_model(spec, X_tr, y_tr, batch_size=128)
    rows = []
    for seed in range(seeds):
        for label, (sigma, kwargs) in CALIBRATION_SETTINGS.items():
            t0 = time.perf_counter()
            result = bp.fit(models[sigma], n=steps, random_seed=seed, progressbar=False, **kwargs)
            fit_s = time.perf_counter() - t0
            q = result.evaluate(X_te, y_te, draws=EVAL_DRAWS)
            rows.append({"study": "calibration", "setting": label, "seed": seed, **q.to_dict(), "fit_s": fit_s})
            _append(out, rows[-1])
    return rows


def notebook_cells(built, X_te, y_te, seed: int) -> tuple[float, float, float]:
    """The seed notebook's cells on ``built.model``: ``(test accuracy, mean loss of the last 1,000 steps, fit s)``.

    ``pm.fit(30_000, method="advi")``, ``approx.sample(500)``, ``pm.set_data`` +
    ``pm.sample_posterior_predictive``; no bnn_ppl call.
    """
    t0 = time.perf_counter()
    with built.model:
        approx = pm.fit(30_000, method="advi", random_seed=seed, progressbar=False)
    fit_s = time.perf_counter() - t0
    with built.model:
        pm.set_data({"X": X_te, "y": y_te})
        trace = approx.sample(draws=500, random_seed=seed)
        ppc = pm.sample_posterior_predictive(trace, random_seed=seed, progressbar=False)
    pred = np.asarray(ppc["posterior_predictive"][OBSERVED_NAME]).mean(axis=(0, 1)) > 0.5
    return float(np.mean(pred == y_te)), float(np.mean(approx.hist[-1000:])), fit_s


def run_notebook(seeds: int, steps: int, out: Path) -> list[dict]:
    """The seed notebook's own cells on ``built.model`` (no bnn_ppl call after build_model), 5 seeds."""
    from sklearn.datasets import make_moons as moons
    from sklearn.preprocessing import scale

    X, y = moons(noise=0.2, random_state=0, n_samples=1000)
    X_tr, X_te, y_tr, y_te = train_test_split(scale(X), y, test_size=0.5, random_state=0)
    rows = []
    nets = {"moons.toml (biases)": bp.load_spec("models/moons.toml"),
            "the notebook's net (no biases)": bp.load_spec("models/moons_notebook.toml")}
    for seed, (label, spec) in ((s, item) for s in range(seeds) for item in nets.items()):
        built = bp.build_model(spec, X_tr, y_tr, random_seed=seed)
        accuracy, _, fit_s = notebook_cells(built, X_te, y_te, seed)
        rows.append({"study": "notebook", "setting": f"pm.fit(30_000) on built.model, {label}", "seed": seed,
                     "accuracy": accuracy, "lpd": None, "ece": None, "fit_s": fit_s})
        _append(out, rows[-1])
    return rows


def run_cost(seeds: int, steps: int, out: Path) -> list[dict]:
    """Steady steps/s of each family on the 784-256-10 workload (60k x 784, batch 256), interleaved,
    and of several Monte Carlo draws per step on moons 2-5-5-1 (with the -ELBO they reach)."""
    from bench.workloads import prototype_data

    X, y = prototype_data(60_000, seed=0)
    spec = bp.Network([bp.Dense(256, "tanh"), bp.Dense(10, "identity")], bp.Categorical(10), name="synthetic784")
    built = bp.build_model(spec, X, y, batch_size=256)
    wide = {"mean-field": {"method": "advi"}, "low-rank r=2": {"method": bp.LowRank(rank=2)},
            "low-rank r=8": {"method": bp.LowRank(rank=8)}, "unit-rank": {"method": "unitrank_advi"},
            "mean-field x4 ensemble": {"method": "advi", "ensemble": 4}}
    rows = []
    for repeat in range(2):  # A B C A B C: load drifts hit every setting alike
        for label, kwargs in wide.items():
            result = bp.fit(built, n=400, random_seed=repeat, progressbar=False, **kwargs)
            rows.append({"study": "cost", "workload": "784-256-10", "setting": label, "seed": repeat,
                         "steps_per_s": result.timings["steady_steps_per_s"], "fit_s": result.timings["total_s"]})
            _append(out, rows[-1])
    moons_built = bp.build_model(bp.load_spec("models/moons.toml"), *_notebook_moons()[:2])
    for repeat in range(2):
        for draws in (1, 4):
            result = bp.fit(moons_built, n=steps, method="advi", mc_draws=draws, random_seed=repeat, progressbar=False)
            tail = result.losses[-2000:]
            rows.append({"study": "cost", "workload": "moons 2-5-5-1", "setting": f"mean-field, {draws} draws/step",
                         "seed": repeat, "steps_per_s": result.timings["steady_steps_per_s"],
                         "fit_s": result.timings["total_s"], "final_loss": result.final_loss,
                         "loss_step_sd": float(np.std(np.diff(tail)) / np.sqrt(2))})
            _append(out, rows[-1])
    return rows


def _notebook_moons():
    from sklearn.preprocessing import scale

    X, y = make_moons(noise=0.2, random_state=0, n_samples=1000)
    X_tr, X_te, y_tr, y_te = train_test_split(scale(X), y, test_size=0.5, random_state=0)
    return X_tr, y_tr, X_te, y_te


def _median(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def table(rows: list[dict]) -> str:
    lines = []
    for study in ("moons", "gap", "digits", "calibration", "notebook", "cost"):
        chosen = [r for r in rows if r["study"] == study]
        if not chosen:
            continue
        if study == "cost":
            lines += ["\ncost: median over repeats", "| workload | setting | steady steps/s | fit s | final -ELBO | loss step sd |",
                      "|---|---|---|---|---|---|"]
            for key in dict.fromkeys((x["workload"], x["setting"]) for x in chosen):
                r = [x for x in chosen if (x["workload"], x["setting"]) == key]
                lines.append(f"| {key[0]} | {key[1]} | {_median(r, 'steps_per_s'):,.0f} | {_median(r, 'fit_s'):.1f} | "
                             f"{_median(r, 'final_loss'):.1f} | {_median(r, 'loss_step_sd'):.2f} |")
            continue
        settings = list(dict.fromkeys(r["setting"] for r in chosen))
        if study == "gap":
            lines += [f"\n{study}: median over seeds", "| setting | std(0) / std(+-1.5) (min-max) | std(0) | std(+-1.5) | fit s |",
                      "|---|---|---|---|---|"]
            for s in settings:
                r = [x for x in chosen if x["setting"] == s]
                ratios = [x["std_ratio"] for x in r]
                lines.append(f"| {s} | {_median(r, 'std_ratio'):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
                             f"{_median(r, 'std_0'):.3f} | {_median(r, 'std_1.5'):.3f} | {_median(r, 'fit_s'):.1f} |")
            continue
        lines += [f"\n{study}: median over seeds (NUTS: one run)", "| setting | test LPD (min-max) | accuracy (min-max) | ECE | fit s |",
                  "|---|---|---|---|---|"]
        for s in settings:
            r = [x for x in chosen if x["setting"] == s]
            lpd = [x["lpd"] for x in r if x["lpd"] is not None] or [float("nan")]
            acc = [x["accuracy"] for x in r]
            lines.append(f"| {s} | {_median(r, 'lpd'):.3f} ({min(lpd):.3f} to {max(lpd):.3f}) | "
                         f"{_median(r, 'accuracy'):.4f} ({min(acc):.3f}-{max(acc):.3f}) | {_median(r, 'ece'):.3f} | "
                         f"{_median(r, 'fit_s'):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", default="moons,gap,digits")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--out", type=Path, default=Path("runs/families.jsonl"))
    parser.add_argument("--settings", default=None,
                        help="comma-separated SETTINGS labels to run (default: every setting of each study)")
    parser.add_argument("--no-nuts", action="store_true", help="skip the NUTS reference of the gap study (~4 min)")
    args = parser.parse_args(argv)
    if args.settings:
        keep = [label.strip() for label in args.settings.split(",")]
        unknown = sorted(set(keep) - set(SETTINGS))
        if unknown:
            raise SystemExit(f"unknown settings {unknown}; choose from {list(SETTINGS)}")
        global GAP_SETTINGS, DIGITS_SETTINGS
        for label in list(SETTINGS):
            if label not in keep:
                del SETTINGS[label]
        GAP_SETTINGS = tuple(k for k in GAP_SETTINGS if k in keep)
        DIGITS_SETTINGS = tuple(k for k in DIGITS_SETTINGS if k in keep)
    global SKIP_GAP_NUTS
    SKIP_GAP_NUTS = args.no_nuts
    runners = {"moons": run_moons, "gap": run_gap, "digits": run_digits, "notebook": run_notebook, "cost": run_cost,
               "calibration": run_calibration}
    rows = []
    for study in args.studies.split(","):
        rows += runners[study](args.seeds, args.steps, args.out)
    print(table(rows))


if __name__ == "__main__":
    main()
