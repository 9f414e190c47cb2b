"""Interactive chart data for the console: small JSON specs, drawn in the browser with ECharts.

PNG charts (:mod:`.charts`) stay for reports and downloads; these specs carry the same
figures as data so the console can draw them interactively (zoom, hover, legend toggles).
The vocabulary is deliberately small and library-neutral — the console maps each ``type`` to
an ECharts option — so a family never writes front-end code:

- ``line``      ``x_label``, ``y_label``, ``series: [{name, points: [[x, y], …], dashed?}]``, ``diagonal?``
- ``bar``       ``categories``, ``series: [{name, values}]``, ``horizontal?``
- ``lift``      ``categories`` (deciles), ``lift``, ``capture`` (cumulative share of positives)
- ``forecast``  ``x``, ``actual``, ``predicted``, ``lower``, ``upper`` (the interval), ``history?`` ``{x, y}``
- ``scatter``   ``x_label``, ``y_label``, ``series: [{name, points}]``
- ``graph``     ``nodes: [{id, name, group, value}]``, ``links: [{source, target, value?}]``
- ``table``     ``columns``, ``rows`` (explanations as tables, not raw JSON)

Every spec has ``type`` and ``title``. Sizes are capped (points, nodes, rows) so a run record
stays small; the cap is said in the spec (``sampled: true``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

MAX_POINTS = 400
MAX_NODES = 300
MAX_ROWS = 50


def _f(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else round(f, 6)


def _thin(n: int, cap: int = MAX_POINTS) -> np.ndarray:
    return np.arange(n) if n <= cap else np.unique(np.linspace(0, n - 1, cap).round().astype(int))


def roc(y01: Sequence[float], scores: Sequence[float], title: str = "ROC",
        baseline_scores: Sequence[float] | None = None, baseline_name: str = "baseline") -> dict[str, Any]:
    from sklearn.metrics import auc, roc_curve

    series = []
    for name, s, dashed in (("model", scores, False), (baseline_name, baseline_scores, True)):
        if s is None:
            continue
        fpr, tpr, _ = roc_curve(np.asarray(y01), np.asarray(s))
        idx = _thin(len(fpr))
        series.append({"name": f"{name} AUC={auc(fpr, tpr):.3f}", "dashed": dashed,
                       "points": [[_f(fpr[i]), _f(tpr[i])] for i in idx]})
    return {"type": "line", "title": title, "x_label": "假阳性率 False positive rate",
            "y_label": "真阳性率 True positive rate", "series": series, "diagonal": True}


def lift(table: Sequence[dict[str, Any]], title: str = "提升度与覆盖率 Lift and capture by decile") -> dict[str, Any]:
    return {"type": "lift", "title": title, "categories": [f"D{r['decile']}" for r in table],
            "lift": [_f(r.get("lift")) for r in table], "capture": [_f(r.get("cumulative_capture")) for r in table]}


def bar(names: Sequence[Any], values: Sequence[float], title: str, top: int = 20,
        series_name: str = "value", horizontal: bool = True) -> dict[str, Any]:
    vals = np.asarray(values, dtype=float)
    order = np.argsort(-np.abs(vals))[:top]
    return {"type": "bar", "title": title, "horizontal": horizontal,
            "categories": [str(names[i]) for i in order],
            "series": [{"name": series_name, "values": [_f(vals[i]) for i in order]}]}


def compare(metrics: dict[str, float], baseline: dict[str, float], title: str,
            baseline_name: str = "baseline") -> dict[str, Any]:
    names = [k for k in metrics if k in baseline]
    return {"type": "bar", "title": title, "horizontal": False, "categories": names,
            "series": [{"name": "模型 model", "values": [_f(metrics[k]) for k in names]},
                       {"name": f"基线 {baseline_name}", "values": [_f(baseline[k]) for k in names]}]}


def forecast(x: Sequence[Any], actual: Sequence[float], predicted: Sequence[float],
             lower: Sequence[float] | None = None, upper: Sequence[float] | None = None,
             title: str = "预测 Forecast", history: tuple[Sequence[Any], Sequence[float]] | None = None,
             baseline: Sequence[float] | None = None, baseline_name: str = "baseline") -> dict[str, Any]:
    idx = _thin(len(x))
    spec: dict[str, Any] = {"type": "forecast", "title": title, "x": [str(x[i]) for i in idx],
                            "actual": [_f(actual[i]) for i in idx], "predicted": [_f(predicted[i]) for i in idx]}
    if lower is not None and upper is not None:
        spec["lower"] = [_f(lower[i]) for i in idx]
        spec["upper"] = [_f(upper[i]) for i in idx]
    if baseline is not None:
        spec["baseline"] = [_f(baseline[i]) for i in idx]
        spec["baseline_name"] = baseline_name
    if history is not None:
        hx, hy = history
        hidx = _thin(len(hx), MAX_POINTS // 2)
        spec["history"] = {"x": [str(hx[i]) for i in hidx], "y": [_f(hy[i]) for i in hidx]}
    spec["sampled"] = len(x) > MAX_POINTS
    return spec


def scatter(groups: dict[str, Sequence[Sequence[float]]], title: str, x_label: str = "",
            y_label: str = "") -> dict[str, Any]:
    series = []
    for name, pts in groups.items():
        pts = list(pts)
        idx = _thin(len(pts), MAX_POINTS // max(1, min(len(groups), 8)))
        series.append({"name": str(name), "points": [[_f(pts[i][0]), _f(pts[i][1])] for i in idx]})
    return {"type": "scatter", "title": title, "x_label": x_label, "y_label": y_label, "series": series}


def graph(nodes: Sequence[dict[str, Any]], links: Sequence[dict[str, Any]], title: str) -> dict[str, Any]:
    """Nodes ``{id, name?, group?, value?}`` and links ``{source, target, value?}``; largest nodes kept."""
    nodes = sorted(nodes, key=lambda n: -(n.get("value") or 0))[:MAX_NODES]
    keep = {str(n["id"]) for n in nodes}
    out_links = [{"source": str(l["source"]), "target": str(l["target"]), **({"value": _f(l["value"])} if "value" in l else {})}
                 for l in links if str(l["source"]) in keep and str(l["target"]) in keep][: MAX_NODES * 6]
    return {"type": "graph", "title": title, "sampled": len(keep) < len(nodes) or False,
            "nodes": [{"id": str(n["id"]), "name": str(n.get("name", n["id"])), "group": str(n.get("group", "")),
                       "value": _f(n.get("value", 1))} for n in nodes], "links": out_links}


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str) -> dict[str, Any]:
    def cell(v: Any) -> Any:
        if isinstance(v, (int, str, bool)) or v is None:
            return v
        f = _f(v)
        return f if f is not None else str(v)

    rows = list(rows)
    return {"type": "table", "title": title, "columns": [str(c) for c in columns],
            "rows": [[cell(v) for v in r] for r in rows[:MAX_ROWS]], "sampled": len(rows) > MAX_ROWS}


__all__ = ["bar", "compare", "forecast", "graph", "lift", "roc", "scatter", "table"]
