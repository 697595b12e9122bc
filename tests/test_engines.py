"""The compiled-loop engines against PyMC's own loop, and the loop's contract (chunks, Ctrl-C, cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bnn_ppl as bp
from bnn_ppl.inference.engines import ENGINES
from bnn_ppl.inference.engines import jax_engine
from bnn_ppl.inference.engines.ahead import ChunkAhead

FAST_ENGINES = [name for name in ("jax", "numba") if name in ENGINES]


@pytest.fixture(scope="module")
def logistic_data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))
    logits = 1.5 * X[:, 0] - 1.0 * X[:, 1] + 0.3
    y = (rng.random(200) < 1 / (1 + np.exp(-logits))).astype(int)
    return X, y


def _logistic_spec():
    return bp.Network([bp.Dense(1, "identity")], bp.Bernoulli(), prior=bp.Normal(2.0), bias_prior=bp.Normal(2.0))


def _logistic_fit(X, y, engine, seed, n=3000, batch_size=None):
    built = bp.build_model(_logistic_spec(), X, y, batch_size=batch_size)
    result = bp.fit(built, n, engine=engine, method="advi", random_seed=seed, progressbar=False)
    params = result.params()
    return result, params["mu"], np.logaddexp(0, params["rho"])


@pytest.fixture(scope="module")
def reference_posterior(logistic_data):
    """PyMC's own loop (same estimator, Adam 0.01), averaged over the last steps of two seeds."""
    X, y = logistic_data
    fits = [_logistic_fit(X, y, "pymc", seed) for seed in (0, 1)]
    return np.mean([f[1] for f in fits], axis=0), np.mean([f[2] for f in fits], axis=0), fits[0][0].final_loss


@pytest.mark.parametrize("engine", FAST_ENGINES)
def test_engine_matches_pymc_loop_in_distribution(logistic_data, reference_posterior, engine):
    # Logistic regression has one mean-field optimum: every engine must find PyMC's.
    X, y = logistic_data
    ref_mu, ref_sigma, ref_loss = reference_posterior
    result, mu, sigma = _logistic_fit(X, y, engine, seed=2)
    np.testing.assert_allclose(mu, ref_mu, atol=0.12)
    np.testing.assert_allclose(sigma, ref_sigma, rtol=0.25)
    assert result.final_loss == pytest.approx(ref_loss, abs=1.5)
    assert result.engine == engine and result.n_steps == 3000


@pytest.mark.parametrize("engine", FAST_ENGINES)
def test_minibatch_inside_the_loop_matches_full_batch(logistic_data, reference_posterior, engine):
    X, y = logistic_data
    ref_mu, ref_sigma, _ = reference_posterior
    _, mu, sigma = _logistic_fit(X, y, engine, seed=3, n=6000, batch_size=40)
    np.testing.assert_allclose(mu, ref_mu, atol=0.2)
    np.testing.assert_allclose(sigma, ref_sigma, rtol=0.35)


@pytest.mark.parametrize("engine", FAST_ENGINES)
def test_last_partial_chunk_runs_exactly_n_steps(logistic_data, engine):
    X, y = logistic_data
    result, _, _ = _logistic_fit(X, y, engine, seed=0, n=1234)
    assert result.losses.shape == (1234,) and np.all(np.isfinite(result.losses))


@pytest.mark.parametrize("engine", FAST_ENGINES)
def test_keyboard_interrupt_keeps_the_last_good_parameters(logistic_data, engine):
    X, y = logistic_data
    built = bp.build_model(_logistic_spec(), X, y)  # the same graph as the other tests: one compile
    seen = {}

    def interrupt(approx, losses, i):
        if i >= 2000:
            seen["mu"] = approx.groups[0].params_dict["mu"].get_value().copy()
            raise KeyboardInterrupt

    result = bp.fit(built, 10_000, engine=engine, method="advi", random_seed=0, progressbar=False, callbacks=[interrupt])
    assert result.interrupted and result.n_steps == 2000
    np.testing.assert_array_equal(result.params()["mu"], seen["mu"])


