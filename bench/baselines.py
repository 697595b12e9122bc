"""The two baselines every bnn_ppl engine is compared with, built from the same workload.

- :func:`fit_pm_default`: the seed notebook's route written in plain PyMC (``pm.Data``,
  ``pm.Minibatch``, ``pm.Normal`` weights with prior-draw initial values, a Bernoulli or
  Categorical likelihood on the logits) fitted with ``pm.fit(n, method="advi")`` and every
  other default (adagrad_window, initial sigma softplus(0)); its predictive is
  ``approx.sample_node`` compiled with ``pytensor.function`` defaults.
- :func:`fit_numpyro`: NumPyro SVI with ``AutoNormal`` and ``Adam(0.01)``, the whole loop in
  one ``lax.scan`` compiled ahead of time (random-index minibatches inside the scan).

Both build exactly the network of ``workload.spec`` (widths, activations, biases, priors).
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import bnn_ppl as bp
from bench.measure import FitRow, PeakMemory, StepClock, classification_metrics, tail_mean, time_calls
from bench.workloads import Workload

__all__ = [
    "PmFitted",
    "compile_sample_node",
    "default_linker",
    "fit_numpyro",
    "fit_pm_default",
    "numpyro_available",
    "plain_pymc_model",
    "spp_predict",
]


def _prior_loc_scale(prior: Any, fan_in: int) -> tuple[float, float]:
    if isinstance(prior, bp.FanInNormal):
        return 0.0, prior.scale / np.sqrt(fan_in)
    if isinstance(prior, bp.Normal):
        return prior.mu, prior.sigma
    raise ValueError(f"The baselines support Normal and FanInNormal priors only. Got {prior!r}.")


def _check_classifier(workload: Workload) -> None:
    if not workload.spec.likelihood.is_classifier:
        raise ValueError(f"Workload {workload.name!r}: the baselines need a Bernoulli or Categorical likelihood.")


# --------------------------------------------------------------------------- pm.fit default
@dataclass
class PmFitted:
    """A plain-PyMC model fitted by ``pm.fit`` and its forward pass ``forward(x) -> probabilities``."""

    model: Any
    approx: Any
    forward: Any
    dtype: str
    sample_proba: Any = None


@dataclass(frozen=True)
class DenseLayer:
    """What the hand-written baselines need of one dense layer of a workload's spec."""

    fan_in: int
    units: int
    activation: str
    bias: bool
    prior: Any
    bias_prior: Any


def dense_layers(workload: Workload) -> list[DenseLayer]:
    """The workload's layers, read through the layer protocol (the baselines are dense MLPs)."""
    out = []
    for layer in workload.spec.resolve(workload.X_train.shape[1:]):
        if layer.kind != "dense":
            raise ValueError(f"The hand-written baselines are dense MLPs; layer {layer.name} is {layer.kind!r}.")
        w, b = layer.param("w"), layer.param("b")
        out.append(DenseLayer(w.fan_in, w.shape[1], layer.layer.activation, b is not None, w.prior,
                              None if b is None else b.prior))
    return out


def plain_pymc_model(workload: Workload, seed: int) -> tuple[Any, Any]:
    """The seed notebook's model for ``workload.spec`` in plain PyMC: ``(model, forward)``.

    ``forward(x)`` maps a symbolic input matrix to p(y=1) (rows,) or class probabilities
    (rows, classes) through the model's weight RVs, for ``approx.sample_node``.
    """
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    from bnn_ppl.array_ops import pytensor_ops
    from bnn_ppl.spec.activations import apply_activation

    _check_classifier(workload)
    floatX = pytensor.config.floatX
    layers = dense_layers(workload)
    rng = np.random.default_rng(seed)
    n = workload.X_train.shape[0]
    with pm.Model() as model:
        ann_input = pm.Data("ann_input", workload.X_train.astype(floatX))
        ann_output = pm.Data("ann_output", workload.y_train.astype(np.int64))
        if workload.batch_size is None:
            x_in, y_in, total = ann_input, ann_output, None
        else:
            x_in, y_in = pm.Minibatch(ann_input, ann_output, batch_size=workload.batch_size)
            total = n
        params = []
        for i, layer in enumerate(layers):
            mu, sigma = _prior_loc_scale(layer.prior, layer.fan_in)
            shape = (layer.fan_in, layer.units)
            w = pm.Normal(f"w_{i}", mu, sigma=sigma, shape=shape, initval=rng.normal(mu, sigma, shape).astype(floatX))
            b = None
            if layer.bias:
                b_mu, b_sigma = _prior_loc_scale(layer.bias_prior, layer.fan_in)
                b = pm.Normal(f"b_{i}", b_mu, sigma=b_sigma, shape=(layer.units,))
            params.append((w, b, layer.activation))

        def logits(x: Any) -> Any:
            h = x
            for w, b, activation in params:
                h = pt.dot(h, w) if b is None else pt.dot(h, w) + b
                h = apply_activation(pytensor_ops(), activation, h)
            return h

        if isinstance(workload.spec.likelihood, bp.Bernoulli):
            pm.Bernoulli("out", logit_p=logits(x_in)[:, 0], observed=y_in, total_size=total)

            def forward(x: Any) -> Any:
                return pt.sigmoid(logits(x)[:, 0])
        else:
            pm.Categorical("out", logit_p=logits(x_in), observed=y_in, total_size=total)

            def forward(x: Any) -> Any:
                return pt.special.softmax(logits(x), axis=-1)

    return model, forward


