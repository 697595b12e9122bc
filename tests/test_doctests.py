"""Every docstring example in the package runs and prints what it shows (none is skipped).

Examples that use a fit see the names a reader of the docs has at hand: ``X_train``,
``X_test``, ``y_train``, ``y_test`` (the seed notebook's moons, 500/500), ``built`` (a 2-5-1
tanh net on them) and ``result`` (its fit), built once here for every module.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import scale

import bnn_ppl
import bnn_ppl as bp

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(bnn_ppl.__path__, prefix="bnn_ppl.")
    if not name.endswith("__main__")
)


@pytest.fixture(scope="module")
def doc_globals():
    X, y = make_moons(noise=0.2, random_state=0, n_samples=1000)
    X_train, X_test, y_train, y_test = train_test_split(scale(X), y, test_size=0.5, random_state=0)
    spec = bp.Network([bp.Dense(5), bp.Dense(1, "identity")], bp.Bernoulli(), name="moons")
    built = bp.build_model(spec, X_train, y_train)
    result = bp.fit(built, n=5_000, random_seed=0, progressbar=False)
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test, "built": built,
            "result": result}


def test_no_example_is_skipped():
    skipped = [name for name in MODULES if "doctest: +SKIP" in (importlib.util.find_spec(name).loader.get_source(name) or "")]
    assert skipped == []


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, doc_globals, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs=dict(doc_globals), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
