/* Interactive charts for the analytics page: plot specs -> Apache ECharts options.
 *
 * A catalogue run stores its figures as small library-neutral JSON specs
 * (src/zhinao/analytics/catalog/plots.py): line, bar, lift, forecast, scatter, graph, table.
 * This file is the one place that knows ECharts: `option(spec, lang)` turns a spec into an
 * ECharts option (pure, so a test can check it), `render(box, spec, lang)` draws it, and
 * `table` specs become plain HTML tables (explanations as tables, not JSON).
 *
 * Why a mapping and not ECharts options from the server: families stay free of front-end code,
 * and the PNG charts (for reports) and these come from the same numbers.
 *
 * Text from the server is never markup: tooltips are built here with every name and value
 * escaped, and ECharts draws axis labels and legends on the canvas as text.
 * Loaded by pages/analytics.js after vendor/echarts.min.js; exposes window.ZhinaoCharts.
 */
(function () {
  "use strict";

  const HEIGHT = 320;
  const esc = (s) => String(s ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");

  /** Spec labels are written "中文 English" ("假阳性率 False positive rate", "交往圈：PageRank 最高的节点
   *  Circles: top nodes by PageRank") or "english 中文" ("weekday 星期"): show the half of the
   *  console's language. A leading Latin prefix ("ARIMA(2, 0, 0) 参数 parameters") stays in both. */
  function pick(s, lang) {
    if (s === null || s === undefined) return "";
    s = String(s);
    let m = /^(.*[\u3400-\u9fff][）)」】]?)\s+([A-Za-z][^\u3400-\u9fff]*)$/.exec(s);
    if (m) {
      const pre = /^[^\u3400-\u9fff]*/.exec(m[1])[0];
      return lang === "en" ? (/\s$/.test(pre) ? pre : "") + m[2] : m[1];
    }
    m = /^([A-Za-z][\w ().,%/-]*?)\s+([\u3400-\u9fff][^A-Za-z]*)$/.exec(s);  // plain words only: "ROC — 离网预警" stays whole
    if (m) return lang === "en" ? m[1] : m[2];
    return s;
  }
  function num(v, digits) {
    if (v === null || v === undefined || v === "") return "—";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    return Math.abs(v) >= 1000 ? v.toLocaleString("en-US", { maximumFractionDigits: 1 }) : v.toFixed(digits ?? 4);
  }
  const tr = (lang, zh, en) => (lang === "en" ? en : zh);

  /** An axis-trigger tooltip whose text is escaped; `skip` names helper series (the interval band). */
  function axisTooltip(lang, extra) {
    return {
      trigger: "axis", confine: true,
      formatter: (params) => {
        const list = Array.isArray(params) ? params : [params];
        if (!list.length) return "";
        const head = esc(list[0].axisValueLabel ?? list[0].name ?? "");
        const rows = [];
        for (const p of list) {
          if (p.seriesId === "__band_lower" || p.seriesId === "__band_width") continue;
          const v = Array.isArray(p.value) ? p.value[p.value.length - 1] : p.value;
          rows.push(`${p.marker || ""}${esc(p.seriesName)}: <b>${esc(num(v))}</b>`);
        }
        if (extra) { const x = extra(list); if (x) rows.push(x); }
        return [head, ...rows].join("<br>");
      },
    };
  }
  function itemTooltip(fn) {
    return { trigger: "item", confine: true, formatter: (p) => fn(p) };
  }
  const base = (lang) => ({
    animationDuration: 300,
    grid: { left: 12, right: 24, top: 56, bottom: 36, containLabel: true },  // legend on top, y-axis name under it
    legend: { type: "scroll", top: 4, left: 8, right: 40 },  // right: room for the save-image button
    toolbox: { right: 4, top: 0, feature: { saveAsImage: { title: tr(lang, "保存图片", "Save image"), pixelRatio: 2 } } },
  });

  // -------------------------------------------------------------- one builder per spec type
  function line(spec, lang) {
    // x may be numbers (ROC, k) or labels such as timestamps (residuals over time): a category axis then
    const cats = [];
    const seen = new Set();
    for (const s of spec.series || []) for (const p of s.points || []) if (typeof p[0] === "string" && !seen.has(p[0])) { seen.add(p[0]); cats.push(p[0]); }
    const series = (spec.series || []).map((s) => ({
      type: "line", name: pick(s.name, lang), showSymbol: false, data: (s.points || []).map((p) => [cats.length ? String(p[0]) : p[0], p[1]]),
      lineStyle: s.dashed ? { type: "dashed" } : undefined, emphasis: { focus: "series" },
    }));
    if (cats.length) {
      return Object.assign(base(lang), {
        tooltip: axisTooltip(lang),
        xAxis: { type: "category", data: cats, boundaryGap: false, name: pick(spec.x_label, lang), nameLocation: "middle", nameGap: 24 },
        yAxis: { type: "value", scale: true, name: pick(spec.y_label, lang), nameTextStyle: { align: "left" } },
        dataZoom: [{ type: "inside" }],
        series,
      });
    }
    if (spec.diagonal) {
      series.push({ type: "line", name: tr(lang, "随机", "random"), data: [[0, 0], [1, 1]], showSymbol: false, silent: true,
        lineStyle: { type: "dotted", color: "#9aa5b4" }, itemStyle: { color: "#9aa5b4" } });
    }
    const bounded = spec.diagonal ? { min: 0, max: 1 } : { scale: true };
    return Object.assign(base(lang), {
      tooltip: itemTooltip((p) => `${p.marker}${esc(p.seriesName)}<br>${esc(pick(spec.x_label, lang) || "x")}: ${esc(num(p.value[0]))}`
        + `<br>${esc(pick(spec.y_label, lang) || "y")}: ${esc(num(p.value[1]))}`),
      xAxis: Object.assign({ type: "value", name: pick(spec.x_label, lang), nameLocation: "middle", nameGap: 24 }, bounded),
      yAxis: Object.assign({ type: "value", name: pick(spec.y_label, lang), nameTextStyle: { align: "left" } }, bounded),
      dataZoom: [{ type: "inside", xAxisIndex: 0 }, { type: "inside", yAxisIndex: 0 }],
      series,
    });
  }

  function bar(spec, lang) {
    const cats = spec.categories || [];
    const catAxis = { type: "category", data: cats, axisLabel: { width: 160, overflow: "truncate", interval: 0 } };
    const valAxis = { type: "value", scale: false };
    if (spec.horizontal) { catAxis.inverse = true; } else { catAxis.axisLabel.rotate = cats.length > 6 ? 30 : 0; }
    const o = Object.assign(base(lang), {
      tooltip: Object.assign(axisTooltip(lang), { axisPointer: { type: "shadow" } }),
      xAxis: spec.horizontal ? valAxis : catAxis,
      yAxis: spec.horizontal ? catAxis : valAxis,
      series: (spec.series || []).map((s) => ({ type: "bar", name: pick(s.name, lang), data: s.values || [], emphasis: { focus: "series" } })),
    });
    if ((spec.series || []).length < 2) o.legend.show = false;
    return o;
  }

  function lift(spec, lang) {
    const pct = (v) => (v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%");
    return Object.assign(base(lang), {
      tooltip: axisTooltip(lang),
      xAxis: { type: "category", data: spec.categories || [], name: tr(lang, "十分位（按得分从高到低）", "decile (highest scores first)"),
        nameLocation: "middle", nameGap: 24 },
      yAxis: [
        { type: "value", name: tr(lang, "提升度", "lift"), min: 0 },
        { type: "value", name: tr(lang, "累计覆盖率", "cumulative capture"), min: 0, max: 1, axisLabel: { formatter: pct }, splitLine: { show: false } },
      ],
      series: [
        { type: "bar", name: tr(lang, "提升度", "lift"), data: spec.lift || [],
          markLine: { silent: true, symbol: "none", lineStyle: { type: "dashed", color: "#9aa5b4" }, label: { formatter: tr(lang, "随机 = 1", "random = 1"), position: "insideEndTop" }, data: [{ yAxis: 1 }] } },
        { type: "line", name: tr(lang, "累计覆盖率", "cumulative capture"), yAxisIndex: 1, data: spec.capture || [], smooth: false },
      ],
    });
  }

  function forecast(spec, lang) {
    const hx = (spec.history && spec.history.x) || [];
    const hy = (spec.history && spec.history.y) || [];
    const xs = [], at = new Map();
    for (const x of [...hx, ...(spec.x || [])]) if (!at.has(x)) { at.set(x, xs.length); xs.push(x); }
    const col = (keys, vals) => { const out = new Array(xs.length).fill(null); keys.forEach((k, i) => { out[at.get(k)] = vals[i] ?? null; }); return out; };
    const fx = spec.x || [];
    const series = [];
    if (hx.length) series.push({ type: "line", name: tr(lang, "历史", "history"), data: col(hx, hy), showSymbol: false, lineStyle: { color: "#9aa5b4" }, itemStyle: { color: "#9aa5b4" } });
    const hasBand = Array.isArray(spec.lower) && Array.isArray(spec.upper);
    if (hasBand) {
      const width = spec.upper.map((u, i) => (u === null || spec.lower[i] === null ? null : u - spec.lower[i]));
      series.push({ id: "__band_lower", type: "line", name: tr(lang, "预测区间", "interval"), data: col(fx, spec.lower), stack: "band",
        lineStyle: { opacity: 0 }, showSymbol: false, silent: true, itemStyle: { color: "#b9cdfb" } });
      series.push({ id: "__band_width", type: "line", name: tr(lang, "预测区间", "interval"), data: col(fx, width), stack: "band",
        lineStyle: { opacity: 0 }, areaStyle: { color: "rgba(91,141,239,0.22)" }, showSymbol: false, silent: true, itemStyle: { color: "#b9cdfb" } });
    }
    series.push({ type: "line", name: tr(lang, "实际", "actual"), data: col(fx, spec.actual || []), showSymbol: false, itemStyle: { color: "#1b2430" }, lineStyle: { color: "#1b2430" } });
    series.push({ type: "line", name: tr(lang, "预测", "predicted"), data: col(fx, spec.predicted || []), showSymbol: false, itemStyle: { color: "#2563eb" }, lineStyle: { color: "#2563eb" } });
    if (Array.isArray(spec.baseline)) {
      series.push({ type: "line", name: tr(lang, "基线", "baseline") + (spec.baseline_name ? "：" + pick(spec.baseline_name, lang) : ""),
        data: col(fx, spec.baseline), showSymbol: false, lineStyle: { type: "dashed", color: "#d97706" }, itemStyle: { color: "#d97706" } });
    }
    const band = (list) => {
      if (!hasBand) return "";
      const i = list[0].dataIndex, j = fx.indexOf(xs[i]);
      if (j < 0 || spec.lower[j] === null || spec.upper[j] === null) return "";
      return `${esc(tr(lang, "预测区间", "interval"))}: <b>${esc(num(spec.lower[j]))} … ${esc(num(spec.upper[j]))}</b>`;
    };
    const o = Object.assign(base(lang), {
      tooltip: axisTooltip(lang, band),
      xAxis: { type: "category", data: xs, boundaryGap: false },
      yAxis: { type: "value", scale: true },
      dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 4 }],
      series,
    });
    o.grid.bottom = 48;
    o.legend.data = series.filter((s) => s.id !== "__band_lower").map((s) => s.name);
    return o;
  }

  function scatter(spec, lang) {
    return Object.assign(base(lang), {
      tooltip: itemTooltip((p) => `${p.marker}${esc(p.seriesName)}<br>${esc(num(p.value[0]))}, ${esc(num(p.value[1]))}`),
      xAxis: { type: "value", scale: true, name: pick(spec.x_label, lang), nameLocation: "middle", nameGap: 24 },
      yAxis: { type: "value", scale: true, name: pick(spec.y_label, lang), nameTextStyle: { align: "left" } },
      dataZoom: [{ type: "inside", xAxisIndex: 0 }, { type: "inside", yAxisIndex: 0 }],
      series: (spec.series || []).map((s) => ({ type: "scatter", name: pick(s.name, lang), symbolSize: 6, data: s.points || [], emphasis: { focus: "series" } })),
    });
  }

  function graph(spec, lang) {
    const nodes = spec.nodes || [];
    const groups = [...new Set(nodes.map((n) => n.group || ""))];
    const max = Math.max(1e-9, ...nodes.map((n) => Math.abs(n.value || 0)));
    const ranked = [...nodes].sort((a, b) => (b.value || 0) - (a.value || 0)).slice(0, 15).map((n) => n.id);
    const labelled = new Set(ranked);
    return Object.assign(base(lang), {
      tooltip: itemTooltip((p) => (p.dataType === "edge"
        ? `${esc(p.data.source)} — ${esc(p.data.target)}${p.data.value !== undefined ? ": " + esc(num(p.data.value)) : ""}`
        : `${p.marker}${esc(p.data.name)}<br>${esc(tr(lang, "分组", "group"))}: ${esc(p.data.group)}<br>${esc(tr(lang, "权重", "value"))}: ${esc(num(p.data.value))}`)),
      legend: { type: "scroll", top: 4, left: 8, right: 40, data: groups.length > 1 ? groups : [] },
      series: [{
        type: "graph", layout: "force", roam: true, draggable: true,
        categories: groups.map((g) => ({ name: g })),
        force: { repulsion: nodes.length > 120 ? 40 : 90, edgeLength: [20, 80], gravity: 0.08, layoutAnimation: nodes.length <= 150 },
        data: nodes.map((n) => ({ id: n.id, name: n.name, group: n.group, value: n.value, category: groups.indexOf(n.group || ""),
          symbolSize: 5 + 20 * Math.sqrt(Math.abs(n.value || 0) / max), label: { show: labelled.has(n.id) } })),
        links: (spec.links || []).map((l) => ({ source: l.source, target: l.target, value: l.value })),
        lineStyle: { opacity: 0.35, width: 0.8, curveness: 0.05 },
        emphasis: { focus: "adjacency", lineStyle: { width: 2 } },
        label: { position: "right", fontSize: 11 },
      }],
    });
  }

  const BUILDERS = { line, bar, lift, forecast, scatter, graph };

  /** The ECharts option for a spec; null for `table` (drawn as HTML) or a type this file does not know. */
  function option(spec, lang) {
    const b = spec && BUILDERS[spec.type];
    return b ? b(spec, lang || "zh") : null;
  }

  /** A `table` spec as an HTML table (numbers right-aligned, text as text). */
  function tableEl(spec, lang) {
    const mk = (tag, attrs, text) => { const e = document.createElement(tag); Object.assign(e, attrs || {}); if (text !== undefined) e.textContent = text; return e; };
    const t = mk("table", { className: "tbl plot-table" });
    t.dataset.testid = "plot-table";
    const tr_ = mk("tr");
    const first = (spec.rows || [])[0] || [];
    (spec.columns || []).forEach((c, i) => tr_.appendChild(mk("th", typeof first[i] === "number" ? { className: "num" } : {}, pick(c, lang))));
    t.appendChild(mk("thead")).appendChild(tr_);
    const tb = t.appendChild(mk("tbody"));
    for (const row of spec.rows || []) {
      const r = tb.appendChild(mk("tr"));
      for (const v of row) {
        const td = r.appendChild(mk("td", {}, typeof v === "number" ? num(v) : v === null ? "—" : typeof v === "boolean" ? String(v) : String(v)));
        if (typeof v === "number") td.className = "num";
      }
    }
    const wrap = mk("div", { className: "plot-table-wrap" });
    wrap.appendChild(t);
    return wrap;
  }

  /** Room for every bar of a long horizontal bar chart (20 features need more than 320 px). */
  function heightOf(spec) {
    if (spec.type === "bar" && spec.horizontal) return Math.max(HEIGHT, 90 + 20 * (spec.categories || []).length);
    if (spec.type === "graph") return Math.max(HEIGHT, 420);
    return HEIGHT;
  }

  /** Draw `spec` into `box` (an element already in the page). Returns a dispose function. */
  function render(box, spec, lang) {
    lang = lang || "zh";
    if (spec && spec.type === "table") { box.appendChild(tableEl(spec, lang)); return () => {}; }
    const opt = option(spec, lang);
    if (!opt) {
      const p = document.createElement("div");
      p.className = "muted";
      p.textContent = tr(lang, "无法绘制此图表类型：", "Cannot draw chart type: ") + String(spec && spec.type);
      box.appendChild(p);
      return () => {};
    }
    if (!window.echarts) throw new Error("ECharts is not loaded");
    const el = document.createElement("div");
    el.className = "echart";
    el.dataset.testid = "echart";
    el.dataset.type = spec.type;
    const height = heightOf(spec);
    el.style.height = height + "px";
    box.appendChild(el);
    const chart = window.echarts.init(el, null, { renderer: "canvas", locale: lang === "en" ? "EN" : "ZH",
      width: el.clientWidth || 480, height });
    chart.setOption(opt);
    let ro = null;
    if (window.ResizeObserver) { ro = new ResizeObserver(() => { if (!chart.isDisposed()) chart.resize({ width: el.clientWidth || 480, height }); }); ro.observe(el); }
    return () => { if (ro) ro.disconnect(); if (!chart.isDisposed()) chart.dispose(); };
  }

  /** Load vendor/echarts.min.js once (the other pages never need its 1.1 MB). */
  let loading = null;
  function load() {
    if (window.echarts) return Promise.resolve(window.echarts);
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = "/static/vendor/echarts.min.js";
        s.onload = () => resolve(window.echarts);
        s.onerror = () => { loading = null; reject(new Error("failed to load /static/vendor/echarts.min.js")); };
        document.head.appendChild(s);
      });
    }
    return loading;
  }

  window.ZhinaoCharts = { option, render, load, pick, tableEl };
})();
