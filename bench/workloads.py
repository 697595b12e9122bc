"""The benchmark workloads of issue 3: data, network spec, batch size and step counts.

Three workloads (plus an optional wide one for GPUs), each built from seeded data:

- ``moons``: the seed notebook's moons (1000 rows, scaled, 50/50 split), 2-5-5-1 tanh,
  ``Normal(1)`` priors, full batch of 500, 30,000 steps.
- ``digits``: scikit-learn's 8x8 digits scaled to [0, 1], 64-32-10, fan-in priors, batch 128.
- ``synthetic784``: 60,000 x 784 float32 rows from class prototypes plus noise (a learnable
  10-class problem), 784-256-10, batch 256.
- ``synthetic784_wide``: the same data through 784-1024-1024-10 (for GPU runs; not in the default set).

``quick=True`` scales rows and steps down for smoke runs; the architectures stay the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

import bnn_ppl as bp

__all__ = ["WORKLOADS", "DEFAULT_WORKLOADS", "Workload", "make_workloads", "prototype_data"]


@dataclass(frozen=True)
class Workload:
    """One benchmark problem.

    Attributes
    ----------
    name : str
        Short identifier used in the JSON and the tables.
    spec : bnn_ppl.Network
        The network (the plain-PyMC and NumPyro baselines build the same net from it).
    X_train, y_train, X_test, y_test : ndarray
        Seeded data; labels are integers 0..K-1.
    batch_size : int or None
        Minibatch size (None: full batch).
    steps : int
        Steps for compiled-loop engines and NumPyro.
    pm_fit_steps : int
        Steps for the ``pm.fit`` default baseline (fewer where a Python loop would take minutes).
    pymc_engine_steps : int
        Steps for bnn_ppl's ``engine="pymc"`` (the reference Python loop; reported as steps/s).
    eval_draws : int
        Posterior draws used for test accuracy and NLL.
    """

    name: str
    spec: bp.Network
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    batch_size: int | None
    steps: int
    pm_fit_steps: int
    pymc_engine_steps: int
    eval_draws: int = 500

    @property
    def architecture(self) -> str:
        """Layer widths such as ``"2-5-5-1"``."""
        layers = self.spec.resolve(self.X_train.shape[1:])
        return "-".join("x".join(map(str, shape)) for shape in [self.X_train.shape[1:], *(layer.out_shape for layer in layers)])

    @property
    def description(self) -> str:
        batch = "full batch" if self.batch_size is None else f"batch {self.batch_size}"
        return f"{self.name} {self.architecture}, {self.X_train.shape[0]} rows, {batch}"


def _moons(quick: bool) -> Workload:
    from bnn_ppl.datasets import load_dataset

    # sklearn's make_moons(noise=0.2, random_state=0), scaled, train_test_split(random_state=0),
    # made with NumPy alone (tests/test_compile.py compares the arrays with scikit-learn's)
    data = load_dataset("moons", random_seed=0)
    X_train, X_test, y_train, y_test = data.X_train, data.X_test, data.y_train, data.y_test
    spec = bp.Network(
        [bp.Dense(5, "tanh"), bp.Dense(5, "tanh"), bp.Dense(1, "identity")],
        bp.Bernoulli(),
        prior=bp.Normal(1.0),
        bias_prior=bp.Normal(1.0),
        name="moons",
    )
    steps = 2_000 if quick else 30_000
    return Workload("moons", spec, X_train, y_train, X_test, y_test, None,
                    steps=steps, pm_fit_steps=steps, pymc_engine_steps=500 if quick else 3_000)


def _digits(quick: bool) -> Workload:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.5, random_state=0, stratify=y)
    spec = bp.Network([bp.Dense(32, "tanh"), bp.Dense(10, "identity")], bp.Categorical(10), name="digits")
    steps = 2_000 if quick else 30_000  # quick: two compiled chunks, so steady steps/s excludes compilation
    return Workload("digits", spec, X_train, y_train, X_test, y_test, 128,
                    steps=steps, pm_fit_steps=steps, pymc_engine_steps=300 if quick else 3_000)


def prototype_data(
    n_rows: int, n_features: int = 784, n_classes: int = 10, *, separation: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded float32 classification data: a class prototype per class plus unit Gaussian noise.

    Prototype entries are ``N(0, separation)``; with 784 features and ``separation=0.1`` two
    prototypes lie about 4 noise standard deviations apart, so the classes overlap a little and
    test accuracy is informative.

    Examples
    --------
    >>> X, y = prototype_data(100, 20, 3, seed=1)
    >>> X.shape, X.dtype, sorted(set(y.tolist())) == [0, 1, 2]
    ((100, 20), dtype('float32'), True)
    """
    rng = np.random.default_rng(seed)
    prototypes = rng.normal(0.0, separation, size=(n_classes, n_features)).astype(np.float32)
    y = rng.integers(n_classes, size=n_rows)
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    X += prototypes[y]
    return X, y


def _synthetic(quick: bool, hidden: Sequence[int], name: str) -> Workload:
    n_train, n_test = (6_000, 1_000) if quick else (60_000, 2_000)
    X, y = prototype_data(n_train + n_test, seed=0)
    layers = [bp.Dense(h, "tanh") for h in hidden] + [bp.Dense(10, "identity")]
    spec = bp.Network(layers, bp.Categorical(10), name=name)
    slow = 10 if len(hidden) > 1 or hidden[0] > 256 else 1  # Python-loop steps cost ~10x more on the wide net
    return Workload(name, spec, X[:n_train], y[:n_train], X[n_train:], y[n_train:], 256,
                    steps=200 if quick else 5_000, pm_fit_steps=(50 if quick else 1_000) // slow,
                    pymc_engine_steps=(30 if quick else 300) // slow, eval_draws=100)


#: Workload name -> builder(quick) -> Workload.
WORKLOADS: dict[str, Callable[[bool], Workload]] = {
    "moons": _moons,
    "digits": _digits,
    "synthetic784": lambda quick: _synthetic(quick, (256,), "synthetic784"),
    "synthetic784_wide": lambda quick: _synthetic(quick, (1024, 1024), "synthetic784_wide"),
}
#: The three workloads of issue 3, run by default.
DEFAULT_WORKLOADS = ("moons", "digits", "synthetic784")


def make_workloads(names: Sequence[str] = DEFAULT_WORKLOADS, quick: bool = False) -> list[Workload]:
    """Build the named workloads (full size, or scaled down with ``quick``).

    Raises
    ------
    ValueError
        For an unknown name; the message lists every workload.
    """
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(f"Unknown workload(s) {unknown}; choose from {sorted(WORKLOADS)}.")
    return [WORKLOADS[n](quick) for n in names]
