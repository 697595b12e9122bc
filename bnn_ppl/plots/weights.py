"""Per-layer weight posteriors through ArviZ (``arviz_plots``), with the layers' named dims."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from bnn_ppl.arviz import LAYERS_ATTR, layer_params, posterior_group
from bnn_ppl.errors import DataError
from bnn_ppl.predictive.predictor import check_draws
from bnn_ppl.seeds import check_seed

__all__ = ["WEIGHT_PLOTS", "plot_weights", "weight_var_names"]

#: ``kind`` -> arviz_plots function name.
WEIGHT_PLOTS = {"trace": "plot_trace_dist", "forest": "plot_forest"}
#: Extra posterior variables a prior adds beside a parameter (hierarchical and horseshoe scales).
_PRIOR_SUFFIXES = ("", "_scale")


def weight_var_names(posterior: Any, layer_params: dict[str, list[str]], layers: Sequence[str] | None = None) -> list[str]:
    """Posterior variables of the chosen layers (all when None), in layer order.

    ``layer_params`` maps each layer to its parameter variables (``dense_0_w``, ``conv_0_b``, ...).
    The non-centred helpers (``*_raw``) of hierarchical priors are left out: ``*_w`` is the weight.
    """
    if isinstance(layers, str):
        layers = [layers]
    chosen = list(layer_params) if layers is None else list(layers)
    unknown = [name for name in chosen if name not in layer_params]
    if unknown:
        raise DataError(f"The 'layers' parameter names unknown layers {unknown}. Choose from {list(layer_params)}.")
    return [f"{var}{suffix}" for layer in chosen for var in layer_params[layer] for suffix in _PRIOR_SUFFIXES
            if f"{var}{suffix}" in posterior]


def _posterior(source: Any, draws: int, random_seed: int | None) -> tuple[Any, dict[str, list[str]]]:
    """A DataTree with a posterior group, and the network's layers with their parameter variables."""
    if hasattr(source, "posterior") and hasattr(source, "built"):
        draws = check_draws(draws, "plot_weights")
        dt = xr.DataTree()
        dt["posterior"] = posterior_group(source, draws, np.random.default_rng(check_seed(random_seed, "plot_weights",
                                                                                          generator=True)))
        return dt, layer_params(source.built.layers)
    if hasattr(source, "children") and "posterior" in source.children:
        stored = source["posterior"].attrs.get(LAYERS_ATTR)
        if stored:
            return source, json.loads(stored)
        names = sorted({str(v)[: -len("_w")] for v in source["posterior"].data_vars if str(v).endswith("_w")})
        return source, {name: [f"{name}_w", f"{name}_b"] for name in names}
    raise DataError(
        f"plot_weights needs a FitResult or an ArviZ DataTree with a posterior group. Got {type(source).__name__}."
    )


def plot_weights(
    source: Any,
    kind: str = "trace",
    layers: Sequence[str] | None = None,
    *,
    draws: int = 500,
    random_seed: int | None = None,
    coords: dict[str, Any] | None = None,
    max_values: int = 400,
    **kwargs: Any,
) -> Any:
    """Posterior of each layer's weights and biases (and hierarchical scales) with ArviZ.

    Parameters
    ----------
    source : FitResult or xarray.DataTree
        A fit (``draws`` posterior draws are taken from its approximation) or a DataTree
        from :meth:`FitResult.to_datatree`.
    kind : {"trace", "forest"}
        ``arviz_plots.plot_trace_dist`` (one panel per variable, every element overlaid) or
        ``arviz_plots.plot_forest`` (one row per element, labelled by its dims such as
        ``dense_0_in``/``dense_0_out`` or ``conv_0_out``/``conv_0_in``/``conv_0_kh``/``conv_0_kw``).
    layers : sequence of str, optional
        Layer names (``"dense_0"``, ``"conv_0"``, ...); all layers with parameters when None.
    draws : int
        Posterior draws taken from a FitResult.
    random_seed : int, optional
    coords : dict, optional
        Element selection by dim, e.g. ``{"dense_0_out": [0, 1]}``.
    max_values : int
        Refuse to draw more scalar parameters than this (a 64x32 layer is 2048); pick layers or
        coords instead.
    **kwargs
        Passed to the arviz_plots function (``plot_collection=``, ``backend=``, ...).

    Returns
    -------
    arviz_plots.PlotCollection
        ``.savefig(path)`` writes it; ``.viz`` holds the figure and artists.

    Examples
    --------
    >>> pc = plot_weights(result, kind="forest", layers=["dense_1"], draws=100, random_seed=0)
    >>> type(pc).__name__
    'PlotCollection'
    """
    if kind not in WEIGHT_PLOTS:
        raise DataError(f"The 'kind' parameter of plot_weights must be one of {list(WEIGHT_PLOTS)}. Got {kind!r} instead.")
    dt, params = _posterior(source, draws, random_seed)
    posterior = dt["posterior"].to_dataset()
    var_names = weight_var_names(posterior, params, layers)
    selected = posterior[var_names]
    if coords:
        unknown = [dim for dim in coords if dim not in selected.dims]
        if unknown:
            raise DataError(f"coords names dims {unknown} that the chosen layers lack. Their dims: {sorted(map(str, selected.dims))}.")
        try:
            selected = selected.sel(coords)
        except KeyError as err:
            valid = {dim: selected[dim].values.tolist() for dim in coords if dim in selected.coords}
            raise DataError(f"coords asks for values the dims lack ({err}); their values: {valid}.") from None
    n_values = sum(math.prod(s for d, s in da.sizes.items() if d not in ("chain", "draw")) for da in selected.data_vars.values())
    if n_values > max_values:
        raise DataError(
            f"plot_weights would draw {n_values} parameters of {var_names}, more than max_values={max_values}. "
            "Choose layers=[...] or coords={'<layer>_out': [0, 1]}, or raise max_values."
        )
    import arviz_plots as azp

    plot = getattr(azp, WEIGHT_PLOTS[kind])
    return plot(dt, var_names=var_names, coords=coords, **kwargs)