@pytest.mark.parametrize("engine", FAST_ENGINES)
def test_data_are_inputs_not_constants_and_refits_reuse_the_compiled_loop(logistic_data, engine):
    from bnn_ppl.inference.engines import pytensor_engine

    compiled = {"jax": jax_engine, "numba": pytensor_engine}[engine]._COMPILED
    X, y = logistic_data
    _logistic_fit(X, y, engine, seed=0, n=1000)
    cached = dict(compiled)
    _, mu_flipped, _ = _logistic_fit(X, 1 - y, engine, seed=0, n=3000)
    assert compiled == cached, "a refit of the same structure must reuse the compiled loop"
    _, mu, _ = _logistic_fit(X, y, engine, seed=0, n=3000)
    # Flipping every label flips the sign of the logistic weights: the new data were used.
    np.testing.assert_allclose(mu_flipped, -mu, atol=0.15)
    # the learning rate is an input too: a cached loop at another rate is a fresh compile's
    built = bp.build_model(_logistic_spec(), X, y)
    fit = lambda: bp.fit(built, 500, engine=engine, method="advi", random_seed=3, learning_rate=0.05,  # noqa: E731
                         progressbar=False).params()["mu"]
    from_cache = fit()
    assert compiled == cached
    compiled.clear()
    np.testing.assert_array_equal(from_cache, fit())


def test_a_model_a_user_extended_is_never_fitted_with_a_stale_compiled_loop(logistic_data):
    # the compiled-loop cache keys on the spec; a Potential or pm.Data a user adds is not the spec's
    import pymc as pm

    X, y = logistic_data

    def fit(built):
        return bp.fit(built, 1000, method="advi", random_seed=0, progressbar=False).params()["mu"]

    def pull(built, target):  # a Potential pulling every weight to `target`
        return -1000.0 * sum(pm.math.sum((rv - target) ** 2) for rv in built.model.free_RVs)

    built = bp.build_model(_logistic_spec(), X, y)
    assert not built.extended and np.all(np.abs(fit(built) - 3.0) > 1.0)
    with built.model:
        pm.Potential("pull", pull(built, 3.0))
    assert built.extended
    np.testing.assert_allclose(fit(built), 3.0, atol=0.3)  # added after a fit: in the next one
    other = bp.build_model(_logistic_spec(), X, y)
    with other.model:
        pm.Potential("pull", pull(other, -3.0))  # same name, another model: its own loop
    np.testing.assert_allclose(fit(other), -3.0, atol=0.3)
    with other.model:
        target = pm.Data("target", 2.0)
        pm.Potential("pull_data", pull(other, target))
    np.testing.assert_allclose(fit(other), -0.5, atol=0.3)  # halfway between -3 and 2
    pm.set_data({"target": -1.0}, model=other.model)  # a user's own pm.Data: its new value is used
    np.testing.assert_allclose(fit(other), -2.0, atol=0.3)


def test_float32_end_to_end_in_a_fresh_process(tmp_path):
    """float32 throughout; and PyTensor's JAX dispatch imported without NumPyro (0.3 s of a first
    fit), whose von Mises sampler under JAX still works afterwards (it imports NumPyro when it runs)."""
    script = textwrap.dedent(
        """
        import importlib.util, json, sys
        import numpy as np
        import bnn_ppl as bp
        from bnn_ppl.datasets import load_dataset
        d = load_dataset("moons")
        built = bp.build_model(bp.load_spec("models/moons.toml"), d.X_train, d.y_train, batch_size=100)
        result = bp.fit(built, 4000, method="advi", random_seed=0, progressbar=False)
        proba = result.predictor().predict_proba(d.X_test, draws=200, random_seed=0)
        print(json.dumps({"mu": str(result.params()["mu"].dtype), "X": str(built.X_data.get_value().dtype),
                          "draws": str(result.predictor().sample(d.X_test, 5).dtype),
                          "acc": float(np.mean(proba.argmax(1) == d.y_test)),
                          "numpyro_imported": "numpyro" in sys.modules}))
        from pytensor.link.jax.dispatch import random
        print(json.dumps({"noted": random.numpyro_available, "installed": importlib.util.find_spec("numpyro") is not None}))
        if random.numpyro_available:
            import pytensor, pytensor.tensor as pt
            draw = pytensor.function([], pt.random.vonmises(0.0, 1.0, size=(3,)), mode="JAX")
            print(json.dumps({"vonmises": np.asarray(draw()).tolist(), "numpyro_imported": "numpyro" in sys.modules}))
        """
    )
    env = dict(os.environ, PYTENSOR_FLAGS="floatX=float32")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.strip().splitlines() if line.startswith("{")]
    report, dispatch = lines[0], lines[1]
    assert report["mu"] == report["X"] == report["draws"] == "float32"
    assert report["acc"] > 0.9
    assert report["numpyro_imported"] is False
    assert dispatch["noted"] is dispatch["installed"]
    if dispatch["installed"]:
        assert len(lines[2]["vonmises"]) == 3 and all(abs(a) <= np.pi for a in lines[2]["vonmises"])
        assert lines[2]["numpyro_imported"] is True


