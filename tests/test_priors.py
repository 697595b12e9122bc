"""Prior families: log-densities against scipy.stats, validation errors, model files that fit."""

from __future__ import annotations

import warnings

import dataclasses
from pathlib import Path

import numpy as np
import pymc as pm
import pytensor
import pytest
from scipy import stats
from scipy.special import logsumexp

import bnn_ppl as bp
from bnn_ppl.compile.priors import PRIOR_BUILDERS, build_weights
from bnn_ppl.spec import PRIORS, spec_from_dict, spec_to_dict

MODELS = Path(__file__).resolve().parent.parent / "models"
FAMILY_FILES = sorted(MODELS.glob("*_moons.toml"))
FAN_IN = 3
SHAPE = (FAN_IN, 2)
FAST = "FAST_COMPILE"  # tiny graphs: skip numba compilation


def _prior_model(prior: bp.spec.Prior) -> tuple[pm.Model, dict[str, float]]:
    with pm.Model(coords={"i": range(SHAPE[0]), "o": range(SHAPE[1])}) as model:
        nodes = build_weights(prior, "w", ("i", "o"), FAN_IN)
    return model, nodes.init_scales


def _logp(model: pm.Model, **values: np.ndarray) -> float:
    """The model's log-density (no Jacobian) at constrained ``values`` keyed by RV name."""
    point = {}
    for rv in model.free_RVs:
        value_var = model.rvs_to_values[rv]
        x = np.asarray(values[rv.name], dtype=float)
        point[value_var.name] = np.log(x) if model.rvs_to_transforms.get(rv) is not None else x
    return float(model.compile_fn(model.logp(jacobian=False), mode=FAST)(point))


def _weights(model: pm.Model, point: dict[str, np.ndarray]) -> np.ndarray:
    """The deterministic weight tensor ``w`` at a point of value variables."""
    [w] = model.replace_rvs_by_values([model["w"]])
    fn = pytensor.function(model.value_vars, w, mode=FAST, on_unused_input="ignore")
    return fn(*[point[v.name] for v in model.value_vars])


W = np.array([[0.3, -1.2], [0.05, 2.1], [-0.7, 0.4]])


@pytest.mark.parametrize(
    ("prior", "expected"),
    [
        (bp.Normal(0.8, mu=0.2), stats.norm(0.2, 0.8).logpdf(W).sum()),
        (bp.FanInNormal(1.5), stats.norm(0, 1.5 / np.sqrt(FAN_IN)).logpdf(W).sum()),
        (bp.Laplace(0.5), stats.laplace(0, 0.5).logpdf(W).sum()),
        (bp.StudentT(3.0, 0.7), stats.t(3.0, 0, 0.7).logpdf(W).sum()),
        (
            bp.ScaleMixture(1.0, 0.1, 0.3),
            logsumexp(
                [np.log(0.3) + stats.norm(0, 1.0).logpdf(W), np.log(0.7) + stats.norm(0, 0.1).logpdf(W)], axis=0
            ).sum(),
        ),
        (
            # NIG marginal: multivariate t, df 2 alpha0, shape (beta0/alpha0)(I + 11'/kappa0).
            bp.Conjugate(mu0=0.3, kappa0=2.0, alpha0=3.0, beta0=1.5),
            stats.multivariate_t(
                loc=np.full(W.size, 0.3), shape=1.5 / 3.0 * (np.eye(W.size) + 1.0 / 2.0), df=6.0
            ).logpdf(W.ravel()),
        ),
        (
            bp.ConjugateKnownMean(mean=0.1, alpha0=2.5, beta0=0.7),
            stats.multivariate_t(loc=np.full(W.size, 0.1), shape=0.7 / 2.5 * np.eye(W.size), df=5.0).logpdf(
                W.ravel()
            ),
        ),
    ],
    ids=lambda p: getattr(p, "kind", ""),
)
def test_fixed_and_marginalised_logp_match_scipy(prior, expected):
    model, _ = _prior_model(prior)
    assert [rv.name for rv in model.free_RVs] == ["w"]
    assert _logp(model, w=W) == pytest.approx(expected, rel=1e-8)


def test_conjugate_single_weight_is_student_t():
    prior = bp.Conjugate(mu0=-0.2, kappa0=0.5, alpha0=1.5, beta0=2.0)
    with pm.Model():
        build_weights(prior, "b", (), 4)
        model = pm.modelcontext(None)
    scale = np.sqrt(2.0 * (0.5 + 1.0) / (1.5 * 0.5))
    assert _logp(model, b=np.array(0.9)) == pytest.approx(stats.t(3.0, -0.2, scale).logpdf(0.9), rel=1e-10)


