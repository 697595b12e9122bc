"""The ``bnn-ppl`` command line: validate a spec, fit it on data, predict from a saved model.

Exit codes: 0 success, 1 the command failed (bad spec, data or model file, failed fit),
2 bad usage (unknown options or values), 130 a fit stopped by Ctrl-C (its partial results are
written and ``metrics.json`` says ``"interrupted": true``; a second Ctrl-C, or one before the fit
starts, stops at once and writes nothing). Errors are one line; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bnn_ppl.cli_csv import checked_and_standardised, checked_cli_meta, feature_columns, in_target_units
from bnn_ppl.errors import BnnPplError, ParameterError

__all__ = ["main", "build_parser"]

_PROG = "bnn-ppl"


class UsageError(BnnPplError, ValueError):
    """The command line itself is wrong (exit code 2)."""


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum`` (``what`` names it in the error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return value
    return parse


_positive_int = _int_at_least(1, "positive")
_seed = _int_at_least(0, "non-negative")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``bnn-ppl`` (subcommands validate, fit, predict)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
    parser = argparse.ArgumentParser(
        prog=_PROG, parents=[common],
        description="Bayesian neural networks from declarative specs: validate, fit, predict.",
        epilog="Exit codes: 0 success, 1 failure (spec, data, model file or fit), 2 bad usage, 130 interrupted fit.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", parents=[common], help="check a TOML/JSON spec file")
    p.add_argument("spec", metavar="SPEC", nargs="+", help="spec file(s) (.toml or .json)")

    p = sub.add_parser("fit", parents=[common], help="fit a spec on data; write metrics, model and plots")
    p.add_argument("spec", metavar="SPEC", help="spec file (.toml or .json)")
    p.add_argument("--data", default=None,
                   help="'moons', 'digits', 'synthetic_mnist' or FILE.csv (default: the spec's name if it is "
                        "one of the embedded sets, else moons)")
    p.add_argument("--target", default=None, help="CSV column with the targets (default: the last column)")
    p.add_argument("--out", default=None, help="output directory (default: runs/<spec name>)")
    p.add_argument("--steps", type=_positive_int, default=30_000, help="ADVI steps (default 30000)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed of the fit and the predictions (default 0)")
    p.add_argument("--engine", default="auto", choices=ENGINE_CHOICES,
                   help="ADVI engine: auto, jax, numba or pymc (default auto)")
    p.add_argument("--method", default="auto", choices=METHOD_CHOICES,
                   help="variational family: auto (full-rank up to 200 parameters, else mean-field), advi "
                        "(mean-field), fullrank_advi, lowrank_advi or unitrank_advi (default auto)")
    p.add_argument("--ensemble", type=_positive_int, default=1,
                   help="independent fits run together and mixed with equal weights (JAX engine; default 1)")
    p.add_argument("--kl", default="mc", choices=KL_CHOICES,
                   help="prior terms: mc (sampled, PyMC's ADVI objective) or closed_form (fixed Normal priors "
                        "in closed form); default mc")
    p.add_argument("--gradient", default="reparameterization", choices=GRADIENTS,
                   help="reparameterization (analytic entropy) or path (sticking the landing); "
                        "default reparameterization")
    p.add_argument("--kl-weight", type=_positive_float, default=1.0,
                   help="weight of the KL term: 1 is the ELBO, below 1 a tempered ('cold') posterior (default 1)")
    p.add_argument("--local-reparameterization", action="store_true",
                   help="sample each dense layer's pre-activations instead of its weights (mean-field, needs "
                        "--kl closed_form, JAX engine)")
    p.add_argument("--draws", type=_positive_int, default=500, help="posterior draws for predictions (default 500)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")

    p = sub.add_parser(
        "predict", parents=[common], help="predict a CSV file with a saved model",
        description="Predict the rows of a CSV file with a saved model. The CSV needs a header row holding the "
                    "model's feature columns: the names it was fitted with, stored in the model file (print them "
                    "with `bnn-ppl predict MODEL --columns`); other columns are ignored. Image models take one "
                    "column per pixel in C-order.",
    )
    p.add_argument("model", metavar="MODEL", help="model file written by `bnn-ppl fit` (model.bnn)")
    p.add_argument("csv", metavar="FILE.csv", nargs="?", help="inputs, with a header row")
    p.add_argument("--columns", action="store_true", help="print the feature columns MODEL expects and exit")
    p.add_argument("--out", default=None, help="output CSV (default: standard output)")
    p.add_argument("--draws", type=_positive_int, default=500, help="posterior draws (default 500)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed of the predictive draws (default 0)")
    return parser


#: ``--engine`` choices (the engine registry's names; a test keeps them in step without importing PyMC here).
ENGINE_CHOICES = ("auto", "jax", "numba", "pymc")
METHOD_CHOICES = ("auto", "advi", "fullrank_advi", "lowrank_advi", "unitrank_advi")
#: bnn_ppl.inference.estimator's KL_CHOICES and GRADIENTS (spelled out: --help imports no PyMC)
KL_CHOICES = ("mc", "closed_form")
GRADIENTS = ("reparameterization", "path")
#: Exit code of a fit stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def _write_atomic(path: Path, text: str) -> None:
    from bnn_ppl.spec.io import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"))


# ---------------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    """Check every spec file; one line each, exit 1 if any is invalid."""
    from bnn_ppl.display import network_summary
    from bnn_ppl.errors import BnnPplError
    from bnn_ppl.spec import load_spec

    failed = 0
    for path in args.spec:
        try:
            spec = load_spec(path)
        except BnnPplError as err:
            failed += 1
            print(f"{_PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
            continue
        print(f"{path}: valid. {spec.name}: {network_summary(spec)}.")
    return 1 if failed else 0


# ---------------------------------------------------------------------- fit
def _dataset(args: argparse.Namespace, spec: Any) -> tuple[Any, dict | None]:
    from bnn_ppl.datasets import DATASETS, load_dataset

    name = args.data or (spec.name if spec.name in DATASETS else "moons")
    if name not in DATASETS and not name.lower().endswith(".csv"):
        raise UsageError(f"--data must be one of {list(DATASETS)} or a path ending in .csv. Got {name!r}.")
    if args.target is not None and name in DATASETS:
        raise UsageError(f"--target only applies to CSV data; the embedded {name!r} data set has its own target.")
    task = "classification" if spec.likelihood.is_classifier else "regression"
    data = load_dataset(name, random_seed=0, target=args.target, task=task)
    if name in DATASETS:
        return data, None
    return checked_and_standardised(data, spec, name)


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as null: strict JSON (jq, JavaScript) has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _metrics(data: Any, predictor: Any, draws: int, seed: int, scaling: dict | None = None) -> dict[str, Any]:
    """Train and test scores; a regression's in the units of the CSV's target (``scaling``: fit's standardisation)."""
    import numpy as np

    out: dict[str, Any] = {}
    for split, X, y in (("train", data.X_train, data.y_train), ("test", data.X_test, data.y_test)):
        s = in_target_units(predictor.uncertainty(X, draws=draws, random_seed=seed), scaling)
        if not data.is_classification and scaling and "y_scale" in scaling:
            y = y * scaling["y_scale"] + scaling["y_mean"]
        if data.is_classification:
            p_true = np.clip(s.proba[np.arange(len(y)), y], 1e-12, 1.0)
            out[split] = {"rows": int(len(y)), "accuracy": float(np.mean(s.proba.argmax(1) == y)),
                          "log_loss": float(-np.mean(np.log(p_true))),
                          "mean_entropy": float(s.entropy.mean()),
                          "mean_mutual_information": float(s.mutual_information.mean())}
        else:
            resid = s.mean - y
            spread = float(np.sum((y - y.mean()) ** 2))
            out[split] = {"rows": int(len(y)), "rmse": float(np.sqrt(np.mean(resid**2))),
                          "r2": float(1.0 - np.sum(resid**2) / spread) if spread > 0 else None,  # constant y: none
                          "mean_predictive_std": float(s.std.mean())}
    return out


def _plots(out: Path, result: Any, data: Any, draws: int, seed: int) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bnn_ppl.plots import plot_decision_surface, plot_loss, plot_uncertainty_surface

    written = []
    ax = plot_loss(result)
    ax.figure.savefig(out / "loss.png", dpi=110, bbox_inches="tight")
    plt.close(ax.figure)
    written.append("loss.png")
    if data.X_train.shape[1] == 2:
        measure = "mutual_information" if data.is_classification else "std"
        for fname, draw in (("decision_surface.png", lambda: plot_decision_surface(
                                result, data.X_test, data.y_test, draws=draws, random_seed=seed)),
                            ("uncertainty_surface.png", lambda: plot_uncertainty_surface(
                                result, data.X_test, data.y_test, measure=measure, draws=draws, random_seed=seed))):
            ax = draw()
            ax.figure.savefig(out / fname, dpi=110, bbox_inches="tight")
            plt.close(ax.figure)
            written.append(fname)
    return written


def cmd_fit(args: argparse.Namespace) -> int:
    from bnn_ppl import ELBO, build_model, fit
    from bnn_ppl.io import save
    from bnn_ppl.spec import load_spec

    spec = load_spec(args.spec)
    data, scaling = _dataset(args, spec)
    out = Path(args.out or Path("runs") / spec.name)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out} is a file; give a directory for model.bnn, metrics.json and the plots.")
    built = build_model(spec, data.X_train, data.y_train, feature_names=data.feature_names,
                        class_names=data.class_names)
    print(f"Fitting {spec.name} ({built.spec.n_params()} parameters) on {data.name}: "
          f"{len(data.y_train)} training rows, {args.steps} steps.", flush=True)
    result = fit(built, n=args.steps, method=args.method, engine=args.engine, ensemble=args.ensemble,
                 elbo=ELBO(kl=args.kl, gradient=args.gradient, kl_weight=args.kl_weight,
                           local_reparameterization=args.local_reparameterization), random_seed=args.seed,
                 progressbar=sys.stderr.isatty())
    predictor = result.predictor()
    if result.interrupted:
        print(f"Interrupted after {result.n_steps} of {args.steps} steps (Ctrl-C): the metrics and model below "
              "are those of the partial fit.", flush=True)
    metrics = {"spec": str(args.spec), "data": data.name, "steps": result.n_steps, "steps_requested": args.steps,
               "interrupted": bool(result.interrupted), "stop_reason": result.stop_reason, "engine": result.engine,
               "method": result.family.label(), "ensemble": result.members, "elbo": result.elbo.options(),
               "backend": result.backend, "seed": args.seed, "draws": args.draws,
               "final_loss": result.final_loss, "timings": result.timings,
               **_metrics(data, predictor, args.draws, args.seed, scaling)}
    cli_meta = {"feature_columns": data.feature_names, "target": data.target, "standardise": scaling,
                "class_names": data.class_names}
    out.mkdir(parents=True, exist_ok=True)  # only now: a fit that fails leaves no empty directory behind
    save(result, out / "model.bnn", metadata={"cli": cli_meta})
    written = ["model.bnn"] + ([] if args.no_plots else _plots(out, result, data, args.draws, args.seed))
    _write_atomic(out / "metrics.json", json.dumps(_json_safe(metrics), indent=2, allow_nan=False) + "\n")
    test = metrics["test"]
    score = (f"test accuracy {test['accuracy']:.3f}, log loss {test['log_loss']:.3f}" if data.is_classification
             else f"test RMSE {test['rmse']:.4g}, R^2 " + ("-" if test["r2"] is None else f"{test['r2']:.3f}"))
    print(f"{score} ({test['rows']} rows); final loss {result.final_loss:.1f} after {result.n_steps} steps "
          f"in {result.timings['total_s']:.1f} s ({result.engine}).")
    print(f"Wrote {', '.join(['metrics.json', *written])} to {out}/")
    return EXIT_INTERRUPTED if result.interrupted else 0


