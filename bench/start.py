"""``python -m bench.start``: what a fit owes to its starting point.

``--study wide`` (default): 784-256-10 on the 60k synthetic set (``bench.workloads``' ``synthetic784``, ``Normal(1)``
priors, batch 256), mean-field, ``--steps`` steps, seed 0. The rows change only the spread
of the random initial means of the weights, which ``bp.fit`` reads from
``BuiltModel.init_scales`` (the model's default: the prior's, ``min(sigma, 1)``), and the
step-size schedule (``lr_floor=1``: constant). Reports the mean -ELBO of the last 100 steps and
the test accuracy and NLL (200 predictive draws).

``--study notebook``: the seed notebook's cells on ``built.model`` (``pm.fit(30_000,
method="advi")``, ``approx.sample``, ``pm.set_data`` + ``pm.sample_posterior_predictive``; no
bnn_ppl call after ``build_model(random_seed=seed)``) for the notebook's moons net
(``models/moons_notebook.toml``), seeds ``0..--seeds-1``: the model's own ``initval`` (a scaled
random orthogonal matrix per weight, :mod:`bnn_ppl.compile.start`) against i.i.d.
``N(0, s)`` values of the same spread (the notebook's own ``testval``). Prints one row per seed
and start: test accuracy and the mean loss of the last 1,000 steps.

Usage::

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
      .venv/bin/python -m bench.start [--steps 1000]
    .venv/bin/python -m bench.start --study notebook --seeds 16
"""

from __future__ import annotations

import argparse

import numpy as np

#: label -> (first-layer spread, output-layer spread, lr_floor); None keeps the model's own.
ROWS = {
    "the model's start (prior width)": (None, None, 0.01),
    "the model's start, constant step size": (None, None, 1.0),
    "N(0, 0.5) (the hand-written limit's)": (0.5, 0.5, 0.01),
    "2/sqrt(fan_in) in the tanh layer only": (2 / 28, None, 0.01),
    "2/sqrt(fan_in) in both layers": (2 / 28, 2 / 16, 0.01),
    "1/sqrt(fan_in) in both layers": (1 / 28, 1 / 16, 0.01),
}


def notebook(seeds: int) -> None:
    """The notebook study (see the module docstring)."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import scale

    import bnn_ppl as bp
    from bench.families import notebook_cells

    X, y = make_moons(noise=0.2, random_state=0, n_samples=1000)
    X_tr, X_te, y_tr, y_te = train_test_split(scale(X), y, test_size=0.5, random_state=0)
    spec = bp.load_spec("models/moons_notebook.toml")
    print("| seed | start | test accuracy | loss (last 1,000 steps) |")
    print("|---:|---|---:|---:|")
    for seed in range(seeds):
        for start in ("orthogonal (the model's initval)", "i.i.d. normal, same spread"):
            built = bp.build_model(spec, X_tr, y_tr, random_seed=seed)
            if start.startswith("i.i.d."):
                rng = np.random.default_rng(seed)
                point = built.model.initial_point()
                for name, spread in built.init_scales.items():
                    rv = built.model[name]
                    shape = point[built.model.rvs_to_values[rv].name].shape
                    built.model.set_initval(rv, rng.normal(0.0, spread, size=shape).astype(rv.dtype))
            accuracy, loss, _ = notebook_cells(built, X_te, y_te, seed)
            print(f"| {seed} | {start} | {accuracy:.3f} | {loss:.1f} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=("wide", "notebook"), default="wide")
    parser.add_argument("--steps", type=int, default=1000, help="fit steps of the wide study")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the notebook study")
    args = parser.parse_args(argv)
    if args.study == "notebook":
        notebook(args.seeds)
    else:
        wide(args.steps)


def wide(steps: int) -> None:
    """The 784-256-10 study (see the module docstring)."""
    import bnn_ppl as bp
    from bench.measure import classification_metrics
    from bench.workloads import make_workloads

    (w,) = make_workloads(["synthetic784"], quick=False)
    built = bp.build_model(w.spec, w.X_train, w.y_train, batch_size=w.batch_size)
    default = dict(built.init_scales)
    print("| initial spread of the weights' means | -ELBO (last 100) | test accuracy | test NLL |")
    print("|---|---:|---:|---:|")
    for label, (first, out, floor) in ROWS.items():
        built.init_scales.clear()
        built.init_scales.update(default)
        for name, spread in zip(sorted(default), (first, out)):  # dense_0_w, dense_1_w
            if spread is not None:
                built.init_scales[name] = spread
        result = bp.fit(built, steps, method="advi", lr_floor=floor, random_seed=0, progressbar=False)
        draws = result.predictor().sample(w.X_test, draws=200, random_seed=0)
        accuracy, nll = classification_metrics(draws, w.y_test)
        print(f"| {label} | {np.mean(result.losses[-100:]):,.0f} | {accuracy:.3f} | {nll:.3f} |", flush=True)
    built.init_scales.clear()
    built.init_scales.update(default)


if __name__ == "__main__":
    main()
