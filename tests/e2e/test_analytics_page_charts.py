"""The analytics page's chart renderers (static/charts.js) in a real browser, on real plot specs.

Every spec type of ``zhinao.analytics.catalog.plots`` is built here with the real functions (from
scored rows, a lift table, a graph), then drawn by charts.js with the vendored ECharts in Debian
chromium against a real ``zhinao serve``. The checks read the option ECharts holds (series,
axes, data sizes) and the pixels of its canvas, so a renderer that draws nothing, drops a series
or mixes up axes fails. Tooltips must escape server text; labels follow the zh/en switch.

Fixtures (``live_server``, ``admin_page``) from tests/e2e/conftest.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from zhinao.analytics.catalog import plots, roles

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EVIL = '<img src=x onerror="window.__pwned=1">'


def _specs() -> dict[str, dict]:
    rng = np.random.default_rng(7)
    y = (rng.random(600) < 0.3).astype(float)
    scores = np.clip(0.45 * y + 0.55 * rng.random(600), 0, 1)
    base = rng.random(600)
    lt = roles.lift_table(y, scores)
    days = [f"2024-01-{d:02d}" for d in range(1, 29)]
    hist_days = [f"2023-12-{d:02d}" for d in range(1, 32)]
    actual = 100 + 10 * np.sin(np.arange(28) / 3)
    pred = actual + rng.normal(0, 2, 28)
    import networkx as nx

    g = nx.karate_club_graph()
    deg = dict(g.degree())
    nodes = [{"id": n, "name": f"用户{n}", "group": g.nodes[n]["club"], "value": deg[n]} for n in g.nodes]
    links = [{"source": a, "target": b} for a, b in g.edges]
    return {
        "roc": plots.roc(y, scores, baseline_scores=base, baseline_name="随机打分"),
        "lift": plots.lift(lt),
        "importance": plots.bar(["国际套餐", "日间通话分钟", EVIL, "客服来电次数"], [0.8, -0.5, 0.3, 0.2],
                                "特征重要性 Feature importance"),
        "compare": plots.compare({"auc": 0.81, "f1": 0.55}, {"auc": 0.5, "f1": 0.3}, "模型与基线 Model and baseline"),
        "forecast": plots.forecast(days, actual, pred, pred - 5, pred + 5, history=(hist_days, list(actual[:1]) * 31),
                                   baseline=[float(actual.mean())] * 28, baseline_name="均值 mean"),
        "clusters": plots.scatter({"群 0": rng.normal(0, 1, (80, 2)).tolist(), "群 1": rng.normal(3, 1, (60, 2)).tolist()},
                                  "客户分群 Segments", "主成分1 PC1", "主成分2 PC2"),
        "graph": plots.graph(nodes, links, "社交网络 Social network"),
        # a line over time, written by hand as the forecasting family does: x are timestamps
        "residuals": {"type": "line", "title": "留出期误差 Hold-out errors", "x_label": "时间", "y_label": "话务量",
                      "series": [{"name": "模型 model", "points": [[d, float(e)] for d, e in zip(days, pred - actual)]},
                                 {"name": "基线 baseline", "dashed": True, "points": [[d, 1.0] for d in days]}]},
        "special_days": plots.table(["date 日期", "weekday 星期"], [["2024-02-10", "Sat"], ["2024-02-18", "Sun"]],
                                    "节假日与调休 Special days"),
        "thresholds": plots.table(["threshold", "precision", "recall", "f1"],
                                  [[r["threshold"], r["precision"], r["recall"], r["f1"]] for r in roles.threshold_table(y, scores)],
                                  "阈值表 Thresholds"),
    }


DRAW = """async ([specs, lang]) => {
  await window.ZhinaoCharts.load();
  const out = {};
  for (const [name, spec] of Object.entries(specs)) {
    const box = document.createElement('div');
    box.style.width = '640px'; box.dataset.plot = name;
    document.body.appendChild(box);
    window.ZhinaoCharts.render(box, spec, lang);
    const el = box.querySelector('.echart');
    if (!el) { out[name] = {table: box.querySelector('table') ? box.querySelector('table').outerHTML : null}; continue; }
    const chart = echarts.getInstanceByDom(el);
    chart.setOption({animation: false});
    const o = chart.getOption();
    out[name] = {canvas: !!el.querySelector('canvas'), series: o.series.map((s) => ({type: s.type, name: s.name,
      n: (s.data || []).length, yAxisIndex: s.yAxisIndex, stack: s.stack, links: (s.links || []).length,
      categories: (s.categories || []).length})), xAxis: (o.xAxis || []).map((a) => ({type: a.type, name: a.name, n: (a.data || []).length, inverse: a.inverse})),
      yAxis: (o.yAxis || []).map((a) => ({type: a.type, name: a.name, inverse: a.inverse}))};
  }
  return out;
}"""

INK = """(name) => {
  const c = document.querySelector(`[data-plot="${name}"] canvas`);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ink++;
  return ink / (c.width * c.height);
}"""


def _open(admin_page, live_server):
    pg = admin_page
    pg.set_default_timeout(60_000)  # a busy CI machine: the first page load also starts the analytics service
    pg.goto(live_server.base_url + "/#/analytics")
    pg.wait_for_selector("[data-testid=tab-catalogue]")
    pg.add_script_tag(url="/static/charts.js")
    return pg


def test_every_plot_type_draws_with_its_data(admin_page, live_server):
    specs = _specs()
    json.dumps(specs, allow_nan=False)  # strict JSON, as the run record stores it
    pg = _open(admin_page, live_server)
    got = pg.evaluate(DRAW, [specs, "zh"])

    roc = got["roc"]
    assert roc["canvas"] and [s["type"] for s in roc["series"]] == ["line", "line", "line"]  # model, baseline, diagonal
    assert roc["series"][0]["n"] == len(specs["roc"]["series"][0]["points"]) and roc["series"][2]["n"] == 2
    assert roc["series"][0]["name"].startswith("model AUC=")
    assert roc["xAxis"][0]["type"] == "value" and roc["xAxis"][0]["name"] == "假阳性率"  # zh half of the label

    lift = got["lift"]
    assert [s["type"] for s in lift["series"]] == ["bar", "line"] and lift["series"][1]["yAxisIndex"] == 1
    assert lift["series"][0]["n"] == len(specs["lift"]["lift"]) == 10 and lift["xAxis"][0]["n"] == 10

    imp = got["importance"]
    assert imp["yAxis"][0]["type"] == "category" and imp["yAxis"][0]["inverse"] is True  # horizontal, largest on top
    assert imp["series"][0]["n"] == 4
    assert [s["n"] for s in got["compare"]["series"]] == [2, 2] and got["compare"]["xAxis"][0]["type"] == "category"

    fc = got["forecast"]
    names = [s["name"] for s in fc["series"]]
    assert names[:3] == ["历史", "预测区间", "预测区间"] and "实际" in names and "预测" in names and "基线：均值" in names
    assert fc["series"][1]["stack"] == fc["series"][2]["stack"] == "band"  # the interval is a band
    assert fc["xAxis"][0]["n"] == 31 + 28  # history then the forecast horizon on one axis

    cl = got["clusters"]
    assert [s["type"] for s in cl["series"]] == ["scatter", "scatter"] and [s["n"] for s in cl["series"]] == [80, 60]

    gr = got["graph"]["series"][0]
    assert gr["type"] == "graph" and gr["n"] == 34 and gr["links"] == 78 and gr["categories"] == 2

    res = got["residuals"]
    assert res["xAxis"][0]["type"] == "category" and res["xAxis"][0]["n"] == 28  # timestamps on a category axis
    assert [s["n"] for s in res["series"]] == [28, 28] and [s["name"] for s in res["series"]] == ["模型", "基线"]
    assert "<th>日期</th>" in got["special_days"]["table"] and "2024-02-18" in got["special_days"]["table"]

    table = got["thresholds"]["table"]
    assert table and table.count("<tr>") == 1 + len(specs["thresholds"]["rows"]) and "precision" in table
    pg.wait_for_timeout(300)
    for name in ("roc", "lift", "importance", "forecast", "clusters", "graph", "residuals"):
        assert pg.evaluate(INK, name) > 0.01, f"{name}: the canvas is blank"


def test_tooltips_escape_server_text_and_labels_follow_the_language(admin_page, live_server):
    specs = _specs()
    pg = _open(admin_page, live_server)
    got = pg.evaluate(DRAW, [{"roc": specs["roc"]}, "en"])
    assert got["roc"]["xAxis"][0]["name"] == "False positive rate"
    assert pg.evaluate("""() => ['ROC — 核心客户离网预警（逻辑回归）', '交往圈：PageRank 最高的节点 Circles: top nodes by PageRank',
      'ARIMA(2, 0, 0) 参数 parameters (AIC -3327.1)', 'weekday 星期'].map((s) => [ZhinaoCharts.pick(s, 'zh'), ZhinaoCharts.pick(s, 'en')])""") == [
        ["ROC — 核心客户离网预警（逻辑回归）"] * 2, ["交往圈：PageRank 最高的节点", "Circles: top nodes by PageRank"],
        ["ARIMA(2, 0, 0) 参数", "ARIMA(2, 0, 0) parameters (AIC -3327.1)"], ["星期", "weekday"]]
    tip = pg.evaluate("""async (spec) => {
      await window.ZhinaoCharts.load();
      const o = window.ZhinaoCharts.option(spec, 'zh');
      return o.tooltip.formatter([{axisValueLabel: spec.categories[2], seriesName: spec.categories[2], value: 0.3, marker: ''}]);
    }""", specs["importance"])
    assert "<img" not in tip and "&lt;img" in tip
    # the bar's category labels are drawn on the canvas, never parsed: no element came from the name
    pg.evaluate(DRAW, [{"importance": specs["importance"]}, "zh"])
    assert pg.evaluate("() => window.__pwned === undefined && !document.querySelector('img[src=x]')")


# one entry per family the classification run test does not cover, on its demo data
FAMILY_RUNS = ("karate_circles", "traffic_linear", "segments_kmodes", "cross_sell_apriori", "next_content_prefixspan",
               "hmm_word_tagger", "plan_tree")


def test_real_runs_of_every_family_draw_all_their_plots(admin_page, live_server):
    """The specs the families really write (graph, forecast band, clusters, rules tables …) all draw."""
    import time

    pg = _open(admin_page, live_server)
    token = pg.console_token
    ids = {}
    for key in FAMILY_RUNS:
        r = live_server.api("POST", "/api/analytics/runs", token=token, json={"model": key})
        assert r.status_code == 202, (key, r.text)
        ids[key] = r.json()["id"]
    seen_types = set()
    for key, run_id in ids.items():
        deadline = time.monotonic() + 300
        while (rec := live_server.api("GET", f"/api/analytics/runs/{run_id}", token=token).json())["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, f"{key}: still {rec['status']}"
            time.sleep(1)
        assert rec["status"] == "succeeded", (key, rec.get("error"))
        specs = live_server.api("GET", f"/api/analytics/runs/{run_id}/plots", token=token).json()
        assert specs and sorted(specs) == rec["plots"], key
        pg.goto(live_server.base_url + f"/#/analytics/runs/{run_id}")
        pg.wait_for_selector("[data-testid=run-status][data-status=succeeded]")
        pg.wait_for_function("n => document.querySelectorAll('[data-testid=run-charts] figure.plot').length === n", arg=len(specs))
        figs = pg.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-testid=run-charts] figure.plot')]
          .map((f) => [f.dataset.plot, {type: f.dataset.type, canvas: !!f.querySelector('.echart canvas'),
                                       rows: f.querySelectorAll('table tbody tr').length}]))""")
        for name, spec in specs.items():
            got = figs[name]
            assert got["type"] == spec["type"], (key, name)
            if spec["type"] == "table":
                assert got["rows"] == len(spec["rows"]), (key, name)
            else:
                assert got["canvas"], (key, name, "no ECharts canvas")
            seen_types.add(spec["type"])
        assert pg.locator("[data-testid=run-explanation] pre").count() == 0
    assert {"graph", "forecast", "scatter", "table", "bar", "line"} <= seen_types, seen_types