def default_linker() -> str:
    """The linker PyTensor compiles with by default, e.g. ``"numba (default)"``."""
    from pytensor.compile.mode import get_default_mode

    return type(get_default_mode().linker).__name__.removesuffix("Linker").lower() + " (default)"


def fit_pm_default(workload: Workload, seed: int = 0, n_steps: int | None = None,
                   optimizer: str = "default") -> tuple[FitRow, PmFitted]:
    """Build the plain PyMC model and run ``pm.fit(n, method="advi")`` with its defaults.

    ``optimizer="adam"``: PyMC tuned as a user would, ``obj_optimizer=pm.adam(learning_rate=0.01)``
    (bnn_ppl's and NumPyro's optimiser and step size); ``"default"``: adagrad_window.

    Steady-state steps/s come from a :class:`StepClock` callback (compilation excluded);
    test metrics use the notebook's ``sample_node`` predictive compiled with defaults.
    """
    import pymc as pm
    import pytensor

    n = int(n_steps or workload.pm_fit_steps)
    clock = StepClock()
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        model, forward = plain_pymc_model(workload, seed)
        extra = {"obj_optimizer": pm.adam(learning_rate=0.01)} if optimizer == "adam" else {}
        approx = pm.fit(n, method="advi", model=model, random_seed=seed, progressbar=False, callbacks=[clock], **extra)
        wall = time.perf_counter() - t0
    floatX = pytensor.config.floatX
    fitted = PmFitted(model, approx, forward, floatX, compile_sample_node(approx, forward))
    sample_proba = fitted.sample_proba
    X_test = workload.X_test.astype(floatX)
    timed = time_calls(lambda: sample_proba(X_test, workload.eval_draws), repeats=1)
    accuracy, nll = classification_metrics(timed.result, workload.y_test)
    rate = clock.steps_per_s
    # PyMC divides a minibatch model's objective by N/B (opvi symbolic_normalizing_constant):
    # rescale to the full-data -ELBO that the other runners report.
    loss_scale = workload.X_train.shape[0] / workload.batch_size if workload.batch_size else 1.0
    row = FitRow(
        workload=workload.name, runner="pm.fit default" if optimizer == "default" else "pm.fit adam",
        engine="pm.fit advi (adagrad_window)" if optimizer == "default" else "pm.fit advi, pm.adam(0.01)",
        backend=default_linker(), n_steps=int(np.asarray(approx.hist).size), dtype=floatX,
        steps_per_s=rate, setup_compile_s=wall - n / rate, fit_wall_s=wall,
        final_neg_elbo=tail_mean(approx.hist) * loss_scale, test_accuracy=accuracy, test_nll=nll,
        predict_s=timed.median_s, peak_mem_mb=mem.peak_mb,
        notes=f"-ELBO rescaled x{loss_scale:.4g} from PyMC's batch scale" if workload.batch_size else "",
    )
    return row, fitted


def compile_sample_node(approx: Any, forward: Any) -> Any:
    """The notebook's fast predictive: ``sample_proba(X, n)`` from ``approx.sample_node``, default compile."""
    import pytensor
    import pytensor.tensor as pt

    x = pt.matrix("X", dtype=pytensor.config.floatX)
    draws = pt.iscalar("n")
    return pytensor.function([x, draws], approx.sample_node(forward(x), size=draws))


def spp_predict(fitted: PmFitted, X: np.ndarray, draws: int, seed: int = 0) -> np.ndarray:
    """The notebook's slow route: ``approx.sample`` then ``set_data`` + ``sample_posterior_predictive``.

    Returns the predicted labels (full-batch models only: a Minibatch model keeps its batch rows).
    """
    import pymc as pm

    idata = fitted.approx.sample(draws, random_seed=seed)
    train = {name: fitted.model[name].get_value() for name in ("ann_input", "ann_output")}
    pm.set_data({"ann_input": X.astype(fitted.dtype), "ann_output": np.zeros(X.shape[0], dtype=np.int64)},
                model=fitted.model)
    try:
        ppc = pm.sample_posterior_predictive(idata, model=fitted.model, var_names=["out"], progressbar=False,
                                             random_seed=seed)
    finally:
        pm.set_data(train, model=fitted.model)
    out = ppc.posterior_predictive["out"].values
    return out.reshape(-1, out.shape[-1]).mean(axis=0) > 0.5


# --------------------------------------------------------------------------- NumPyro SVI
def numpyro_available() -> bool:
    """Whether NumPyro (and JAX) can be imported."""
    return importlib.util.find_spec("numpyro") is not None and importlib.util.find_spec("jax") is not None


