"""Ratios against the baselines of the same run, the markdown tables and the JSON file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.measure import FitRow, PredictRow
from bench.predictive import SAMPLE_NODE_ROUTE, SPP_ROUTE

__all__ = ["add_fit_ratios", "add_predict_speedups", "to_markdown", "write_results", "PM_FIT", "NUMPYRO"]

PM_FIT = "pm.fit default"
NUMPYRO = "numpyro"
_MAX_CELL = 160  # characters of text per table cell (errors are complete in the JSON)


def _ratio(value: float, base: float | None) -> float | None:
    if base is None or not (math.isfinite(value) and math.isfinite(base)) or base <= 0:
        return None
    return value / base


def _baseline_rate(rows: list[FitRow], workload: str, runner: str) -> float | None:
    for row in rows:
        if row.workload == workload and row.runner == runner and row.error is None:
            return row.steps_per_s
    return None


def add_fit_ratios(rows: list[FitRow]) -> None:
    """Set ``ratio_vs_pm_fit`` / ``ratio_vs_numpyro`` (steady steps/s over the baseline's, same workload)."""
    for row in rows:
        if row.error is not None:
            continue
        row.ratio_vs_pm_fit = _ratio(row.steps_per_s, _baseline_rate(rows, row.workload, PM_FIT))
        row.ratio_vs_numpyro = _ratio(row.steps_per_s, _baseline_rate(rows, row.workload, NUMPYRO))


def add_predict_speedups(rows: list[PredictRow]) -> None:
    """Set each route's speedup (baseline time / its time) over the two PyMC routes."""
    base = {r.route: r.predict_s for r in rows if r.error is None}
    for row in rows:
        if row.error is None:
            row.speedup_vs_sample_node = _ratio(base.get(SAMPLE_NODE_ROUTE, math.nan), row.predict_s)
            row.speedup_vs_spp = _ratio(base.get(SPP_ROUTE, math.nan), row.predict_s)


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, str):
        text = " ".join(value.split()).replace("|", "\\|")  # one line, no column breaks
        return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return lines


def to_markdown(results: dict[str, Any]) -> str:
    """The markdown report: run metadata, fit table, predictive table, time to first result."""
    meta = results["meta"]
    lines = [f"# bnn_ppl benchmark ({'quick' if meta.get('quick') else 'full'} run)", "",
             f"Command: `{meta.get('command', '')}`  ", f"Date (UTC): {meta.get('date', '')}, "
             f"total {_fmt(meta.get('total_s'))} s  ", f"Machine: {meta.get('machine', '')}  ",
             f"Versions: {', '.join(f'{k} {v}' for k, v in meta.get('versions', {}).items())}  ",
             f"floatX: {meta.get('floatX')}; jax x64: {meta.get('jax_enable_x64')}", "",
             "## Fit", "",
             "steps/s is steady state (compilation excluded); setup+compile s is the rest of the wall time of "
             "build + fit; x pm.fit and x NumPyro are steps/s ratios against those baselines in this run; "
             "final -ELBO is the mean of the last 1000 losses; accuracy and NLL (nats/row) on the test set; "
             "predict s is one warm call on the test set; peak mem is resident-set growth during build + fit.", ""]
    fit_rows = [[r["workload"], r["runner"], r["engine"], r["backend"], r["dtype"], r["n_steps"], r["steps_per_s"],
                 r["ratio_vs_pm_fit"], r["ratio_vs_numpyro"], r["setup_compile_s"], r["final_neg_elbo"],
                 r["test_accuracy"], r["test_nll"], r["predict_s"], r["peak_mem_mb"],
                 r["error"] or r["notes"]] for r in results["fits"]]
    lines += _table(["workload", "runner", "engine", "backend", "dtype", "steps", "steps/s", "x pm.fit",
                     "x NumPyro", "setup+compile s", "final -ELBO", "test acc", "test NLL", "predict s",
                     "peak mem MB", "notes"], fit_rows)
    if results.get("predict"):
        first = results["predict"][0]
        lines += ["", f"## Posterior predictive, {first['draws']} draws x {first['rows']} rows "
                  f"({results.get('predict_workload', '')})", "",
                  "predict ms is the median of warm calls; compile s is the build plus the first call's excess.", ""]
        lines += _table(["route", "backend", "compile s", "predict ms", "x sample_node", "x spp route", "notes"],
                        [[r["route"], r["backend"], r["compile_s"], _ms(r["predict_s"]), r["speedup_vs_sample_node"],
                          r["speedup_vs_spp"], r["error"] or r["notes"]] for r in results["predict"]])
    if results.get("ttfr"):
        lines += ["", "## Time to first result (moons: import + build + fit + predict, fresh process)", "",
                  "ttfr s runs from the process's first line to the first prediction; wall s adds the "
                  "interpreter start. Imports that bnn_ppl defers land in the later columns.", ""]
        lines += _table(["target", "engine", "cache", "steps", "import s", "data s", "build+fit s", "predict s",
                         "ttfr s", "wall s", "test acc", "error"],
                        [[r.get("target"), r.get("engine"), r.get("cache"), r.get("steps"), r.get("import_s"),
                          r.get("data_s"), r.get("build_fit_s"), r.get("predict_s"), r.get("ttfr_s"), r.get("wall_s"),
                          r.get("test_accuracy"), r.get("error", "")] for r in results["ttfr"]])
    return "\n".join(lines) + "\n"


def _ms(seconds: Any) -> Any:
    return seconds * 1000 if isinstance(seconds, float) and math.isfinite(seconds) else None


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_results(results: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write ``results.json`` (strict JSON: NaN becomes null) and ``results.md`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(_json_safe(results), indent=2) + "\n")
    md_path.write_text(to_markdown(results))
    return json_path, md_path