@pytest.mark.parametrize(
    ("hyperprior", "hyper_logpdf"),
    [
        ("half_normal", lambda t: stats.halfnorm(scale=1.5).logpdf(t)),
        ("half_cauchy", lambda t: stats.halfcauchy(scale=1.5).logpdf(t)),
        ("exponential", lambda t: stats.expon(scale=1.5).logpdf(t)),
    ],
)
@pytest.mark.parametrize("parametrization", ["centered", "non_centered"])
def test_hierarchical_logp_matches_scipy(hyperprior, hyper_logpdf, parametrization):
    prior = bp.Hierarchical(scale=1.5, hyperprior=hyperprior, parametrization=parametrization, fan_in=True)
    model, _ = _prior_model(prior)
    tau = 0.8
    if parametrization == "centered":
        expected = hyper_logpdf(tau) + stats.norm(0, tau / np.sqrt(FAN_IN)).logpdf(W).sum()
        assert _logp(model, w_scale=tau, w=W) == pytest.approx(expected, rel=1e-7)
    else:
        expected = hyper_logpdf(tau) + stats.norm(0, 1).logpdf(W).sum()
        assert _logp(model, w_scale=tau, w_raw=W) == pytest.approx(expected, rel=1e-7)
        point = {"w_scale_log__": np.log(tau), "w_raw": W}
        np.testing.assert_allclose(_weights(model, point), tau * W / np.sqrt(FAN_IN))


def test_hierarchical_scale_starts_at_the_initial_weight_spread():
    model, init = _prior_model(bp.Hierarchical(parametrization="centered", fan_in=True))
    tau0 = float(np.exp(model.initial_point()["w_scale_log__"]))
    assert tau0 / np.sqrt(FAN_IN) == pytest.approx(init["w"])


def test_horseshoe_starts_at_the_initial_weight_spread():
    from bnn_ppl.compile.priors import _init_scale

    model, init = _prior_model(bp.Horseshoe())
    point = model.initial_point()
    assert init == {"w_raw": 1.0}
    tau0 = float(np.exp(point["w_scale_log__"]))
    np.testing.assert_allclose(np.exp(point["w_local_log__"]), 1.0)
    # Slab aside, the weights' prior std at the start equals their initial spread.
    assert tau0 / np.sqrt(FAN_IN) == pytest.approx(_init_scale(FAN_IN))


def test_scale_mixture_starts_at_the_broad_component():
    _, init = _prior_model(bp.ScaleMixture(sigma1=0.6, sigma2=0.05, pi=0.2))
    assert init == {"w": 0.6}
    _, init = _prior_model(bp.ScaleMixture(sigma1=0.1, sigma2=3.0, pi=0.5))
    assert init == {"w": 1.0}  # capped at 1, like Normal(sigma)


def test_horseshoe_logp_and_weights_match_formula():
    prior = bp.Horseshoe(global_scale=0.5, slab_scale=2.0, slab_df=4.0)
    model, init = _prior_model(prior)
    assert init == {"w_raw": 1.0}
    tau, local, c2 = 0.3, np.array([0.5, 2.0, 0.1]), 3.0
    expected = (
        stats.halfcauchy(scale=0.5).logpdf(tau)
        + stats.halfcauchy(scale=1.0).logpdf(local).sum()
        + stats.invgamma(2.0, scale=4.0 * 2.0**2 / 2.0).logpdf(c2)
        + stats.norm.logpdf(W).sum()
    )
    assert _logp(model, w_scale=tau, w_local=local, w_slab=c2, w_raw=W) == pytest.approx(expected, rel=1e-7)
    point = {"w_scale_log__": np.log(tau), "w_local_log__": np.log(local), "w_slab_log__": np.log(c2), "w_raw": W}
    lt = np.sqrt(c2 * local**2 / (c2 + tau**2 * local**2))
    np.testing.assert_allclose(_weights(model, point), W * tau * lt[:, None] / np.sqrt(FAN_IN))


def test_conjugate_draws_share_mean_and_variance():
    prior = bp.Conjugate(mu0=0.0, kappa0=1.0, alpha0=4.0, beta0=3.0)
    model, _ = _prior_model(prior)
    with warnings.catch_warnings():  # numba may say (once per process) that it runs the draw in object mode
        warnings.filterwarnings("ignore", message=".*object mode.*", category=UserWarning)
        draws = pm.draw(model["w"], 4000, random_seed=0).reshape(4000, -1)
    var_s2 = 3.0 / (4.0 - 1.0)  # E[s2]
    cov = np.cov(draws[:, 0], draws[:, 1])
    assert cov[0, 0] == pytest.approx(var_s2 * (1 + 1 / 1.0), rel=0.15)
    assert cov[0, 1] == pytest.approx(var_s2 / 1.0, rel=0.2)  # shared mean: Cov = E[s2] / kappa0