# ---------------------------------------------------------------------- predict
def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from bnn_ppl.datasets import numeric_columns, read_csv
    from bnn_ppl.io import load_with_metadata

    result, meta = load_with_metadata(args.model)
    cli_meta = checked_cli_meta(meta.get("cli", {}) if isinstance(meta, dict) else {}, result, args.model)
    spec = result.spec
    expected = cli_meta.get("feature_columns") or [str(n) for n in (result.built.feature_names or [])]
    if args.columns:
        print(",".join(expected) if expected else f"{math.prod(spec.input_shape)} pixel columns (C-order)")
        return 0
    if args.csv is None:
        raise UsageError("predict needs FILE.csv (or --columns to list the columns MODEL expects).")
    header, columns = read_csv(args.csv)
    names = feature_columns(header, cli_meta, spec, result.built.feature_names or [])
    X = numeric_columns(args.csv, header, columns, names).reshape(-1, *spec.input_shape)
    scaling = cli_meta.get("standardise")
    if scaling:
        X = (X - np.asarray(scaling["mean"])) / np.asarray(scaling["scale"])
    s = in_target_units(result.predictor().uncertainty(X, draws=args.draws, random_seed=args.seed), scaling)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if spec.likelihood.is_classifier:
        classes = cli_meta.get("class_names") or []
        if len(classes) != s.proba.shape[1]:
            classes = [str(k) for k in range(s.proba.shape[1])]
        writer.writerow(["prediction", *[f"p_{c}" for c in classes], *[f"std_{c}" for c in classes],
                         "entropy", "expected_entropy", "mutual_information"])
        for i in range(X.shape[0]):
            writer.writerow([classes[int(s.proba[i].argmax())], *s.proba[i].tolist(), *s.std[i].tolist(),
                             s.entropy[i], s.expected_entropy[i], s.mutual_information[i]])
    else:
        writer.writerow(["mean", "std", "epistemic_std", "aleatoric_std"])
        for row in zip(s.mean, s.std, np.sqrt(s.epistemic_var), np.sqrt(s.aleatoric_var), strict=True):
            writer.writerow([float(v) for v in row])
    if args.out is None:
        sys.stdout.write(buf.getvalue())
    else:
        _write_atomic(Path(args.out), buf.getvalue())
        print(f"Wrote {X.shape[0]} predictions to {args.out}", file=sys.stderr)
    return 0


_COMMANDS = {"validate": cmd_validate, "fit": cmd_fit, "predict": cmd_predict}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bnn-ppl``; returns the exit code (0 success, 1 failure, 2 bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with code 2 on bad usage
    debug = getattr(args, "debug", False)
    try:
        return _COMMANDS[args.command](args)
    except UsageError as err:
        if debug:
            raise
        parser.print_usage(sys.stderr)
        print(f"{_PROG}: error: {err}", file=sys.stderr)
        return 2
    except (BnnPplError, OSError) as err:
        if debug:
            raise
        print(f"{_PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001  (one readable line instead of a traceback)
        if debug:
            raise
        print(f"{_PROG}: internal error: {type(err).__name__}: {' '.join(str(err).split())} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
