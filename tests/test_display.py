"""Readable text/HTML reprs of Network and FitResult, and the progress bar."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

import bnn_ppl as bp
from bnn_ppl.display import network_rows
from bnn_ppl.inference.progress import Progress


def test_network_repr_is_a_layer_table_and_equality_still_holds(moons_spec):
    text = repr(moons_spec)
    assert text.splitlines() == [
        "Network('moons': 2 -> 5 -> 5 -> 1, Bernoulli(), 51 parameters)",
        "  layer    kind   output  activation  params  prior                      bias prior",
        "  dense_0  dense  (5,)    tanh            15  Normal(sigma=1.0, mu=0.0)  Normal(sigma=1.0, mu=0.0)",
        "  dense_1  dense  (5,)    tanh            30  Normal(sigma=1.0, mu=0.0)  Normal(sigma=1.0, mu=0.0)",
        "  dense_2  dense  (1,)    identity         6  Normal(sigma=1.0, mu=0.0)  Normal(sigma=1.0, mu=0.0)",
    ]
    assert moons_spec == bp.load_spec("models/moons.toml")
    assert moons_spec != bp.load_spec("models/digits.toml")
    assert sum(int(row[4]) for row in network_rows(moons_spec)) == moons_spec.n_params()


def test_network_repr_without_input_dim_and_without_bias():
    net = bp.Network([bp.Dense(3, name="hidden"), bp.Dense(4, "identity", bias=False)], bp.Categorical(4))
    rows = network_rows(net)
    assert rows[0][:5] == ("hidden", "dense", "(3,)", "tanh", "?")
    assert rows[1][2] == "(4,)" and rows[1][6] == "no bias"
    assert "? parameters (input shape unset)" in repr(net)


def test_a_normalisation_layers_scale_prior_is_shown():
    scale = bp.Normal(0.3, mu=1.0)
    net = bp.Network([bp.Dense(3), bp.LayerNorm(scale_prior=scale), bp.Dense(1, "identity")], bp.Bernoulli())
    for spec in (net, net.with_input_dim(2)):  # unresolved and resolved
        assert network_rows(spec)[1][5:] == (repr(scale), repr(bp.Normal(1.0)))


def test_network_repr_of_a_convnet_shows_every_shape():
    net = bp.Network([bp.Conv2D(4, 3), bp.MaxPool2D(2), bp.Flatten(), bp.Dense(2, "identity")], bp.Categorical(2),
                     input_shape=(1, 8, 8))
    rows = network_rows(net)
    assert [row[:3] for row in rows] == [("conv_0", "conv2d", "(4, 6, 6)"), ("maxpool_0", "max_pool2d", "(4, 3, 3)"),
                                         ("flatten_0", "flatten", "(36,)"), ("dense_0", "dense", "(2,)")]
    assert [row[4] for row in rows] == ["40", "0", "0", "74"] and rows[1][5:] == ("-", "-")
    assert "1 x 8 x 8 -> 4 x 6 x 6 -> 4 x 3 x 3 -> 36 -> 2" in repr(net)


def test_network_html_escapes_and_lists_every_layer(moons_spec):
    html = moons_spec._repr_html_()
    assert html.count("<tr>") == 1 + 3  # header + one row per layer
    for name in ("dense_0", "dense_1", "dense_2", "(5,)", "51 parameters"):
        assert name in html
    with pytest.raises(bp.SpecError, match="'name'"):
        bp.Network([bp.Dense(1, "identity")], bp.Bernoulli(), name="<script>")


@pytest.fixture(scope="module")
def small_fit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    net = bp.Network([bp.Dense(2), bp.Dense(1, "identity")], bp.Bernoulli(), name="tiny")
    return bp.fit(bp.build_model(net, X, y, batch_size=10), n=300, method="advi", random_seed=0, progressbar=False)


def test_fit_result_repr_and_html(small_fit):
    text = repr(small_fit)
    lines = text.splitlines()
    assert lines[0] == f"FitResult('tiny': advi, 300 steps, final loss {small_fit.final_loss:,.2f})"
    assert f"engine       {small_fit.engine} (backend {small_fit.backend})" in text
    assert "steps        300 (finished)" in text
    assert "40 rows, minibatches of 10" in text
    assert f"{small_fit.timings['total_s']:.2f} s total" in text
    assert "Network('tiny': 2 -> 2 -> 1, Bernoulli(), 9 parameters)" in text
    html = small_fit._repr_html_()
    assert "<table" in html and f"{small_fit.final_loss:,.2f}" in html and "300 (finished)" in html
    assert "array(" not in text  # the losses and the model are not dumped


def test_progress_draws_final_state_in_a_terminal():
    out = io.StringIO()
    bar = Progress(1000, enabled=True, console=Console(file=out, force_terminal=False, width=100))
    for done in range(250, 1001, 250):
        bar.update(done, loss=1234.5678 / done)
    bar.close()
    bar.close()  # idempotent
    text = out.getvalue()
    assert "1000/1000" in text and "loss = 1.235" in text
    assert bar.steps_done == 1000 and bar.loss == pytest.approx(1.2345678)


def test_progress_in_jupyter_updates_one_display(monkeypatch):
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(obj._repr_mimebundle_(include=[], exclude=[])["text/plain"])

    def fake_display(obj, display_id=False):
        assert display_id is True
        shown.append(obj._repr_mimebundle_(include=[], exclude=[])["text/plain"])
        return Handle()

    monkeypatch.setattr("IPython.display.display", fake_display)
    bar = Progress(400, enabled=True, console=Console(force_jupyter=True, width=100))
    bar.update(200, 5.0)
    bar.update(400, 2.5)
    bar.close()
    assert "0/400" in shown[0] and "loss = ..." in shown[0]
    assert "400/400" in shown[-1] and "loss = 2.5" in shown[-1]


def test_disabled_progress_prints_nothing(capsys):
    bar = Progress(10, enabled=False)
    bar.update(10, 1.0)
    bar.close()
    assert capsys.readouterr().out == "" and bar.steps_done == 0
