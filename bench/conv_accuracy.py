"""The digits convnet (``models/digits_conv.toml``) against the dense digits network, several seeds.

Usage::

    .venv/bin/python -m bench.conv_accuracy [--seeds 5] [--steps 30000] [--batch 128] [--out runs/conv_accuracy.jsonl]

Both networks use the library defaults (Adam 0.01 held then cosine-decayed, init sigma 0.1,
30,000 steps) with minibatches of ``--batch`` on the same stratified 50/50 split of
scikit-learn's digits as notebook 02. Test accuracy and NLL are scored on the posterior-
predictive mean of 4000 seeded draws; ECE is the top-class calibration error (10 bins). One
JSON line per fit is appended to ``--out``; the median table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import bnn_ppl as bp
from bench.measure import classification_metrics
from bench.prior_accuracy import EVAL_DRAWS, EVAL_SEED
from bnn_ppl.plots import expected_calibration_error

SPECS = {"dense 64-32-10": "models/digits.toml", "convnet (digits_conv)": "models/digits_conv.toml"}


def run(seeds: int, steps: int, batch: int, out: Path) -> list[dict]:
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X / 16.0, y, test_size=0.5, random_state=0, stratify=y)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in range(seeds):
        for label, path in SPECS.items():  # interleaved, so load drifts hit both networks alike
            t0 = time.perf_counter()
            result = bp.fit(bp.build_model(bp.load_spec(path), X_tr, y_tr, batch_size=batch), n=steps,
                            random_seed=seed, progressbar=False)
            fit_s = time.perf_counter() - t0
            draws = result.predictor().sample(X_te, draws=EVAL_DRAWS, random_seed=EVAL_SEED)
            accuracy, nll = classification_metrics(draws, y_te)
            row = {"network": label, "seed": seed, "steps": steps, "batch": batch, "accuracy": accuracy, "nll": nll,
                   "ece": float(expected_calibration_error(y_te, draws.mean(0))), "fit_s": fit_s,
                   "final_loss": result.final_loss}
            rows.append(row)
            with out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| network | median accuracy (min-max) | median NLL | median ECE | median fit s |", "|---|---|---|---|---|"]
    for label in SPECS:
        r = [row for row in rows if row["network"] == label]
        acc = [x["accuracy"] for x in r]
        lines.append(f"| {label} | {statistics.median(acc):.4f} ({min(acc):.4f}-{max(acc):.4f}) | "
                     f"{statistics.median(x['nll'] for x in r):.4f} | {statistics.median(x['ece'] for x in r):.4f} | "
                     f"{statistics.median(x['fit_s'] for x in r):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--out", default="runs/conv_accuracy.jsonl")
    args = parser.parse_args()
    print(table(run(args.seeds, args.steps, args.batch, Path(args.out))))


if __name__ == "__main__":
    main()
