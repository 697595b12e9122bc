"""Full-rank Gaussian: ``theta = mu + L eps`` with a lower-triangular ``L`` (PyMC's ``FullRank``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bnn_ppl.errors import ParameterError
from bnn_ppl.inference.families._base import HALF_LOG_2PI, HALF_LOG_2PI_E, Family, static_length
from bnn_ppl.inference.init import inverse_softplus

__all__ = ["FullRank", "MAX_FULLRANK_PARAMS"]

#: Full-rank q stores D (D + 1) / 2 numbers and costs O(D^2) per step; refuse past this D.
MAX_FULLRANK_PARAMS = 5_000


def _tril_index(d: int) -> tuple[np.ndarray, np.ndarray]:
    """A (d, d) gather index into ``[0, *L_tril]`` (0 above the diagonal) and the diagonal mask.

    Advanced indexing with a constant index builds ``L`` the same way in numpy, JAX and PyTensor.
    """
    index = np.zeros((d, d), dtype=np.int64)
    rows, cols = np.tril_indices(d)
    index[rows, cols] = np.arange(1, rows.size + 1)
    return index, np.eye(d, dtype=bool)


@dataclass(frozen=True)
class FullRank(Family):
    """``q(theta) = N(mu, L L^T)``, ``L`` lower triangular with a softplus diagonal, as PyMC.

    The parameter ``L_tril`` is PyMC's: the row-major lower triangle of ``L`` whose diagonal
    entries pass through softplus. Captures every correlation (moons 2-5-1: test log predictive
    density -0.192 nats/row, NUTS -0.193) but needs D (D + 1) / 2 parameters and O(D^2) work
    per step, so it is refused past ``MAX_FULLRANK_PARAMS`` parameters.
    """

    name = "fullrank_advi"
    pymc_group = "FullRank"
    param_names = ("mu", "L_tril")

    def param_shapes(self, d: int) -> dict[str, tuple[int, ...]]:
        return {"mu": (d,), "L_tril": (d * (d + 1) // 2,)}

    def check_size(self, d: int) -> None:
        if d > MAX_FULLRANK_PARAMS:
            raise ParameterError(
                f"method='fullrank_advi' needs {d * (d + 1) // 2:,} covariance parameters for this network's "
                f"{d:,} parameters (limit {MAX_FULLRANK_PARAMS:,} parameters). Use method='lowrank_advi' "
                "(bp.LowRank(rank=...)), which scales linearly."
            )

    def initial_params(self, mu: np.ndarray, init_sigma: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        d = mu.size
        tril = np.zeros((d, d))
        tril[np.diag_indices(d)] = float(inverse_softplus(init_sigma))
        return {"mu": np.asarray(mu, dtype=float), "L_tril": tril[np.tril_indices(d)]}

    @property
    def engine_names(self) -> tuple[str, ...]:
        return ("mu", "L")

    def to_engine(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # The loops optimise a dense (d, d) matrix whose upper triangle is masked out: building L
        # from the packed triangle is a gather whose gradient is a scatter, 11x slower per step in
        # XLA on CPU (131 vs 12 us at d = 101; 1,982 vs 179 us at d = 301).
        packed = np.asarray(values["L_tril"])
        d = np.asarray(values["mu"]).shape[-1]
        rows, cols = np.tril_indices(d)
        dense = np.zeros((*packed.shape[:-1], d, d), dtype=packed.dtype)
        dense[..., rows, cols] = packed
        return {"mu": values["mu"], "L": dense}

    def from_engine(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        dense = np.asarray(values["L"])
        rows, cols = np.tril_indices(dense.shape[-1])
        return {"mu": values["mu"], "L_tril": dense[..., rows, cols]}

    def step_scales(self, d: int) -> dict[str, np.ndarray]:
        # Adam moves every entry ~learning_rate per step whatever its gradient: the d - 1
        # off-diagonal entries of a row then random-walk together and the row's variance grows
        # ~d times faster than through the diagonal (1-50-1 regression, 151 parameters: -ELBO
        # 286 -> 4.7e14 at learning rate 0.01). Scaling their steps by 1/sqrt(d) keeps a row's
        # total change on the diagonal's scale.
        return {"L": np.where(np.eye(d, dtype=bool), 1.0, 1.0 / np.sqrt(d))}

    def cholesky(self, xp: Any, params: dict[str, Any]) -> Any:
        """The factor ``L`` (d, d), from the packed ``L_tril`` or the engines' dense ``L``."""
        d = static_length(params["mu"])
        eye = np.eye(d, dtype=bool)
        if "L" in params:
            # softplus on the d diagonal entries only, not on all d^2 (moons 2-5-5-1, d = 51: the
            # default fit went from ~11.5k to ~18k steps/s)
            dense = params["L"]
            diagonal = xp.softplus(xp.sum(dense * eye, axis=-1))
            return dense * np.tril(np.ones((d, d)), -1) + eye * diagonal[..., None]
        index, diag = _tril_index(d)
        packed = params["L_tril"]
        raw = xp.concatenate([packed[:1] * 0, packed])[index]
        return xp.where(diag, xp.softplus(raw), raw)

    def sample(self, xp: Any, params: dict[str, Any], eps: Any) -> Any:
        L = self.cholesky(xp, params)
        return params["mu"] + xp.matmul(eps, xp.moveaxis(L, -1, -2))

    def entropy(self, xp: Any, params: dict[str, Any]) -> Any:
        d = static_length(params["mu"])
        if "L" in params:
            diagonal = xp.sum(params["L"] * np.eye(d), axis=-1)
        else:
            index, _ = _tril_index(d)
            diagonal = params["L_tril"][index[np.diag_indices(d)] - 1]
        return xp.sum(xp.log(xp.softplus(diagonal))) + d * HALF_LOG_2PI_E

    def log_density(self, xp: Any, params: dict[str, Any], theta: Any) -> Any:
        L = self.cholesky(xp, params)
        d = static_length(params["mu"])
        centred = xp.moveaxis(theta - params["mu"], -1, 0)  # (D, ...) for the triangular solve
        lead = tuple(centred.shape[i] for i in range(1, centred.ndim))
        z = xp.solve_lower(L, centred.reshape((d, -1)))
        log_diag = xp.sum(xp.log(xp.sum(L * np.eye(d), axis=-1)))
        return (-0.5 * xp.sum(z * z, axis=0)).reshape(lead) - log_diag - d * HALF_LOG_2PI

    def marginal_var(self, xp: Any, params: dict[str, Any]) -> Any:
        L = self.cholesky(xp, params)
        return xp.sum(L * L, axis=-1)
