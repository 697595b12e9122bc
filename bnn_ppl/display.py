"""Readable text and HTML summaries of a :class:`~bnn_ppl.Network` and a :class:`~bnn_ppl.FitResult`.

Pure Python (no numpy, pymc or pytensor): the spec layer calls it for its reprs and must stay
free of backends. ``Network.__repr__``/``_repr_html_`` and ``FitResult.__repr__``/
``_repr_html_`` are thin wrappers around these functions.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

__all__ = ["network_rows", "network_summary", "network_text", "network_html", "fit_text", "fit_html"]

_COLUMNS = ("layer", "kind", "output", "activation", "params", "prior", "bias prior")
_COUNT = _COLUMNS.index("params")
_TABLE = 'style="border-collapse:collapse;text-align:left;font-family:monospace;font-size:90%"'
_CELL = 'style="padding:1px 10px;text-align:left"'


def _shape(shape: Any) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def network_rows(network: Any) -> list[tuple[str, ...]]:
    """One row per layer: name, kind, output shape, activation, parameter count, priors.

    Output shapes and counts show as ``?`` while the spec's input shape is unset (except
    where a layer fixes its own output, as ``Dense`` does).
    """
    resolved = network.resolve() if network.input_shape is not None else None
    rows = []
    for i, (layer, name) in enumerate(zip(network.layers, network.layer_names(), strict=True)):
        if resolved is not None:
            placed = resolved[i]
            out, count = _shape(placed.out_shape), f"{placed.n_params:,}"
            roles = {p.role: p.prior for p in placed.params}
        else:
            fixed = layer.fixed_output_shape()
            out, count = (_shape(fixed) if fixed else "?"), "?"
            roles = None
        prior = getattr(layer, "prior", None) or network.prior
        bias_prior = getattr(layer, "bias_prior", None) or network.bias_prior
        if roles is not None:  # a normalisation layer's scale prior stands in the weight prior's column
            prior, bias_prior = roles.get("weight", roles.get("scale")), roles.get("bias")
        elif not hasattr(layer, "prior"):
            prior = bias_prior = None
            if hasattr(layer, "scale_prior"):  # normalisation: shift priors default to the network's bias prior
                prior, bias_prior = layer.scale_prior, layer.shift_prior or network.bias_prior
        elif not getattr(layer, "bias", True):
            bias_prior = None
        has_params = roles is None or bool(roles)
        rows.append((
            name, layer.kind, out, layer.activation_name or "-", count,
            repr(prior) if prior is not None else "-",
            repr(bias_prior) if bias_prior is not None else ("no bias" if has_params else "-"),
        ))
    return rows


def _headline(network: Any) -> str:
    shape = network.input_shape
    if shape is None:
        return f"{network.likelihood!r}, ? parameters (input shape unset)"
    widths = [" x ".join(map(str, shape))]
    widths += [" x ".join(map(str, layer.out_shape)) for layer in network.resolve()]
    return f"{' -> '.join(widths)}, {network.likelihood!r}, {network.n_params():,} parameters"


def network_summary(network: Any) -> str:
    """One line: the shapes through the network, the likelihood and the parameter count."""
    return _headline(network)


def network_text(network: Any) -> str:
    """A multi-line summary: the headline and an aligned table of layers.

    Examples
    --------
    >>> from bnn_ppl.spec import Bernoulli, Dense, Network, Normal
    >>> print(network_text(Network([Dense(5), Dense(1, "identity")], Bernoulli(), prior=Normal(1.0), input_dim=2)))
    Network('network': 2 -> 5 -> 1, Bernoulli(), 21 parameters)
      layer    kind   output  activation  params  prior                      bias prior
      dense_0  dense  (5,)    tanh            15  Normal(sigma=1.0, mu=0.0)  Normal(sigma=1.0, mu=0.0)
      dense_1  dense  (1,)    identity         6  Normal(sigma=1.0, mu=0.0)  Normal(sigma=1.0, mu=0.0)
    """
    rows = [_COLUMNS, *network_rows(network)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = [f"Network({network.name!r}: {_headline(network)})"]
    for row in rows:
        cells = [cell.rjust(w) if i == _COUNT else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def _html_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    head = "".join(f"<th {_CELL}>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td {_CELL}>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table {_TABLE}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def network_html(network: Any) -> str:
    """The same summary as :func:`network_text` as an HTML table (for Jupyter)."""
    title = f"<b>Network {escape(repr(network.name))}</b>: {escape(_headline(network))}"
    return f"<div>{title}{_html_table(_COLUMNS, network_rows(network))}</div>"


def _seconds(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f} s"


def _fit_facts(result: Any) -> list[tuple[str, str]]:
    built = result.built
    data = f"{built.n_obs:,} rows" + (f", minibatches of {built.batch_size}" if built.batch_size else ", full batch")
    timings = result.timings
    status = "interrupted" if result.interrupted else "finished"
    return [
        ("method", _method(result)),
        ("engine", f"{result.engine} (backend {result.backend})"),
        ("steps", f"{result.n_steps:,} ({status})"),
        ("final loss", f"{result.final_loss:,.2f} (mean -ELBO of the last steps, nats)"),
        ("time", f"{_seconds(timings.get('total_s'))} total: setup {_seconds(timings.get('setup_s'))}, "
                 f"compile {_seconds(timings.get('compile_s'))}, fit {_seconds(timings.get('fit_s'))}"),
        ("data", data),
        ("random seed", str(result.random_seed)),
    ]


def fit_text(result: Any) -> str:
    """A multi-line summary of a fit: how it ran, the final loss, timings, then the network."""
    facts = _fit_facts(result)
    width = max(len(key) for key, _ in facts)
    lines = [f"FitResult({result.spec.name!r}: {result.family.label()}, {result.n_steps:,} steps, final loss {result.final_loss:,.2f})"]
    lines += [f"  {key.ljust(width)}  {value}" for key, value in facts]
    lines += ["  " + line for line in network_text(result.spec).splitlines()]
    return "\n".join(lines)


def fit_html(result: Any) -> str:
    """:func:`fit_text` as HTML tables (for Jupyter)."""
    facts = "".join(
        f"<tr><th {_CELL}>{escape(key)}</th><td {_CELL}>{escape(value)}</td></tr>" for key, value in _fit_facts(result)
    )
    title = f"<b>FitResult</b> {escape(repr(result.spec.name))}"
    return f"<div>{title}<table {_TABLE}><tbody>{facts}</tbody></table>{network_html(result.spec)}</div>"


def _method(result: Any) -> str:
    """``lowrank_advi(rank=8) (Adam, learning rate 0.01), ensemble of 8, 4 draws per step``."""
    text = f"{result.family.label()} (Adam, learning rate {_schedule(result)})"
    if result.members > 1:
        text += f", ensemble of {result.members}"
    if result.mc_draws > 1:
        text += f", {result.mc_draws} draws per step"
    elbo = getattr(result, "elbo", None)
    if elbo is not None and not elbo.is_default:
        text += f", ELBO {elbo.label()}"
    return text


def _schedule(result: Any) -> str:
    """``0.01`` for a constant step size, ``0.01 -> 0.0001 (cosine, 2nd half)`` for a decayed one."""
    lr, floor = result.learning_rate, getattr(result, "lr_floor", 1.0)
    return f"{lr:g}" if floor == 1.0 else f"{lr:g} -> {lr * floor:g} (cosine, 2nd half)"