def test_every_registered_prior_has_a_builder():
    assert {PRIORS.get(name) for name in PRIORS.names()} <= set(PRIOR_BUILDERS)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: bp.Conjugate(kappa0=-1.0), "The 'kappa0' parameter of Conjugate must be a positive number. Got -1.0"),
        (lambda: bp.Conjugate(mu0=float("nan")), "The 'mu0' parameter of Conjugate must be a finite number"),
        (lambda: bp.ConjugateKnownMean(beta0=0), "The 'beta0' parameter of ConjugateKnownMean must be a positive"),
        (lambda: bp.ScaleMixture(pi=1.0), "The 'pi' parameter of ScaleMixture must lie strictly between 0 and 1. Got 1.0"),
        (lambda: bp.ScaleMixture(pi=0), "The 'pi' parameter of ScaleMixture must lie strictly between 0 and 1. Got 0"),
        (lambda: bp.ScaleMixture(sigma2=-0.1), "The 'sigma2' parameter of ScaleMixture must be a positive number"),
        (lambda: bp.Laplace(b=0.0), "The 'b' parameter of Laplace must be a positive number. Got 0.0"),
        (lambda: bp.StudentT(nu=-3), "The 'nu' parameter of StudentT must be a positive number. Got -3"),
        (lambda: bp.StudentT(sigma="1"), "The 'sigma' parameter of StudentT must be a positive number. Got '1'"),
        (lambda: bp.Horseshoe(slab_df=0), "The 'slab_df' parameter of Horseshoe must be a positive number"),
        (lambda: bp.Horseshoe(slab_scale=1e200), "Horseshoe's slab rate slab_df"),
        (lambda: bp.Horseshoe().scaled(1e160), "Horseshoe's slab rate slab_df"),
        (lambda: bp.Hierarchical(parametrization="ncp"), "The 'parametrization' parameter of Hierarchical must be one of"),
        (lambda: bp.Hierarchical(fan_in=1), "The 'fan_in' parameter of Hierarchical must be true or false. Got 1"),
        (lambda: bp.Conjugate().scaled(1e200), "takes its width out of the floating-point range"),
    ],
)
def test_bad_hyperparameters_raise_spec_errors(make, message):
    with pytest.raises(bp.SpecError, match=message.replace("(", r"\(").replace(".", r"\.")):
        make()


def test_bad_hyperparameter_in_a_spec_file_names_the_field(tmp_path):
    text = (MODELS / "scale_mixture_moons.toml").read_text().replace("pi = 0.5", "pi = 1.5")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(bp.SpecError, match=r"bad\.toml: .*'pi' parameter of ScaleMixture .* Got 1\.5"):
        bp.load_spec(path)


def test_every_family_has_a_model_file():
    kinds = {bp.load_spec(path).prior.kind for path in FAMILY_FILES} | {"normal"}
    kinds |= {layer.prior.kind for path in FAMILY_FILES for layer in bp.load_spec(path).layers if layer.prior}
    assert kinds == set(PRIORS.names())


@pytest.mark.parametrize("path", FAMILY_FILES, ids=lambda p: p.stem)
def test_family_model_file_round_trips(path):
    spec = bp.load_spec(path)
    assert bp.spec.dumps_spec(spec) == path.read_text()
    assert spec_from_dict(spec_to_dict(spec)) == spec


@pytest.fixture(scope="module")
def small_moons(moons):
    X_train, _, y_train, _ = moons
    return X_train[:200], y_train[:200]


@pytest.mark.parametrize("path", FAMILY_FILES, ids=lambda p: p.stem)
def test_family_model_file_fits_without_nan(path, small_moons):
    spec = bp.load_spec(path)
    built = bp.build_model(spec, *small_moons)
    result = bp.fit(built, n=300, random_seed=0, progressbar=False)
    assert result.n_steps == 300
    assert np.all(np.isfinite(result.losses))
    assert result.losses[-50:].mean() < result.losses[:50].mean()


def test_layer_prior_overrides_the_network_prior(small_moons):
    spec = bp.load_spec(MODELS / "horseshoe_moons.toml")
    built = bp.build_model(dataclasses.replace(spec, name="x"), *small_moons)
    names = set(built.free_rv_names)
    assert {"dense_0_w_scale", "dense_0_w_local", "dense_0_w_raw"} <= names
    assert "dense_1_w" in names and "dense_1_w_raw" not in names
