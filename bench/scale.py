"""Beyond one fit and one machine (issue 13): many fits in one call, data larger than memory, a device mesh.

Usage::

    .venv/bin/python -m bench.scale [--studies many,stream,mesh] [--steps 30000] [--gb 4] [--dir runs/scale]

- ``many``: 16 moons fits (``models/moons.toml``, 500 rows, 4 prior widths x 4 seeds) as 16
  sequential ``bp.fit`` calls (each on ``spec.with_prior_scale(c)``, a new model per width: what a
  user writes) against one ``bp.fit_many`` call; wall time of each including set-up and
  compilation, at ``--steps`` and at 5,000 steps, the largest parameter difference between the
  members and the sequential fits, and the member-steps/s of a hand-written JAX gradient loop at
  1, 4, 16 and 64 vmapped members (why a joint loop cannot beat separate fits by much on CPU).
- ``stream``: a ``--gb`` GB float32 file (``datasets.write_large_synthetic``, 784 features, 10
  classes) memory-mapped, the 784-256-10 network with batch 256: peak resident memory over the
  process's after import (fresh subprocess) and steady steps/s, against the same fit on the first
  60,000 rows held in memory.
- ``mesh``: the 784-256-10 network, batch 256, on 1 and 2 host devices
  (``XLA_FLAGS=--xla_force_host_platform_device_count=2``, a fresh subprocess): steady steps/s and
  the largest loss difference; host devices share this machine's 2 cores.

Single-threaded BLAS/XLA (``OPENBLAS_NUM_THREADS=1``, ``--xla_cpu_multi_thread_eigen=false``),
one run; numbers go to stdout as markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
for _k, _v in ONE_THREAD.items():
    os.environ.setdefault(_k, _v)

WIDE = "bp.Network([bp.Dense(256), bp.Dense(10, 'identity')], bp.Categorical(10))"


def _moons():
    from sklearn.datasets import make_moons
    from sklearn.preprocessing import scale

    X, y = make_moons(noise=0.2, random_state=0, n_samples=1000)
    return scale(X)[:500], y[:500]


def study_many(steps: int) -> None:
    import bnn_ppl as bp

    X, y = _moons()
    spec = bp.load_spec("models/moons.toml")
    scales, seeds = [0.5, 1.0, 2.0, 4.0], range(4)
    print("| steps | 16 sequential fit calls (s) | one fit_many call (s) | speed-up | max abs(mu difference) |")
    print("|---:|---:|---:|---:|---:|")
    for n in (steps, 5000):
        t0 = time.perf_counter()
        alone = {}
        for c in scales:
            for seed in seeds:
                built = bp.build_model(spec.with_prior_scale(c), X, y)
                alone[c, seed] = bp.fit(built, n=n, method="advi", random_seed=seed, progressbar=False)
        sequential = time.perf_counter() - t0
        t0 = time.perf_counter()
        many = bp.fit_many(spec, X, y, grid={"prior_scale": scales}, seeds=seeds, n=n, method="advi", progressbar=False)
        joint = time.perf_counter() - t0
        diff = max(float(np.max(np.abs(r.params()["mu"] - alone[s["prior_scale"], s["seed"]].params()["mu"])))
                   for r, s in zip(many.results, many.settings, strict=True))
        print(f"| {n:,} | {sequential:.1f} | {joint:.1f} | {sequential / joint:.2f}x | {diff:.1e} |")
    _vmap_floor()


def _vmap_floor() -> None:
    """Member-steps/s of a hand-written JAX moons gradient step at K vmapped members."""
    import jax
    import jax.numpy as jnp

    X, y = (jnp.asarray(a) for a in _moons())

    def logp(w):
        h = jnp.tanh(X @ w[:10].reshape(2, 5))
        h = jnp.tanh(h @ w[10:35].reshape(5, 5))
        z = (h @ w[35:40].reshape(5, 1))[:, 0]
        return jnp.sum(y * z - jnp.logaddexp(0.0, z)) - 0.5 * jnp.sum(w**2)

    grad = jax.grad(logp)
    print("\n| vmapped members (hand-written JAX gradient loop, moons) | member-steps/s | us per joint step |")
    print("|---:|---:|---:|")
    for k in (1, 4, 16, 64):
        run = jax.jit(lambda w: jax.lax.scan(lambda c, _: (c + 1e-4 * jax.vmap(grad)(c), None), w, None, length=2000)[0])
        w = jnp.full((k, 40), 0.1)
        run(w).block_until_ready()
        t0 = time.perf_counter()
        run(w).block_until_ready()
        dt = time.perf_counter() - t0
        print(f"| {k} | {2000 * k / dt:,.0f} | {dt / 2000 * 1e6:.0f} |")


_STREAM_CHILD = """
import json, sys, time
import numpy as np
import bnn_ppl as bp
import bnn_ppl.inference, bnn_ppl.predictive, jax  # the libraries' own memory before the data's
mode, path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rss_mb():
    return {k: int(v.split()[0]) / 1024 for k, v in (l.split(":", 1) for l in open("/proc/self/status"))
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}
X = np.load(path + "/X.npy", mmap_mode="r"); y = np.load(path + "/y.npy", mmap_mode="r")
if mode == "memory":
    X, y = np.asarray(X[:60_000]), np.asarray(y[:60_000])
