/* The A/B panel of the alignment page's models tab (admins only): a share of the tenant's chat
 * traffic for a base model goes to a candidate (usually a model `zhinao align deploy` registered).
 *
 * Why a separate file: the alignment page stays about data and training; this panel is thin over
 * /api/experiments (src/zhinao/gateway/api/experiments.py) and is loaded by pages/alignment.js on
 * first use of the models tab. Members never get here: the tab is admin-only and the API answers
 * them 403 anyway.
 *
 * What it shows: the running (else the latest) experiment, its share, per arm the turns, the rated
 * turns and the 👍 rate with its Wilson 95% interval, and the candidate − base difference with
 * Newcombe's interval (numbers computed by the server, ExperimentService.compare), as a table and
 * a bar chart with error bars (ECharts loaded through charts.js; the error bars are a custom
 * series, which charts.js's generic bar spec does not have). The share can be changed while it
 * runs, and Rollback (after a confirmation) sends every request back to the base model at once.
 *
 * Labels say 点赞 / thumbs-up in words: the chart canvas and many servers have no emoji font.
 * Model names are only ever set as text (h() uses textContent; tooltips are escaped here).
 * Exposes window.ZhinaoAlignmentAB = { render(el, ctx) -> dispose, option(cmp, lang) }.
 */
