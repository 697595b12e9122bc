"""``FitResult`` and ``fit``: the fit record with its predictor, quality, model file and DataTree.

:func:`bnn_ppl.inference.fit_record` returns a plain :class:`~bnn_ppl.inference.FitRecord`;
this module, one layer above inference, predictive, io and the ArviZ export, makes it the
:class:`FitResult` a user calls methods on. Every method is a thin delegation to the free
function that does the work (:func:`bnn_ppl.predictive.make_predictor`,
:func:`bnn_ppl.io.save`, :func:`bnn_ppl.arviz.to_datatree`, ...), so imports point one way.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, fields
from typing import Any

from bnn_ppl import arviz as _arviz
from bnn_ppl import io as _io
from bnn_ppl.compile import BuiltModel
from bnn_ppl.inference import FitRecord, fit_record
from bnn_ppl.inference.description_length import description_length as _description_length
from bnn_ppl.predictive import Predictor, make_predictor
from bnn_ppl.predictive.quality import Quality
from bnn_ppl.predictive.quality import evaluate as _evaluate

__all__ = ["FitResult", "fit"]


@dataclass(repr=False)
class FitResult(FitRecord):
    """What :func:`bnn_ppl.fit` returns: the :class:`~bnn_ppl.inference.FitRecord` fields
    (``built``, ``posterior``, ``losses``, ``timings``, ...) plus the calls below."""

    _predictors: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, record: FitRecord) -> FitResult:
        """The :class:`FitResult` of a plain record (the same objects, not copies)."""
        return cls(**{f.name: getattr(record, f.name) for f in fields(FitRecord)})

    def predictor(self, backend: str | None = None, kind: str = "auto") -> Predictor:
        """The compiled posterior-predictive sampler, built once per (backend, kind) and cached.

        See :class:`bnn_ppl.predictive.Predictor`.
        """
        key = (backend, kind)
        if key not in self._predictors:
            self._predictors[key] = make_predictor(self, backend=backend, kind=kind)
        return self._predictors[key]

    def evaluate(self, X: Any, y: Any, draws: int = 1000, *, random_seed: Any = 0) -> Quality:
        """Held-out log predictive density, accuracy and ECE (classifiers) or RMSE and interval
        coverage (regression): see :func:`bnn_ppl.predictive.quality.evaluate`."""
        return _evaluate(self.predictor(), X, y, draws=draws, random_seed=random_seed)

    def save(self, path: Any, *, metadata: dict | None = None, include_data: bool = True) -> Any:
        """Write this fit to one file (zip of JSON + .npy, atomic): see :func:`bnn_ppl.io.save`."""
        return _io.save(self, path, metadata=metadata, include_data=include_data)

    def description_length(self, draws: int = 1000, *, random_seed: int | None = None):
        """``LC = KL(q || prior)``, ``LE = E_q[-log p(D | theta)]`` and their sum, in nats and bits.

        See :func:`bnn_ppl.inference.description_length.description_length`.
        """
        return _description_length(self, draws=draws, random_seed=random_seed)

    def to_datatree(self, draws: int = 1000, X: Any = None, y: Any = None, *, random_seed: int | None = None,
                    log_likelihood: bool = False):
        """An ArviZ ``xarray.DataTree``: see :func:`bnn_ppl.arviz.to_datatree`."""
        return _arviz.to_datatree(self, draws=draws, X=X, y=y, random_seed=random_seed, log_likelihood=log_likelihood)


def fit(built: BuiltModel, n: int = 30_000, **options: Any) -> FitResult:
    """Fit the network's posterior with ADVI (any variational family) and Adam.

    Parameters
    ----------
    built : BuiltModel
        From :func:`bnn_ppl.build_model`.
    n : int
        Optimisation steps.
    method : {"auto", "advi", "fullrank_advi", "lowrank_advi", "unitrank_advi"} or Family
        The variational family (:data:`bnn_ppl.inference.families.FAMILIES`): mean-field,
        full-rank (few parameters only), low-rank plus diagonal, or per-unit rank-one plus
        diagonal (``bp.UnitRank``: O(D), for wide layers), by name or as an instance with
        settings (``bp.LowRank(rank=4)``). ``"auto"`` is full-rank up to
        :data:`~bnn_ppl.inference.families.AUTO_FULLRANK_MAX` parameters (where it matched
        NUTS on moons and mean-field pruned units), mean-field above.
    engine : str
        ``"auto"`` (the fastest available), ``"jax"``, ``"numba"`` or ``"pymc"`` (PyMC's own loop,
        the reference). See ``bnn_ppl.inference.engines.ENGINES``.
    backend : {"numba", "c", "jax"}, optional
        PyTensor compile mode of the ``"pymc"`` engine's step and of the ``"numba"`` engine's
        scan (``"c"`` runs it with PyTensor's C backend). The ``"jax"`` engine ignores it and
        runs on the device JAX picks (a GPU when one is visible).
    learning_rate : float
        Adam step size at the start.
    lr_floor : float
        The step size stays at ``learning_rate`` for the first half of the ``n`` steps, then
        follows a cosine down to ``lr_floor * learning_rate`` at the last step (1.0: constant;
        see :data:`bnn_ppl.inference.engines.base.HOLD_FRACTION`). The ``"pymc"`` engine (PyMC's own
        optimiser) always uses a constant step size.
    init_sigma : float
        Initial posterior standard deviation of every parameter.
    mc_draws : int
        Monte Carlo draws of the parameters per step, averaged (vectorised on the JAX engine).
    elbo : bp.ELBO, optional
        The -ELBO estimator: ``bp.ELBO(kl="closed_form")`` takes fixed Normal prior terms in
        closed form, ``bp.ELBO(gradient="path")`` uses the path-derivative ("sticking the
        landing") gradient, ``bp.ELBO(kl_weight=beta)`` weights the KL term (beta < 1: a
        tempered posterior; JAX and numba engines). Default ``bp.ELBO()``: every prior term
        sampled, analytic entropy, weight 1 (PyMC's ADVI objective).
    ensemble : int
        Independent fits run together in one compiled loop (JAX engine), each from its own
        seed; the result predicts with their equal-weight mixture and exports the members on
        ArviZ's ``chain`` dim. Member ``k`` is the fit ``fit(..., random_seed=result.member_seeds[k])``.
    random_seed : int, optional
        Seeds the initial means and every Monte Carlo draw (with ``ensemble``, the members' seeds).
    progressbar : bool
        Show a progress bar with the running loss.
    callbacks : sequence of callables
        ``callback(approx, losses, i)``, as in ``pm.fit`` (PyMC's
        ``CheckParametersConvergence`` works); raise ``StopIteration`` to stop (the result's
        ``stop_reason`` is then ``"callback"``; Ctrl-C gives ``"interrupted"``).
    callback_every : int, optional
        Steps between two callback calls. The compiled engines call callbacks between chunks of
        steps (1,000 for small networks); a smaller value shortens the chunks, at the cost of
        one return to Python per chunk (about 0.1-1 ms each, plus one more JIT compilation per
        new chunk length on the JAX engine). PyMC's engine calls them after every step.
    devices : int or jax.sharding.Mesh, optional
        Data-parallel fitting on a JAX device mesh (``"jax"`` engine): each step's batch rows
        are split over the devices, parameters replicated, gradients summed; the loss trajectory
        is that of one device (float rounding aside). ``devices=2`` takes the first two of
        ``jax.devices()``. On a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (set
        before JAX is imported) makes two host devices; several hosts follow
        ``jax.distributed.initialize`` (then pass a ``Mesh`` over ``jax.devices()``).

    Returns
    -------
    FitResult

    Raises
    ------
    FitError
        The loss or a parameter stopped being finite (every engine); its ``posterior`` attribute
        holds the last good parameters (``approx``: PyMC's approximation when the family has one,
        else the posterior).

    Examples
    --------
    >>> import numpy as np, bnn_ppl as bp
    >>> X = np.random.default_rng(0).normal(size=(40, 2)); y = (X[:, 0] > 0).astype(int)
    >>> spec = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli())
    >>> result = bp.fit(bp.build_model(spec, X, y), n=2_000, random_seed=0, progressbar=False)
    >>> result.method, result.n_steps, bool(result.final_loss < result.losses[0])
    ('fullrank_advi', 2000, True)
    >>> float(result.evaluate(X, y).accuracy) > 0.9
    True
    """
    return FitResult.of(fit_record(built, n, **options))


# The options are spelled once, in fit_record's signature; help(bp.fit) and IDEs show them.
fit.__signature__ = inspect.signature(fit_record).replace(return_annotation=FitResult)
