"""Local reparameterisation: the JAX engine samples dense layers' pre-activations, not their weights.

Under a mean-field q, a dense unit's pre-activation ``z = h W[:, j] + b_j`` given its input row
``h`` is Gaussian with mean ``h M[:, j] + m_j`` and variance ``h^2 S^2[:, j] + s_j^2`` (``M``,
``S^2``: the weights' means and variances), and the units of one row use disjoint weights, so
they are independent given ``h`` (Kingma, Salimans and Welling 2015). Drawing ``z`` for every
row and unit, layer after layer, gives each row's likelihood term exactly the distribution it
has when the weights are drawn: the expected -ELBO is unchanged (a sum over rows), while the
rows of a batch no longer share one weight draw, which lowers the gradient's variance.

The weights are never drawn, so their prior terms are taken in closed form
(``ELBO(kl="closed_form")``, which needs fixed Normal priors on every layer parameter) and the
entropy analytically; the model's other free variables (a Normal likelihood's sigma, user-added
variables) are drawn from q as usual. Convolutions are refused: one example's output positions
share a kernel, so their pre-activations are not independent and per-position draws would
change the objective.

Each step draws ``rows x units`` numbers per layer in place of the weights' count: more draws
than weights for batches wider than a layer's fan-in. ``python -m bench.estimators``
(``bench/LAST_RUN.md``, Session 11), against the closed-form KL with weight draws: moons 2-5-5-1
on its full batch of 500 0.16x the steps/s at the same final -ELBO; digits 64-32-10 at batch 128
0.63x the steps/s, 0.26x the gradient variance, the default's final -ELBO reached 1.8x sooner;
784-256-10 at batch 256 0.93x the steps/s and half the -ELBO after 1,000 steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bnn_ppl.compile import BuiltModel
from bnn_ppl.errors import ParameterError
from bnn_ppl.inference.engines.objective import FlatLogp, fixed_normal
from bnn_ppl.spec.activations import apply_activation
from bnn_ppl.spec.layers import ForwardContext
from bnn_ppl.spec.priors import FanInNormal, Normal

__all__ = ["LocalLogp", "local_problem", "local_logp"]

_PREFIX = "ELBO(local_reparameterization=True)"


def local_problem(built: BuiltModel, family_name: str, engine_name: str) -> str | None:
    """Why ``ELBO(local_reparameterization=True)`` cannot fit ``built`` (None when it can), naming the fix."""
    if engine_name != "jax":
        return f"{_PREFIX} runs on the JAX engine: use engine='jax' (or 'auto' with jax installed). Got {engine_name!r}."
    if family_name != "advi":
        return (f"{_PREFIX} needs a mean-field q (method='advi'), whose weights are independent given a layer's "
                f"input. Got method={family_name!r}.")
    for layer in built.layers:
        if not layer.params:
            continue
        if not layer.layer.local_reparameterization:
            return (f"{_PREFIX} samples dense layers' pre-activations; layer {layer.name!r} is a "
                    f"{type(layer.layer).__name__}, whose outputs share parameters (they would not be independent "
                    "draws). Use the default ELBO for this network.")
        for param in layer.params:
            if not isinstance(param.prior, (Normal, FanInNormal)):
                return (f"{_PREFIX} takes the weights' prior terms in closed form, which needs Normal or FanInNormal "
                        f"priors; {param.var_name!r} has {type(param.prior).__name__}. Use the default ELBO, or "
                        "a Normal prior.")
    return None


@dataclass(frozen=True)
class LocalLogp:
    """``fn(theta, means, variances, noise, X_batch, y_batch, prior_scale) -> (rest_other, rows)``.

    ``theta`` (D,): a draw of every parameter, of which only the ``other`` coordinates (not a
    layer parameter) are read; ``means``/``variances`` (D,): q's marginal moments; ``noise``
    (``n_local``,): standard normals for the pre-activations of every row and unit.
    """

    fn: Callable
    other: np.ndarray
    n_local: int


def _slots(built: BuiltModel, layout: dict) -> dict[str, dict[str, tuple[slice, tuple[int, ...]]]]:
    """Layer name -> {key -> (its slice of theta, shape)}: each layer parameter must be a free variable itself."""
    model = built.model
    slots: dict[str, dict[str, tuple[slice, tuple[int, ...]]]] = {}
    for layer in built.layers:
        slots[layer.name] = {}
        for key, rv in built.params[layer.name].items():
            if rv not in model.free_RVs or not fixed_normal(model, rv):
                raise ParameterError(f"{_PREFIX}: the model's {layer.name}_{key} is not a free Normal variable with a "
                                     "fixed mean and sigma (was the model edited?); use the default ELBO.")
            _, slc, shape, _ = layout[model.rvs_to_values[rv].name]
            slots[layer.name][key] = (slc, tuple(shape))
    return slots


def local_logp(built: BuiltModel, flat: FlatLogp, layout: dict, jaxify: Callable, *, features_first: bool) -> LocalLogp:
    """:class:`LocalLogp` for ``built`` (:func:`local_problem` returned None; ``flat`` has ``rows_given_output``).

    ``features_first``: run the pass with the batch stored (features, rows)
    (:mod:`~bnn_ppl.inference.engines.features_first`).
    """
    import jax
    import jax.numpy as jnp

    from bnn_ppl.array_ops import jax_ops
    from bnn_ppl.inference.engines.features_first import rest_and_rows_fns

    if flat.rows_given_output is None:
        raise ParameterError(f"{_PREFIX} needs the likelihood as a function of the network's output, which this "
                             "model's observed variable is not; use the default ELBO.")
    xp = jax_ops()
    slots = _slots(built, layout)
    used = np.zeros(flat.size, dtype=bool)
    for block in slots.values():
        for slc, _ in block.values():
            used[slc] = True
    rows = flat.x.type.shape[0]
    sizes = [rows * int(np.prod(layer.out_shape)) if slots[layer.name] else 0 for layer in built.layers]
    rest_fn, rows_fn = rest_and_rows_fns(flat, jaxify)

    def fn(theta, means, variances, noise, xb, yb, prior_scale):
        h = jax.lax.optimization_barrier(xb.T) if features_first else xb
        start = 0
        for layer, size in zip(built.layers, sizes, strict=True):
            block, kind = slots[layer.name], layer.layer
            if not block:
                h = (kind.forward_features_first(xp, {}, h, layer.in_shape) if features_first
                     else kind.forward(xp, {}, h, layer.in_shape, ForwardContext()))
                continue
            mean = {key: means[slc].reshape(shape) for key, (slc, shape) in block.items()}
            var = {key: variances[slc].reshape(shape) for key, (slc, shape) in block.items()}
            z_mean = kind.preactivation(xp, mean, h, layer.in_shape, features_first)
            z_var = kind.preactivation(xp, var, h * h, layer.in_shape, features_first)
            eps = noise[start:start + size].reshape(z_mean.shape)
            start += size
            # tiny: a zero input row of a bias-free layer has variance 0, whose sqrt has no gradient
            z = z_mean + jnp.sqrt(z_var + jnp.finfo(z_var.dtype).tiny) * eps
            h = apply_activation(xp, kind.activation, z)
        (rest,) = rest_fn(theta, prior_scale)
        (rows_,) = rows_fn(theta, h.T if features_first else h, xb, yb, prior_scale)
        return rest, rows_

    return LocalLogp(fn=fn, other=np.flatnonzero(~used), n_local=sum(sizes))


def local_theta(family: Any, xp: Any, q: dict[str, Any], local: LocalLogp, noise: Any) -> tuple[Any, Any]:
    """A draw of q on the ``other`` coordinates (the means elsewhere) and the pre-activation noise, from one draw's noise."""
    import jax.numpy as jnp

    n_other = local.other.size
    mu = q["mu"]
    if n_other == 0:
        return mu, noise
    eps = jnp.zeros_like(mu).at[local.other].set(noise[:n_other])
    return family.sample(xp, q, eps[None])[0], noise[n_other:]
