"""``python -m bench.start``: what a short fit of a wide tanh net owes to its starting point.

784-256-10 on the 60k synthetic set (``bench.workloads``' ``synthetic784``, ``Normal(1)``
priors, batch 256), mean-field, ``--steps`` steps, seed 0. The rows change only the spread
of the random initial means of the weights, which ``bp.fit`` reads from
``BuiltModel.init_scales`` (the model's default: the prior's, ``min(sigma, 1)``), and the
step-size schedule (``lr_floor=1``: constant). Reports the mean -ELBO of the last 100 steps and
the test accuracy and NLL (200 predictive draws).

Usage::

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
      .venv/bin/python -m bench.start [--steps 1000]
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


def main(argv: list[str] | None = None) -> None:
    import bnn_ppl as bp
    from bench.measure import classification_metrics
    from bench.workloads import make_workloads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
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
        result = bp.fit(built, args.steps, method="advi", lr_floor=floor, random_seed=0, progressbar=False)
        draws = result.predictor().sample(w.X_test, draws=200, random_seed=0)
        accuracy, nll = classification_metrics(draws, w.y_test)
        print(f"| {label} | {np.mean(result.losses[-100:]):,.0f} | {accuracy:.3f} | {nll:.3f} |", flush=True)
    built.init_scales.clear()
    built.init_scales.update(default)


if __name__ == "__main__":
    main()