def test_auto_engine_is_jax_when_installed_and_numba_without_it(monkeypatch):
    import importlib.util

    from bnn_ppl.inference.engines import resolve_engine

    assert resolve_engine("auto") == "jax"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    assert resolve_engine("auto") == "numba"
    with pytest.raises(bp.ParameterError, match=r"The 'engine' parameter must be one of \['auto', 'jax', 'numba', 'pymc'\]. Got 'tpu'"):
        resolve_engine("tpu")


def test_step_size_holds_for_half_the_steps_then_decays_to_the_floor():
    import jax.numpy as jnp
    import pytensor.tensor as pt

    from bnn_ppl.inference.engines.base import HOLD_FRACTION, step_size_factor

    n, floor = 1000, 0.01
    t = np.arange(n + 1, dtype=float)
    numpy_factor = step_size_factor(t, n, floor)
    hold = int(HOLD_FRACTION * n)
    np.testing.assert_allclose(numpy_factor[: hold + 1], 1.0)
    assert np.all(np.diff(numpy_factor[hold:]) < 0)  # strictly decreasing after the hold
    assert numpy_factor[-1] == pytest.approx(floor)
    assert numpy_factor[(hold + n) // 2] == pytest.approx((1 + floor) / 2)
    # The engines trace the same function with their own array modules.
    np.testing.assert_allclose(np.asarray(step_size_factor(jnp.asarray(t), n, floor, jnp)), numpy_factor, rtol=1e-6)
    t_sym = pt.dvector("t")
    pt_factor = step_size_factor(t_sym, n, floor, pt).eval({t_sym: t}, mode="FAST_COMPILE")
    np.testing.assert_allclose(pt_factor, numpy_factor, rtol=1e-12)
    assert step_size_factor(t, n, 1.0) == pytest.approx(np.ones_like(t))  # lr_floor=1: constant


def test_the_jax_bridge_leaves_xla_flags_as_they_were():
    """Importing pymc.sampling.jax prepends a 100-device flag to XLA_FLAGS (1.4x slower 784-256-10 steps)."""
    import subprocess
    import sys

    code = ("import os; os.environ['XLA_FLAGS'] = '--xla_cpu_enable_fast_math=false'\n"
            "from bnn_ppl.array_ops import pymc_jax_bridge; bridge = pymc_jax_bridge()\n"
            "import jax; print(os.environ['XLA_FLAGS'], len(jax.devices('cpu')), callable(bridge.get_jaxified_graph))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["--xla_cpu_enable_fast_math=false", "1", "True"]


WIDE_SPEC = bp.Network([bp.Dense(96, "tanh"), bp.Dense(1, "identity")], bp.Bernoulli())


@pytest.fixture(scope="module")
def wide_data():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 10))
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)


@pytest.fixture(scope="module")
def wide_built(wide_data):
    """A net drawing >= PREFETCH_MIN_DRAWS normals a step (1,153 weights), minibatched: the JAX
    engine draws a chunk's noise and rows on a second thread during the previous chunk."""
    return bp.build_model(WIDE_SPEC, *wide_data, batch_size=32)


def _count_draws_ahead(monkeypatch, prefetch):
    """Sets ``PREFETCH``; the list it returns fills with the chunks whose inputs were drawn ahead."""
    monkeypatch.setattr(jax_engine, "PREFETCH", prefetch)
    drawn = []
    monkeypatch.setattr(ChunkAhead, "get", lambda self, i, _get=ChunkAhead.get: drawn.append(i) or _get(self, i))
    return drawn