spec = %s
start = rss_mb()
t0 = time.perf_counter()
built = bp.build_model(spec, X, y, batch_size=256)
build_s = time.perf_counter() - t0
result = bp.fit(built, n=steps, method="advi", random_seed=0, progressbar=False)
end = rss_mb()
print(json.dumps({"mode": mode, "rows": int(built.n_obs), "build_s": build_s, "start": start, "end": end,
                  "steps_per_s": result.timings["steady_steps_per_s"], "neg_elbo": result.final_loss}))
""" % WIDE


def study_stream(gb: float, steps: int, directory: Path) -> None:
    from bnn_ppl.datasets import write_large_synthetic

    rows = int(gb * 2**30 // (784 * 4))
    directory.mkdir(parents=True, exist_ok=True)
    have = directory / "X.npy"
    if not have.exists() or np.load(have, mmap_mode="r").shape != (rows, 784):
        t0 = time.perf_counter()
        write_large_synthetic(directory, rows=rows, features=784, classes=10, random_seed=0)
        print(f"wrote {rows:,} x 784 float32 rows ({have.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.0f} s")
    out = []
    for mode in ("memory", "stream", "memory", "stream"):  # interleaved, twice
        proc = subprocess.run([sys.executable, "-c", _STREAM_CHILD, mode, str(directory), str(steps)],
                              capture_output=True, text=True, check=True)
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print("\n| data | rows | build (s) | steady steps/s | RSS after imports (MB) | peak RSS (MB) | peak - start (MB) | RssFile at end (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in out:
        print(f"| {r['mode']} | {r['rows']:,} | {r['build_s']:.1f} | {r['steps_per_s']:.1f} | {r['start']['VmRSS']:.0f} | "
              f"{r['end']['VmHWM']:.0f} | {r['end']['VmHWM'] - r['start']['VmRSS']:.0f} | {r['end']['RssFile']:.0f} |")
    rate = {m: np.median([r["steps_per_s"] for r in out if r["mode"] == m]) for m in ("memory", "stream")}
    print(f"\nstreamed / in-memory steady steps/s (medians): {rate['stream'] / rate['memory']:.2f}")


_MESH_CHILD = """
import json, sys
import numpy as np
import bnn_ppl as bp
steps = int(sys.argv[1])
rng = np.random.default_rng(0)
X = rng.normal(size=(20_000, 784)); y = rng.integers(0, 10, size=20_000)
built = bp.build_model(%s, X, y, batch_size=256)
rows = {}
for devices in (1, 2, 1, 2):
    r = bp.fit(built, n=steps, method="advi", random_seed=0, progressbar=False, devices=devices)
    rows.setdefault(devices, []).append((r.timings["steady_steps_per_s"], r.losses.tolist()))
diff = max(abs(a - b) for a, b in zip(rows[1][0][1], rows[2][0][1]))
print(json.dumps({"rates": {k: [v[0] for v in vals] for k, vals in rows.items()}, "max_loss_diff": diff,
                  "rel": diff / abs(rows[1][0][1][-1])}))
""" % WIDE


def study_mesh(steps: int) -> None:
    env = {**os.environ, "XLA_FLAGS": os.environ["XLA_FLAGS"] + " --xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, "-c", _MESH_CHILD, str(steps)], capture_output=True, text=True, env=env,
                          check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print("\n| devices (host, 784-256-10, batch 256) | steady steps/s (two runs) |")
    print("|---:|---|")
    for k, rates in r["rates"].items():
        print(f"| {k} | {', '.join(f'{v:.1f}' for v in rates)} |")
    print(f"\nlargest loss difference between 1 and 2 devices over {steps} steps: {r['max_loss_diff']:.2e} "
          f"(relative {r['rel']:.1e})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", default="many,stream,mesh")
    parser.add_argument("--steps", type=int, default=30_000, help="moons steps per fit (study 'many')")
    parser.add_argument("--gb", type=float, default=4.0)
    parser.add_argument("--wide-steps", type=int, default=600, help="784-256-10 steps (studies 'stream', 'mesh')")
    parser.add_argument("--dir", type=Path, default=Path("runs/scale"))
    args = parser.parse_args(argv)
    studies = args.studies.split(",")
    if "many" in studies:
        study_many(args.steps)
    if "stream" in studies:
        study_stream(args.gb, args.wide_steps, args.dir)
    if "mesh" in studies:
        study_mesh(args.wide_steps)


if __name__ == "__main__":
    main()
