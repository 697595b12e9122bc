"""fit(..., devices=N): data parallel over a JAX device mesh, the trajectory of one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bnn_ppl as bp
from bnn_ppl.errors import ParameterError

_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import bnn_ppl as bp
    import jax

    X = np.random.default_rng(0).normal(size=(120, 4))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    spec = bp.Network([bp.Dense(6), bp.Dense(1, "identity")], bp.Bernoulli())
    out = {"devices": len(jax.devices())}
    for batch in (None, 24):
        built = bp.build_model(spec, X, y, batch_size=batch)
        one = bp.fit(built, n=600, method="advi", random_seed=3, progressbar=False)
        two = bp.fit(built, n=600, method="advi", random_seed=3, progressbar=False, devices=2)
        out[str(batch)] = {"losses": float(np.max(np.abs(one.losses - two.losses) / np.abs(one.losses))),
                           "mu": float(np.max(np.abs(one.params()["mu"] - two.params()["mu"])))}
    try:
        bp.fit(bp.build_model(spec, X[:119], y[:119]), n=10, devices=2, progressbar=False)
    except bp.ParameterError as err:
        out["uneven"] = str(err)
    # a mesh with a second axis: the rows split over its first ("data") axis only, here of size 1
    mesh = jax.sharding.Mesh(np.array(jax.devices()).reshape(1, 2), ("data", "model"))
    out["two_axes"] = bp.fit(bp.build_model(spec, X[:119], y[:119], batch_size=31), n=10, devices=mesh,
                             progressbar=False).n_steps
    print(json.dumps(out))
    """
)


def test_two_host_devices_follow_the_one_device_trajectory():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2
    for batch in ("None", "24"):  # full batch and minibatch
        assert out[batch]["losses"] < 1e-9 and out[batch]["mu"] < 1e-9
    assert "The batch of 119 rows does not split evenly over 2 devices" in out["uneven"]
    assert out["two_axes"] == 10


def test_more_devices_than_jax_sees_is_refused_with_the_cpu_recipe():
    import jax

    X = np.random.default_rng(0).normal(size=(20, 2))
    built = bp.build_model(bp.Network([bp.Dense(1, "identity")], bp.Bernoulli()), X, (X[:, 0] > 0).astype(int))
    n = len(jax.devices()) + 1
    with pytest.raises(ParameterError, match=rf"devices={n} but JAX sees .*xla_force_host_platform_device_count={n}"):
        bp.fit(built, n=10, devices=n, progressbar=False)
    with pytest.raises(ParameterError, match="use engine='jax'"):
        bp.fit(built, n=10, devices=2, engine="numba", progressbar=False)
    with pytest.raises(ParameterError, match="must be a positive integer or a jax.sharding.Mesh"):
        bp.fit(built, n=10, devices="gpu", progressbar=False)
