"""Shared fixtures: small data sets and fitted models, built once per session (compiles cost seconds)."""

from __future__ import annotations

import os

# XLA's CPU backend optimises at its default LLVM level. The suite compiles a few hundred small
# JAX programs (every fit of a new shape), and on a machine whose caches are empty level 1 compiles
# them ~25% faster (test_many + test_features_first + test_streamed with no caches: 40-44 s -> 32 s)
# with the same steady step rate (moons and digits, 20k steps: within run-to-run noise). Set before
# JAX starts, so xdist workers, notebook kernels and subprocess tests inherit it; a level already
# in XLA_FLAGS is kept.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=1".strip()

import matplotlib
import numpy as np
import pytest
from sklearn.datasets import load_digits, make_moons
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import scale

import bnn_ppl as bp

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def moons():
    """The seed notebook's data: make_moons(1000, noise 0.2), scaled, 50/50 split."""
    X, y = make_moons(noise=0.2, random_state=0, n_samples=1000)
    X = scale(X)
    return train_test_split(X, y, test_size=0.5, random_state=0)


@pytest.fixture(scope="session")
def moons_spec():
    return bp.load_spec("models/moons.toml")


@pytest.fixture(scope="session")
def moons_fit(moons, moons_spec):
    """The moons spec fitted with the library defaults (full 30k steps, seed 0)."""
    X_train, _, y_train, _ = moons
    built = bp.build_model(moons_spec, X_train, y_train)
    return bp.fit(built, random_seed=0, progressbar=False)


@pytest.fixture(scope="session")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)


@pytest.fixture(scope="session")
def tiny_classification():
    """A 3-class problem small enough for quick fits."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    y = np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])
    return X, y