def _wide_fit(built, prefetch, monkeypatch, n=250, **options):
    drawn = _count_draws_ahead(monkeypatch, prefetch)
    # chunks of 100 steps (callbacks every 100): three chunks, the last one shorter
    result = bp.fit(built, n, method="advi", random_seed=3, progressbar=False, callback_every=100,
                    callbacks=[options.pop("callback", lambda approx, losses, i: None)], **options)
    return result, drawn


@pytest.mark.parametrize("ensemble", [1, 2])
def test_noise_drawn_ahead_on_a_second_thread_is_the_fused_calls_noise(wide_built, monkeypatch, ensemble):
    ahead, drawn = _wide_fit(wide_built, True, monkeypatch, ensemble=ensemble)
    fused, not_drawn = _wide_fit(wide_built, False, monkeypatch, ensemble=ensemble)
    assert drawn == [0, 1, 2] and not_drawn == []
    np.testing.assert_array_equal(ahead.losses, fused.losses)
    for name, value in fused.params().items():
        np.testing.assert_array_equal(ahead.params()[name], value)


@pytest.mark.parametrize(("signal", "reason"), [(StopIteration, "callback"), (KeyboardInterrupt, "interrupted")])
def test_a_fit_stopped_with_a_draw_pending_returns_at_once(wide_built, monkeypatch, signal, reason):
    def stop(approx, losses, i):
        if i >= 100:
            raise signal

    result, drawn = _wide_fit(wide_built, True, monkeypatch, n=100_000, callback=stop)
    assert result.stop_reason == reason and result.n_steps == 100 and drawn == [0]
    assert np.all(np.isfinite(result.params()["mu"]))


def test_folds_drawn_ahead_train_on_the_same_rows_as_the_fused_call(wide_data, monkeypatch):
    # fit_many's folds: each member draws its minibatch rows among its own training rows
    fits = {}
    for prefetch in (True, False):
        drawn = _count_draws_ahead(monkeypatch, prefetch)
        many = bp.fit_many(WIDE_SPEC, *wide_data, folds=2, seeds=[4], n=2100, batch_size=32, method="advi",
                           draws=20, progressbar=False)
        fits[prefetch] = many.results
        assert drawn == ([0, 1, 2] if prefetch else [])
    for ahead, fused in zip(fits[True], fits[False], strict=True):
        np.testing.assert_array_equal(ahead.losses, fused.losses)


def test_numba_loop_takes_the_steps_constant_arrays_as_inputs(logistic_data, monkeypatch):
    """numba embeds a constant in the compiled code, and one past 1 MB (a full-rank family's (d, d)
    mask at d > 353) kept it from caching the loop on disk: every process compiled it again."""
    from pytensor.graph.traversal import ancestors
    from pytensor.scan.op import Scan
    from pytensor.tensor.variable import TensorConstant

    from bnn_ppl.inference.engines import pytensor_engine

    compiled = []

    def capture(*args, **kwargs):
        compiled.append(pytensor_engine_compile(*args, **kwargs))
        raise KeyboardInterrupt  # stop before the first call: numba compiles there

    pytensor_engine_compile = pytensor_engine._compile_chunk
    monkeypatch.setattr(pytensor_engine, "_compile_chunk", capture)
    X, y = logistic_data
    built = bp.build_model(bp.Network([bp.Dense(6, "tanh"), bp.Dense(1, "identity")], bp.Bernoulli()), X, y)
    with pytest.raises(KeyboardInterrupt):
        bp.fit(built, 10, engine="numba", method="fullrank_advi", random_seed=0, progressbar=False)
    (chunk,) = compiled
    scans = [node.op for node in chunk.function.maker.fgraph.apply_nodes if isinstance(node.op, Scan)]
    assert scans
    sizes = [c.data.size for op in scans for c in ancestors(op.fgraph.outputs) if isinstance(c, TensorConstant)]
    assert max(sizes) < pytensor_engine.LIFT_MIN_SIZE
    d = 2 * 6 + 6 + 6 + 1
    assert any(np.shape(v) == (d, d) for v in chunk.values)  # the masks arrive as inputs
