"""``python -m bench.ensemble_cost``: ``fit(..., ensemble=K)`` against one fit (issue 11's moons case).

Moons 2-5-1 (``bench.families.moons_data``: 200 training rows, ``Normal(1)``), mean-field, the
library's defaults (float64, threads as they come). Every row runs in a fresh process (so the
first call pays compilation as a user's first call does) and times two calls there: the
first, and a repeat with the compiled loop reused. Rows interleave over ``--repeats`` rounds.

Usage::

    .venv/bin/python -m bench.ensemble_cost [--members 1,8] [--repeats 2] [--steps 30000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _child(members: int, steps: int) -> dict:
    import bnn_ppl as bp
    from bench.families import moons_data

    spec, X, y, _, _ = moons_data()
    built = bp.build_model(spec, X, y, random_seed=0)
    out: dict = {"members": members}
    for label in ("first", "repeat"):
        t0 = time.perf_counter()
        result = bp.fit(built, steps, method="advi", random_seed=0, progressbar=False,
                        **({"ensemble": members} if members > 1 else {}))
        out[f"{label}_s"] = round(time.perf_counter() - t0, 3)
        out[f"{label}_steps_per_s"] = round(result.timings["steady_steps_per_s"])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="1,8")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_child(args.child, args.steps)))
        return
    rows: dict[int, list[dict]] = {}
    for _ in range(args.repeats):
        for k in (int(m) for m in args.members.split(",")):
            proc = subprocess.run([sys.executable, "-m", "bench.ensemble_cost", "--child", str(k), "--steps",
                                   str(args.steps)], capture_output=True, text=True, check=True)
            rows.setdefault(k, []).append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print("| members | first call in a fresh process (s) | repeat call (s) | steady joint steps/s |")
    print("|---:|---|---|---|")
    for k, runs in rows.items():
        cells = [" / ".join(f"{r[key]:,}" for r in runs) for key in ("first_s", "repeat_s", "repeat_steps_per_s")]
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
