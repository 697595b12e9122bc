"""Five-seed accuracy tables for the issue's two reference setups, with the library defaults.

- moons: ``make_moons(n_samples=1000, noise=0.2)``, scaled, 50/50 split, ``models/moons.toml``
  (2-5-5-1 tanh, Normal(0, 1) weights, Bernoulli), 30,000 steps, full batch.
- digits: sklearn digits / 16, 50/50 stratified split, ``models/digits.toml`` (64-32-10,
  FanInNormal, Categorical), minibatches of 128, 30,000 steps.

Every other argument of :func:`bnn_ppl.fit` is its default (engine "auto", Adam 0.01,
initial sigma 0.1, random initial means). Accuracy is that of ``predictor().predict`` with
500 posterior draws on the held-out half. Prints one markdown table per data set.

Run: ``.venv/bin/python -m bench.accuracy_table [--seeds 0 1 2 3 4] [--steps 30000] [--only moons]``
(``--learning-rate`` overrides the default, for evidence about defaults).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, make_moons
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import scale

import bnn_ppl as bp

ROOT = Path(__file__).resolve().parents[1]
__all__ = ["Setup", "SETUPS", "Row", "run_setup", "markdown", "main"]


@dataclass(frozen=True)
class Setup:
    """One reference problem: data split, spec file, minibatch size and the accuracy bar."""

    name: str
    spec_path: str
    batch_size: int | None
    threshold: float

    def data(self) -> list[np.ndarray]:
        """X_train, X_test, y_train, y_test (fixed split, independent of the fit seed)."""
        if self.name == "moons":
            X, y = make_moons(noise=0.2, random_state=0, n_samples=1000)
            return train_test_split(scale(X), y, test_size=0.5, random_state=0)
        X, y = load_digits(return_X_y=True)
        return train_test_split(X / 16.0, y, test_size=0.5, random_state=0, stratify=y)


SETUPS = {
    "moons": Setup("moons", "models/moons.toml", None, 0.954),
    "digits": Setup("digits", "models/digits.toml", 128, 0.965),
}


@dataclass(frozen=True)
class Row:
    """One fit: its seed, held-out accuracy, final loss (nats) and wall times (s)."""

    seed: int
    accuracy: float
    final_loss: float
    fit_s: float
    total_s: float
    engine: str


def run_setup(setup: Setup, seeds: Sequence[int], steps: int, **fit_kwargs: float) -> list[Row]:
    """Fit ``setup`` once per seed (library defaults unless ``fit_kwargs``) and score each fit."""
    X_train, X_test, y_train, y_test = setup.data()
    spec = bp.load_spec(ROOT / setup.spec_path)
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        built = bp.build_model(spec, X_train, y_train, batch_size=setup.batch_size)
        result = bp.fit(built, n=steps, random_seed=seed, progressbar=False, **fit_kwargs)
        predicted = result.predictor().predict(X_test, draws=500, random_seed=seed)
        rows.append(
            Row(
                seed=seed,
                accuracy=float(np.mean(predicted == y_test)),
                final_loss=result.final_loss,
                fit_s=result.timings["fit_s"],
                total_s=time.perf_counter() - t0,
                engine=f"{result.engine}/{result.backend}",
            )
        )
        print(f"  {setup.name} seed {seed}: {rows[-1].accuracy:.4f}", flush=True)
    return rows


def markdown(setup: Setup, rows: Sequence[Row], steps: int) -> str:
    """A markdown table of ``rows`` plus a min / median / max line and the pass verdict."""
    batch = "full batch" if setup.batch_size is None else f"minibatch {setup.batch_size}"
    lines = [
        f"**{setup.name}** ({setup.spec_path}, {batch}, {steps} steps, engine {rows[0].engine})",
        "",
        "| seed | test accuracy | final loss (nats) | fit time (s) | total time (s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r.seed} | {r.accuracy:.4f} | {r.final_loss:.1f} | {r.fit_s:.1f} | {r.total_s:.1f} |" for r in rows]
    acc = np.array([r.accuracy for r in rows])
    verdict = "PASS" if acc.min() >= setup.threshold else "FAIL"
    lines += [
        "",
        f"min / median / max accuracy: {acc.min():.4f} / {np.median(acc):.4f} / {acc.max():.4f}; "
        f"bar >= {setup.threshold} on every seed: {verdict}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tables; the exit status is 1 when a setup misses its bar on some seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--only", choices=sorted(SETUPS), nargs="+", default=sorted(SETUPS, reverse=True))
    parser.add_argument("--learning-rate", type=float, default=None, help="override the library default")
    args = parser.parse_args(argv)
    failed = False
    tables = []
    for name in args.only:
        setup = SETUPS[name]
        extra = {} if args.learning_rate is None else {"learning_rate": args.learning_rate}
        rows = run_setup(setup, args.seeds, args.steps, **extra)
        tables.append(markdown(setup, rows, args.steps) + (f"\n\n(learning_rate={args.learning_rate})" if extra else ""))
        failed |= min(r.accuracy for r in rows) < setup.threshold
    print("\n\n".join(tables))
    return int(failed)


if __name__ == "__main__":
    raise SystemExit(main())
