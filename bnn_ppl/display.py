"""Readable text and HTML summaries of a :class:`~bnn_ppl.Network` and a :class:`~bnn_ppl.FitResult`.

Pure Python (no numpy, pymc or pytensor): the spec layer calls it for its reprs and must stay
free of backends. ``Network.__repr__``/``_repr_html_`` and ``FitResult.__repr__``/
``_repr_html_`` are thin wrappers around these functions.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

__all__ = ["network_rows", "network_text", "network_html", "fit_text", "fit_html"]

_COLUMNS = ("layer", "shape", "activation", "params", "prior", "bias prior")
_TABLE = 'style="border-collapse:collapse;text-align:left;font-family:monospace;font-size:90%"'
_CELL = 'style="padding:1px 10px;text-align:left"'


def network_rows(network: Any) -> list[tuple[str, str, str, str, str, str]]:
    """One row per layer: name, weight shape, activation, parameter count, priors.

    The first layer's fan-in (and so its shape and count) shows as ``?`` while the spec's
    ``input_dim`` is unset.
    """
    rows = []
    fan_in: int | None = network.input_dim
    for layer, name in zip(network.layers, network.layer_names(), strict=True):
        prior = layer.prior or network.prior
        bias_prior = (layer.bias_prior or network.bias_prior) if layer.bias else None
        if fan_in is None:
            shape, count = f"(?, {layer.units})", "?"
        else:
            shape = f"({fan_in}, {layer.units})"
            count = f"{fan_in * layer.units + (layer.units if layer.bias else 0):,}"
        rows.append((name, shape, layer.activation, count, repr(prior), repr(bias_prior) if bias_prior else "no bias"))
        fan_in = layer.units
    return rows


def _headline(network: Any) -> str:
    widths = [str(network.input_dim) if network.input_dim is not None else "?"]
    widths += [str(layer.units) for layer in network.layers]
    total = f"{network.n_params():,} parameters" if network.input_dim is not None else "? parameters (input_dim unset)"
    return f"{' -> '.join(widths)}, {network.likelihood!r}, {total}"


def network_text(network: Any) -> str:
    """A multi-line summary: the headline and an aligned table of layers.

    Examples
    --------
    >>> from bnn_ppl.spec import Bernoulli, Dense, Network, Normal
    >>> print(network_text(Network([Dense(5), Dense(1, "identity")], Bernoulli(), prior=Normal(1.0), input_dim=2)))
    Network('network': 2 -> 5 -> 1, Bernoulli(), 21 parameters)
      layer    shape   activation  params  prior                      bias prior
      dense_0  (2, 5)  tanh            15  Normal(sigma=1.0, mu=0.0)  Normal(sigma=1.0, mu=0.0)
      dense_1  (5, 1)  identity         6  Normal(sigma=1.0, mu=0.0)  Normal(sigma=1.0, mu=0.0)
    """
    rows = [_COLUMNS, *network_rows(network)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = [f"Network({network.name!r}: {_headline(network)})"]
    for row in rows:
        cells = [cell.rjust(w) if i == 3 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
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
        ("method", f"{result.method} (Adam, learning rate {_schedule(result)})"),
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
    lines = [f"FitResult({result.spec.name!r}: {result.method}, {result.n_steps:,} steps, final loss {result.final_loss:,.2f})"]
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


def _schedule(result: Any) -> str:
    """``0.01`` for a constant step size, ``0.01 -> 0.0001 (cosine, 2nd half)`` for a decayed one."""
    lr, floor = result.learning_rate, getattr(result, "lr_floor", 1.0)
    return f"{lr:g}" if floor == 1.0 else f"{lr:g} -> {lr * floor:g} (cosine, 2nd half)"
