"""Low-rank plus diagonal Gaussian: ``Sigma = diag(s)^2 + W W^T`` with ``W`` of shape (D, rank)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bnn_ppl.errors import ParameterError
from bnn_ppl.inference.families._base import HALF_LOG_2PI, HALF_LOG_2PI_E, Family, static_length
from bnn_ppl.inference.init import inverse_softplus

__all__ = ["LowRank"]


@dataclass(frozen=True)
class LowRank(Family):
    """``q(theta) = N(mu, diag(softplus(rho))^2 + W W^T)``: (2 + rank) D parameters, O(D rank) per step.

    The ``rank`` columns of ``W`` carry the strongest correlations (in a BNN: a hidden unit's
    input weights with its output weights, which mean-field cannot express and which is why it
    switches units off); the diagonal keeps every coordinate's own spread. A draw is
    ``mu + s * eps_1 + W eps_2`` (D + rank standard normals); the entropy uses the matrix
    determinant lemma, ``log det Sigma = 2 sum log s + log det(I + (W/s)^T (W/s))``.

    Parameters
    ----------
    rank : int
        Columns of ``W`` (at least 1). Default 2, from bench/families.py: on moons 2-5-1 (5
        seeds) rank 2 and rank 8 both escaped mean-field's pruned optimum on some seeds only
        (median test log predictive density -0.180 and -0.309; NUTS -0.180), while on the
        784-256-10 workload rank 2 ran at 0.70x mean-field's steps/s and rank 8 at 0.35x (the
        entropy's ``W^T W`` costs D rank^2).

    Examples
    --------
    >>> import numpy as np
    >>> from bnn_ppl.array_ops import numpy_ops
    >>> q = LowRank(rank=2)
    >>> params = q.initial_params(np.zeros(4), 0.5, np.random.default_rng(0))
    >>> sigma = np.diag(np.logaddexp(0, params["rho"]) ** 2) + params["W"] @ params["W"].T
    >>> exact = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * sigma)[1]
    >>> bool(np.isclose(q.entropy(numpy_ops(), params), exact))
    True
    """

    rank: int = 2

    name = "lowrank_advi"
    param_names = ("mu", "rho", "W")

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, (int, np.integer)) or self.rank < 1:
            raise ParameterError(f"The 'rank' of LowRank must be a positive integer such as 8. Got {self.rank!r}.")
        object.__setattr__(self, "rank", int(self.rank))

    def check_size(self, d: int) -> None:
        if self.rank > d:  # columns beyond D add nothing a full covariance lacks, and cost rank^3 a step
            raise ParameterError(f"LowRank(rank={self.rank}) has more columns than the network's {d} parameters; use "
                                 f"a rank below {d}, or method='fullrank_advi' for a full covariance.")

    def param_shapes(self, d: int) -> dict[str, tuple[int, ...]]:
        return {"mu": (d,), "rho": (d,), "W": (d, self.rank)}

    def initial_params(self, mu: np.ndarray, init_sigma: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        # W = 0 is a stationary point (theta would not depend on eps_2, so its expected gradient
        # vanishes): start with small random columns carrying 1% of the initial variance.
        d = mu.size
        w = rng.standard_normal((d, self.rank)) * (0.1 * init_sigma / np.sqrt(self.rank))
        diag = np.sqrt(np.maximum(init_sigma**2 - np.sum(w**2, axis=1), (0.5 * init_sigma) ** 2))
        return {"mu": np.asarray(mu, dtype=float), "rho": inverse_softplus(diag), "W": w}

    def noise_size(self, d: int) -> int:
        return d + self.rank

    def sample(self, xp: Any, params: dict[str, Any], eps: Any) -> Any:
        d = static_length(params["mu"])
        s = xp.softplus(params["rho"])
        return params["mu"] + s * eps[..., :d] + xp.matmul(eps[..., d:], xp.moveaxis(params["W"], -1, -2))

    def entropy(self, xp: Any, params: dict[str, Any]) -> Any:
        s = xp.softplus(params["rho"])
        scaled = params["W"] / s[:, None]
        inner = xp.matmul(xp.moveaxis(scaled, -1, -2), scaled) + np.eye(self.rank)
        chol = xp.cholesky(inner)
        log_det_inner = 2.0 * xp.sum(xp.log(xp.sum(chol * np.eye(self.rank), axis=-1)))
        return xp.sum(xp.log(s)) + 0.5 * log_det_inner + params["rho"].shape[0] * HALF_LOG_2PI_E

    def log_density(self, xp: Any, params: dict[str, Any], theta: Any) -> Any:
        # Woodbury: r^T Sigma^-1 r = |r/s|^2 - |C^-1 (W/s)^T (r/s)|^2 with C C^T = I + (W/s)^T (W/s)
        s = xp.softplus(params["rho"])
        scaled = params["W"] / s[:, None]
        chol = xp.cholesky(xp.matmul(xp.moveaxis(scaled, -1, -2), scaled) + np.eye(self.rank))
        r = (theta - params["mu"]) / s  # (..., D)
        lead = tuple(r.shape[i] for i in range(r.ndim - 1))
        projected = xp.matmul(r, scaled).reshape((-1, self.rank))  # (draws, rank)
        u = xp.solve_lower(chol, xp.moveaxis(projected, -1, 0))
        quad = xp.sum(r * r, axis=-1) - xp.sum(u * u, axis=0).reshape(lead)
        log_det = xp.sum(xp.log(s)) + xp.sum(xp.log(xp.sum(chol * np.eye(self.rank), axis=-1)))
        return -0.5 * quad - log_det - params["rho"].shape[0] * HALF_LOG_2PI

    def marginal_var(self, xp: Any, params: dict[str, Any]) -> Any:
        s = xp.softplus(params["rho"])
        return s * s + xp.sum(params["W"] * params["W"], axis=-1)