def _jax_activation(name: str) -> Any:
    import jax
    import jax.numpy as jnp

    table = {
        "tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "softplus": jax.nn.softplus,
        "elu": jax.nn.elu, "gelu": lambda x: jax.nn.gelu(x, approximate=False), "silu": jax.nn.silu,
        "identity": lambda x: x,
    }
    return table[name]


def fit_numpyro(workload: Workload, seed: int = 0, n_steps: int | None = None, guide: str = "AutoNormal") -> FitRow:
    """NumPyro SVI (``guide``, Adam(0.01), Trace_ELBO) with the loop in one compiled ``lax.scan``.

    ``guide``: ``"AutoNormal"`` (a location and scale per sample site) or
    ``"AutoDiagonalNormal"`` (one flat vector, fewer and larger operations per step)."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer import autoguide

    _check_classifier(workload)
    n = int(n_steps or workload.steps)
    layers = dense_layers(workload)
    acts = [_jax_activation(layer.activation) for layer in layers]
    bernoulli = isinstance(workload.spec.likelihood, bp.Bernoulli)
    n_rows, batch = workload.X_train.shape[0], workload.batch_size

    def logits_of(sample: dict, X: Any) -> Any:
        h = X
        for i, (layer, act) in enumerate(zip(layers, acts)):
            h = h @ sample[f"w_{i}"]
            if layer.bias:
                h = h + sample[f"b_{i}"]
            h = act(h)
        return h

    def model(X: Any, y: Any) -> None:
        sample = {}
        for i, layer in enumerate(layers):
            mu, sigma = _prior_loc_scale(layer.prior, layer.fan_in)
            sample[f"w_{i}"] = numpyro.sample(f"w_{i}", dist.Normal(mu, sigma).expand([layer.fan_in, layer.units]).to_event(2))
            if layer.bias:
                b_mu, b_sigma = _prior_loc_scale(layer.bias_prior, layer.fan_in)
                sample[f"b_{i}"] = numpyro.sample(f"b_{i}", dist.Normal(b_mu, b_sigma).expand([layer.units]).to_event(1))
        logits = logits_of(sample, X)
        lik = dist.Bernoulli(logits=logits[:, 0]) if bernoulli else dist.Categorical(logits=logits)
        with numpyro.handlers.scale(scale=n_rows / X.shape[0]), numpyro.plate("data", X.shape[0]):
            numpyro.sample("y", lik, obs=y)

    with PeakMemory() as mem:
        t0 = time.perf_counter()
        X = jnp.asarray(workload.X_train.astype(np.float32))
        y = jnp.asarray(workload.y_train.astype(np.int32))
        guide = getattr(autoguide, guide)(model)
        svi = SVI(model, guide, numpyro.optim.Adam(0.01), Trace_ELBO())
        key_init, key_run, key_pred = jax.random.split(jax.random.PRNGKey(seed), 3)
        state = svi.init(key_init, X[: batch or n_rows], y[: batch or n_rows])

        def run(state: Any, key: Any, X: Any, y: Any) -> Any:
            def body(carry: Any, _: Any) -> Any:
                state, key = carry
                if batch is None:
                    xb, yb = X, y
                else:
                    key, sub = jax.random.split(key)
                    idx = jax.random.randint(sub, (batch,), 0, n_rows)
                    xb, yb = X[idx], y[idx]
                state, loss = svi.update(state, xb, yb)
                return (state, key), loss

            (state, _), losses = jax.lax.scan(body, (state, key), None, length=n)
            return state, losses

        compiled = jax.jit(run).lower(state, key_run, X, y).compile()
        t_run = time.perf_counter()
        state, losses = compiled(state, key_run, X, y)
        losses = np.asarray(jax.block_until_ready(losses))
        run_s = time.perf_counter() - t_run
        wall = time.perf_counter() - t0

    params = svi.get_params(state)
    draws = workload.eval_draws

    @jax.jit
    def predict(params: Any, key: Any, X: Any) -> Any:
        sample = guide.sample_posterior(key, params, sample_shape=(draws,))
        logits = jax.vmap(lambda s: logits_of(s, X))(sample)
        return jax.nn.sigmoid(logits[..., 0]) if bernoulli else jax.nn.softmax(logits, axis=-1)

    X_test = jnp.asarray(workload.X_test.astype(np.float32))
    timed = time_calls(lambda: np.asarray(jax.block_until_ready(predict(params, key_pred, X_test))), repeats=1)
    accuracy, nll = classification_metrics(timed.result, workload.y_test)
    rate = n / run_s
    return FitRow(
        workload=workload.name, runner="numpyro", engine=f"SVI {type(guide).__name__} Adam(0.01)", backend="jax lax.scan",
        n_steps=n, dtype=str(jax.tree_util.tree_leaves(params)[0].dtype), steps_per_s=rate, setup_compile_s=wall - run_s, fit_wall_s=wall,
        final_neg_elbo=tail_mean(losses), test_accuracy=accuracy, test_nll=nll, predict_s=timed.median_s,
        peak_mem_mb=mem.peak_mb, notes=f"numpyro {numpyro.__version__}",
    )