(function () {
  "use strict";
  const Z = window.Zhinao;
  const E = "/api/experiments";
  const esc = (s) => String(s ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  const pct = (v) => (typeof v === "number" ? (100 * v).toFixed(1) + "%" : "—");
  const pp = (v) => (typeof v === "number" ? (v > 0 ? "+" : "") + (100 * v).toFixed(1) : "—");
  const ci = (c, f) => (Array.isArray(c) ? `[${f(c[0])}, ${f(c[1])}]` : "—");
  const STATUS = { running: ["进行中", "running", "ok"], ended: ["已结束", "ended", ""], rolled_back: ["已回滚", "rolled back", "warn"] };

  const loadCharts = () => window.Zhinao.loadCharts();  // one loader for every page (app.js)

  /** The ECharts option for a comparison: 👍 rate per arm and the difference, in %, with 95% error bars.
   *  Pure (no DOM), so a test can check it. An arm with no rating has no bar and no error bar. */
  function option(cmp, lang) {
    const tr = (zh, en) => (lang === "en" ? en : zh);
    const b = cmp.arms.base, c = cmp.arms.candidate, d = cmp.difference || {};
    const cats = [tr("基座 ", "base ") + b.model, tr("候选 ", "candidate ") + c.model, tr("差值（候选 − 基座）", "difference (candidate − base)")];
    const rows = [
      { v: b.up_rate, ci: b.rated ? b.ci95 : null, n: b.rated, color: "#64748b" },
      { v: c.up_rate, ci: c.rated ? c.ci95 : null, n: c.rated, color: "#2563eb" },
      { v: d.candidate_minus_base, ci: d.ci95, n: null, color: d.significant ? (d.candidate_minus_base > 0 ? "#16a34a" : "#dc2626") : "#a3a3a3" },
    ];
    const num = (v) => (typeof v === "number" ? Math.round(1000 * v) / 10 : null);
    const lows = rows.filter((r) => r.ci).map((r) => num(r.ci[0]));
    return {
      animationDuration: 300,
      grid: { left: 12, right: 24, top: 30, bottom: 36, containLabel: true },
      tooltip: { trigger: "item", confine: true, formatter: (p) => {
        const r = rows[p.dataIndex];
        if (!r) return "";
        return `${esc(cats[p.dataIndex])}<br><b>${r.v === null || r.v === undefined ? "—" : esc(num(r.v).toFixed(1))}</b>`
          + (r.ci ? ` 95% CI ${esc(num(r.ci[0]).toFixed(1))} … ${esc(num(r.ci[1]).toFixed(1))}` : "")
          + (r.n !== null ? `<br>${esc(tr("已评价", "rated"))}: ${esc(r.n)}` : "");
      } },
      xAxis: { type: "category", data: cats, axisLabel: { width: 200, overflow: "truncate", interval: 0 } },
      yAxis: { type: "value", name: tr("点赞率 %（差值：百分点）", "thumbs-up rate % (difference: points)"), nameTextStyle: { align: "left" },
        min: Math.min(0, Math.floor(Math.min(0, ...lows) / 10) * 10), max: 100 },
      series: [
        { type: "bar", name: tr("点赞率", "thumbs-up rate"), barWidth: "40%",
          data: rows.map((r) => ({ value: num(r.v), itemStyle: { color: r.color } })) },
        { type: "custom", name: "95% CI", encode: { x: 0, y: [1, 2] }, z: 10, tooltip: { show: false },
          data: rows.map((r, i) => (r.ci ? [i, num(r.ci[0]), num(r.ci[1])] : [i, null, null])),
          renderItem: (params, api) => {
            if (api.value(1) === null || isNaN(api.value(1))) return null;
            const lo = api.coord([api.value(0), api.value(1)]), hi = api.coord([api.value(0), api.value(2)]);
            const w = api.size([1, 0])[0] * 0.12;
            const style = { stroke: "#111827", lineWidth: 1.5 };
            const seg = (x1, y1, x2, y2) => ({ type: "line", shape: { x1, y1, x2, y2 }, style });
            return { type: "group", children: [seg(lo[0], lo[1], hi[0], hi[1]), seg(lo[0] - w, lo[1], lo[0] + w, lo[1]),
              seg(hi[0] - w, hi[1], hi[0] + w, hi[1])] };
          } },
      ],
    };
  }

  async function render(el, ctx) {
    const { h, t, api } = ctx;
    let gone = false;
    let dispose = () => {};
    const box = h("div", { "data-testid": "ab-panel" });
    el.append(ctx.card(t("A/B 实验：把一部分对话交给候选模型", "A/B experiment: a share of the conversations goes to a candidate"), box,
      h("button", { class: "btn small", "data-testid": "ab-refresh", onclick: () => refresh().catch((e) => ctx.showError(e)) },
        ctx.icon("refresh-cw", 12), t("刷新", "Refresh"))));

    let models = [];
    try { models = (await api("/api/models")).filter((m) => !m.test_model || ctx.isOperator); } catch (e) { ctx.showError(e); }

    function startForm() {
      const opts = (sel) => models.map((m) => h("option", { value: m.name, selected: m.name === sel },
        m.name + (m.test_model ? t("（测试）", " (test)") : "")));
      const def = (models.find((m) => m.default) || models[0] || {}).name;
      const base = h("select", { "data-testid": "ab-base" }, opts(def));
      const cand = h("select", { "data-testid": "ab-candidate" }, opts((models.find((m) => m.name !== def) || {}).name));
      const name = h("input", { "data-testid": "ab-name", placeholder: t("名称（可选）", "name (optional)"), maxlength: 100 });
      const [slider, label] = shareSlider(10);
      const go = h("button", { class: "btn primary", "data-testid": "ab-start", disabled: models.length < 2, onclick: async () => {
        if (base.value === cand.value) return ctx.toast(t("基座和候选必须是两个不同的模型", "Base and candidate must be two different models"), "error");
        go.disabled = true;
        try {
          await api(E, { body: ctx.compact({ base: base.value, candidate: cand.value, share: Number(slider.value) / 100, name: name.value.trim() }) });
          ctx.toast(t("实验已开始", "Experiment started"), "ok");
          await refresh();
        } catch (e) { ctx.showError(e); go.disabled = false; }
      } }, ctx.icon("sparkles", 14), t("开始实验", "Start the experiment"));
      return h("div", { "data-testid": "ab-new" },
        h("div", { class: "row", style: { gap: "8px", flexWrap: "wrap", alignItems: "center" } },
          h("label", { class: "field" }, t("基座模型（被请求的）", "Base model (the one requested)"), base),
          h("label", { class: "field" }, t("候选模型", "Candidate model"), cand),
          h("label", { class: "field" }, t("候选的份额", "Candidate's share"), h("span", { class: "row", style: { gap: "6px", alignItems: "center" } }, slider, label)),
          h("label", { class: "field" }, t("名称", "Name"), name), go),
        models.length < 2 ? h("div", { class: "muted" }, t("至少需要两个已注册的模型（zhinao align deploy 会注册对齐后的模型）",
          "Needs two registered models (zhinao align deploy registers an aligned one)")) : null,
        h("div", { class: "muted", style: { fontSize: "12px", marginTop: "4px" } }, t(
          "按对话分配（API 调用按用户或密钥）：同一对话始终在同一组；提高份额只会把基座组的对话移到候选组。",
          "Assigned per conversation (API calls: per user or key): a conversation stays on its arm; raising the share only moves conversations from base to candidate.")));
    }

    function shareSlider(percent) {
      const label = h("span", { "data-testid": "ab-share-label", style: { minWidth: "3.5em" } }, percent + "%");
      const slider = h("input", { type: "range", min: 0, max: 100, step: 1, value: percent, "data-testid": "ab-share-input",
        oninput: () => { label.textContent = slider.value + "%"; } });
      slider.addEventListener("change", () => { label.textContent = slider.value + "%"; });
      return [slider, label];
    }

    function armsTable(cmp) {
      const rows = [["base", t("基座", "base")], ["candidate", t("候选", "candidate")]].map(([k, label]) => ({ id: k, label, ...cmp.arms[k] }));
      return ctx.table([
        { label: t("组", "Arm"), render: (r) => h("span", { "data-arm": r.id }, r.label) },
        { label: t("模型", "Model"), key: "model" },
        { label: t("回答数", "Turns"), render: (r) => h("span", { "data-testid": "ab-turns" }, String(r.turns)), num: false },
        { label: t("已评价", "Rated"), render: (r) => h("span", { "data-testid": "ab-rated" }, String(r.rated)) },
        { label: t("赞 / 踩", "up / down"), render: (r) => `${r.thumbs_up} / ${r.thumbs_down}` },
        { label: t("点赞率", "Thumbs-up rate"), render: (r) => h("span", { "data-testid": "ab-rate" }, pct(r.up_rate)) },
        { label: t("95% 置信区间（Wilson）", "95% interval (Wilson)"), render: (r) => h("span", { "data-testid": "ab-ci" }, r.rated ? ci(r.ci95, pct) : "—") },
      ], rows, { testid: "ab-arms" });
    }

    function diffLine(cmp) {
      const d = cmp.difference;
      if (d.candidate_minus_base === null) {
        return h("div", { class: "muted", "data-testid": "ab-diff", "data-significant": "false" },
          t("两组都有评价后才能比较差值", "The difference needs ratings on both arms"));
      }
      const verdict = d.significant ? (d.candidate_minus_base > 0 ? t("候选显著更好", "the candidate is better")
        : t("候选显著更差", "the candidate is worse")) : t("差异不显著（区间包含 0）", "not significant (the interval contains 0)");
      return h("div", { "data-testid": "ab-diff", "data-significant": String(!!d.significant), style: { margin: "8px 0" } },
        t("差值（候选 − 基座）：", "Difference (candidate − base): "), h("b", {}, pp(d.candidate_minus_base) + t(" 个百分点", " points")),
        t("，95% 区间（Newcombe）", ", 95% interval (Newcombe) "), ci(d.ci95, pp), " — ",
        h("span", { class: "badge " + (d.significant ? (d.candidate_minus_base > 0 ? "ok" : "bad") : "") }, verdict));
    }

    function experimentView(cmp) {
      const e = cmp.experiment;
      const [zh, en, cls] = STATUS[e.status] || [e.status, e.status, ""];
      const running = e.status === "running";
      const share = Math.round(100 * e.share);
      const head = h("div", { class: "row", style: { gap: "10px", alignItems: "center", flexWrap: "wrap" } },
        h("b", {}, `#${e.id}` + (e.name ? " " + e.name : "")),
        h("span", {}, `${e.base} → ${e.candidate}`),
        h("span", { class: "badge " + cls, "data-testid": "ab-status", "data-status": e.status }, t(zh, en)),
        h("span", {}, t("候选份额 ", "candidate share "), h("b", { "data-testid": "ab-share", "data-share": String(e.share) }, share + "%")),
        h("span", { class: "muted" }, t("开始于 ", "since ") + ctx.fmtTime(e.started_at) + (e.ended_at ? " — " + ctx.fmtTime(e.ended_at) : "")));
      const controls = [];
      if (running) {
        const [slider, label] = shareSlider(share);
        const apply = h("button", { class: "btn", "data-testid": "ab-share-apply", onclick: async () => {
          try {
            await api(`${E}/${e.id}`, { method: "PATCH", body: { share: Number(slider.value) / 100 } });
            ctx.toast(t(`候选份额改为 ${slider.value}%`, `Candidate share set to ${slider.value}%`), "ok");
            await refresh();
          } catch (err) { ctx.showError(err); }
        } }, t("修改份额", "Change the share"));
        const rollback = h("button", { class: "btn danger", "data-testid": "ab-rollback", onclick: async () => {
          if (!(await ctx.confirm(t(`回滚：${e.base} 立即接管全部请求，${e.candidate} 不再得到流量。继续？`,
            `Roll back: ${e.base} serves every request from now on and ${e.candidate} gets no more traffic. Continue?`)))) return;
          try {
            await api(`${E}/${e.id}/rollback`, { method: "POST" });
            ctx.toast(t("已回滚，基座模型服务全部请求", "Rolled back: the base model serves every request"), "ok");
            await refresh();
          } catch (err) { ctx.showError(err); }
        } }, ctx.icon("triangle-alert", 14), t("一键回滚", "Roll back"));
        controls.push(h("div", { class: "row", style: { gap: "8px", alignItems: "center", margin: "8px 0", flexWrap: "wrap" } },
          t("新份额", "New share"), slider, label, apply, h("span", { class: "spacer" }), rollback));
      }
      const chart = h("div", { "data-testid": "ab-chart" });
      return { node: h("div", { "data-testid": "ab-experiment", "data-id": String(e.id) }, head, ...controls, armsTable(cmp), diffLine(cmp), chart), chart };
    }

    async function refresh() {
      const list = await api(E);
      if (gone) return;
      dispose(); dispose = () => {};
      Z.clear(box);
      const current = list.find((x) => x.status === "running") || list[0];
      if (!current) { box.append(h("div", { class: "empty", "data-testid": "ab-none" }, t("还没有 A/B 实验", "No A/B experiment yet")), startForm()); return; }
      const cmp = await api(`${E}/${current.id}`);
      if (gone) return;
      const v = experimentView(cmp);
      box.append(v.node);
      if (current.status !== "running") {
        box.append(h("h4", { style: { margin: "16px 0 6px" } }, t("开始新的实验", "Start a new experiment")), startForm());
      }
      try {
        const C = await loadCharts();
        if (gone) return;
        void C;
        const fig = h("div", { class: "echart", style: { height: "300px" } });
        v.chart.append(fig);
        const chart = window.echarts.init(fig, null, { renderer: "canvas", locale: ctx.lang === "en" ? "EN" : "ZH",
          width: fig.clientWidth || 560, height: 300 });
        chart.setOption(option(cmp, ctx.lang));
        let ro = null;
        if (window.ResizeObserver) { ro = new ResizeObserver(() => { if (!chart.isDisposed()) chart.resize({ width: fig.clientWidth || 560, height: 300 }); }); ro.observe(fig); }
        dispose = () => { if (ro) ro.disconnect(); if (!chart.isDisposed()) chart.dispose(); };
      } catch (e) { v.chart.append(h("div", { class: "muted" }, e.message)); }
    }

    try { await refresh(); } catch (e) { ctx.showError(e); }
    return () => { gone = true; dispose(); };
  }

  window.ZhinaoAlignmentAB = { render, option };
})();
