"""Per-unit rank-one plus diagonal Gaussian: each hidden unit's weights share one correlation direction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bnn_ppl.errors import ParameterError
from bnn_ppl.inference.families._base import HALF_LOG_2PI, HALF_LOG_2PI_E, Family, static_length
from bnn_ppl.inference.init import inverse_softplus

__all__ = ["UnitRank", "unit_index"]


def unit_index(built: Any, layout: dict) -> np.ndarray:
    """For every coordinate of the flat vector, the unit whose block it belongs to (-1: none).

    A unit is an output of a layer (a dense unit, a convolution filter, a normalised channel):
    its block holds the parameters along that layer's ``out`` (or ``channel``) axis, i.e. the
    unit's incoming weights and bias. The last layer's weights are the outgoing weights of the
    layer before it when that is a dense layer, so they join those units' blocks: a hidden unit
    and its output weights then move together, which is the correlation mean-field lacks when
    it switches units off. Other free variables (prior scales, the noise sigma) get -1.
    """
    def unit_axis(p: Any) -> int | None:
        return next((i for i, d in enumerate(p.dims) if d.endswith(("_out", "_channel"))), None)

    size = sum(slc.stop - slc.start for _, slc, _, _ in layout.values())
    index = np.full(size, -1, dtype=np.int64)
    layers = built.layers
    offset = 0
    starts = []
    for layer in layers:
        starts.append(offset)
        axis_units = [p.shape[unit_axis(p)] for p in layer.params if unit_axis(p) is not None]
        offset += max(axis_units, default=0)
    for k, layer in enumerate(layers):
        outgoing = (k == len(layers) - 1 and k > 0 and layer.kind == "dense" and layers[k - 1].kind == "dense")
        for p in layer.params:
            entry = layout.get(p.var_name) or layout.get(f"{p.var_name}_raw")
            if entry is None:
                continue
            _, slc, shape, _ = entry
            if outgoing and p.key == "w":  # rows = the previous layer's units
                units = starts[k - 1] + np.arange(shape[0])[:, None] + np.zeros(shape, dtype=np.int64)
            else:
                axis = unit_axis(p)
                if axis is None:
                    continue
                grid = np.indices(shape)[axis]
                units = starts[k] + grid
            index[slc] = units.ravel()
    return index


@dataclass(frozen=True)
class UnitRank(Family):
    """``q(theta) = N(mu, diag(s)^2 + sum_j v_j v_j^T)``, ``v_j`` supported on unit ``j``'s block.

    Each unit (a dense unit, a convolution filter) gets one correlation direction over its
    incoming weights and bias, plus, for the last hidden layer, its outgoing weights
    (:func:`unit_index`). A draw is ``mu + s * eps + v * z[unit]`` with D + (units) standard
    normals; the entropy and ``log q`` use the matrix determinant lemma and Sherman-Morrison
    per block. Every operation is elementwise or a per-unit sum, so a step costs O(D) like
    mean-field (3 D parameters), however wide the layers: the scalable structured family.

    Evidence (``bench/families.py``, ``bench/LAST_RUN.md`` Session 6): 0.90x mean-field's
    steps/s on 784-256-10 (low-rank rank 2: 0.65x); a little better than mean-field on moons
    2-5-1 (test LPD -0.306 vs -0.312 on the seeds where mean-field prunes units), digits (-0.190
    vs -0.193) and the gap regression (in-between std ratio 5.40 vs 4.46), but the seeds that
    prune under mean-field prune here too: escaping needs correlations across units (full-rank,
    or low-rank on some seeds).

    The family is bound to a model by :meth:`bind` (``fit`` does it), which sets the unit of
    every coordinate; ``bp.UnitRank()`` alone is the unbound choice.

    Examples
    --------
    >>> import numpy as np
    >>> from bnn_ppl.array_ops import numpy_ops
    >>> q = UnitRank(units=np.array([0, 0, 1, -1]))
    >>> params = q.initial_params(np.zeros(4), 0.5, np.random.default_rng(0))
    >>> s, v = np.logaddexp(0, params["rho"]), params["v"] * (q.units >= 0)
    >>> cov = np.diag(s**2) + sum(np.outer(v * (q.units == j), v * (q.units == j)) for j in (0, 1))
    >>> bool(np.isclose(q.entropy(numpy_ops(), params), 0.5 * np.linalg.slogdet(2 * np.pi * np.e * cov)[1]))
    True
    """

    units: Any = field(default=None, compare=False, repr=False)
    key: tuple = field(default=(), repr=False)

    name = "unitrank_advi"
    param_names = ("mu", "rho", "v")

    def __post_init__(self) -> None:
        if self.units is not None:
            units = np.asarray(self.units, dtype=np.int64)
            object.__setattr__(self, "units", units)
            object.__setattr__(self, "key", (units.size, hash(units.tobytes())))

    def bind(self, built: Any, layout: dict | None = None) -> UnitRank:
        from bnn_ppl.inference.families._base import flat_layout

        return UnitRank(units=unit_index(built, layout or flat_layout(built.model)))

    def options(self) -> dict[str, Any]:
        return {}  # the units follow from the model (bind), not saved

    @property
    def n_units(self) -> int:
        self._check_bound()
        return int(self.units.max(initial=-1)) + 1

    def _check_bound(self) -> None:
        if self.units is None:
            raise ParameterError("UnitRank must be bound to a model first (family.bind(built)); fit does it.")

    def param_shapes(self, d: int) -> dict[str, tuple[int, ...]]:
        return {"mu": (d,), "rho": (d,), "v": (d,)}

    def noise_size(self, d: int) -> int:
        self._check_bound()
        return d + self.n_units

    def initial_params(self, mu: np.ndarray, init_sigma: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        # v = 0 is a stationary point (as LowRank's W = 0): start with small random directions
        # carrying ~1% of the initial variance.
        d = mu.size
        v = rng.standard_normal(d) * (0.1 * init_sigma)
        diag = np.sqrt(np.maximum(init_sigma**2 - v**2, (0.5 * init_sigma) ** 2))
        return {"mu": np.asarray(mu, dtype=float), "rho": inverse_softplus(diag), "v": v}

    def _v(self, params: dict[str, Any]) -> Any:
        self._check_bound()
        return params["v"] * (self.units >= 0)

    def _block_sum(self, xp: Any, x: Any) -> Any:
        """Sum of ``x`` (..., D) over each unit's block: (..., units); unassigned coordinates dropped."""
        return xp.segment_sum(x, np.maximum(self.units, 0), self.n_units)

    def sample(self, xp: Any, params: dict[str, Any], eps: Any) -> Any:
        self._check_bound()
        d = static_length(params["mu"])
        s = xp.softplus(params["rho"])
        shared = xp.moveaxis(xp.moveaxis(eps[..., d:], -1, 0)[np.maximum(self.units, 0)], 0, -1)
        return params["mu"] + s * eps[..., :d] + self._v(params) * shared

    def entropy(self, xp: Any, params: dict[str, Any]) -> Any:
        s = xp.softplus(params["rho"])
        a = self._v(params) / s
        return (xp.sum(xp.log(s)) + 0.5 * xp.sum(xp.log(1.0 + self._block_sum(xp, a * a)))
                + params["rho"].shape[0] * HALF_LOG_2PI_E)

    def log_density(self, xp: Any, params: dict[str, Any], theta: Any) -> Any:
        s = xp.softplus(params["rho"])
        a = self._v(params) / s
        r = (theta - params["mu"]) / s
        norms = 1.0 + self._block_sum(xp, a * a)
        quad = xp.sum(r * r, axis=-1) - xp.sum(self._block_sum(xp, a * r) ** 2 / norms, axis=-1)
        log_det = xp.sum(xp.log(s)) + 0.5 * xp.sum(xp.log(norms))
        return -0.5 * quad - log_det - params["rho"].shape[0] * HALF_LOG_2PI

    def marginal_var(self, xp: Any, params: dict[str, Any]) -> Any:
        s = xp.softplus(params["rho"])
        v = self._v(params)
        return s * s + v * v
