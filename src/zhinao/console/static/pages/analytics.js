/* Analytics page (数据分析): workspaces and datasets with profiles, column descriptions and the
 * business glossary; the mining-model catalogue; runs with metrics against the baseline,
 * explanations, charts, model download and scoring into workspace tables.
 *
 * Routes: #/analytics/datasets[/<ws>/<table>], #/analytics/catalogue, #/analytics/runs[/<id>].
 * Charts and downloads need the Bearer token, so they are fetched and shown as data:/blob: URLs
 * (the console's CSP allows data: images).
 */
(function () {
  "use strict";
  const Z = window.Zhinao;
  const WS_KEY = "zhinao.analytics.ws";

  function fmt(v) {
    if (v === null || v === undefined || v === "") return "—";
    if (typeof v === "number") return Math.abs(v) >= 1000 || Number.isInteger(v) ? Z.fmtNum(v) : v.toFixed(4);
    return String(v);
  }
  async function fetchBlob(ctx, path) { return (await ctx.api(path, { raw: true })).blob(); }
  async function download(ctx, path, filename) {
    const url = URL.createObjectURL(await fetchBlob(ctx, path));
    const a = ctx.h("a", { href: url, download: filename });
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  }
  function pngImage(ctx, path, alt) {
    const img = ctx.h("img", { alt, class: "chart-img", style: { maxWidth: "100%", border: "1px solid #e3e8ef", borderRadius: "6px" } });
    fetchBlob(ctx, path).then((b) => new Promise((res) => { const r = new FileReader(); r.onload = () => res(r.result); r.readAsDataURL(b); }))
      .then((src) => { img.src = src; }).catch((e) => ctx.showError(e));
    return img;
  }
  function bars(ctx, counts) {  // a tiny histogram out of divs
    const max = Math.max(1, ...counts);
    return ctx.h("div", { style: { display: "flex", alignItems: "flex-end", gap: "1px", height: "26px", width: "120px" } },
      counts.map((c) => ctx.h("div", { title: String(c), style: { flex: "1", background: "#5b8def", height: Math.max(1, 26 * c / max) + "px" } })));
  }

  // ------------------------------------------------------------------ datasets
  async function datasetsTab(el, ctx, ws, name) {
    const { h, t, api } = ctx;
    if (!ws) { el.append(h("div", { class: "empty" }, t("请先选择或创建工作区", "Choose or create a workspace first"))); return; }
    if (name) return datasetDetail(el, ctx, ws, name);
    const list = await api(`/api/analytics/workspaces/${encodeURIComponent(ws)}/datasets`);
    const file = h("input", { type: "file", accept: ".csv,.tsv,.txt,.xlsx,.xls,.parquet,.json,.jsonl", "data-testid": "ds-file" });
    const nameIn = h("input", { placeholder: t("表名（默认取文件名）", "Table name (default: file name)") });
    const enc = h("select", {}, h("option", { value: "" }, t("自动识别编码", "Detect encoding")),
      ["utf-8", "gb18030", "gbk"].map((e) => h("option", { value: e }, e)));
    const replace = h("input", { type: "checkbox" });
    const upload = h("button", { class: "btn primary", "data-testid": "ds-upload", onclick: async () => {
      if (!file.files.length) return ctx.toast(t("请选择文件", "Choose a file"), "error");
      const fd = new FormData();
      fd.append("file", file.files[0]);
      if (nameIn.value.trim()) fd.append("name", nameIn.value.trim());
      if (enc.value) fd.append("encoding", enc.value);
      fd.append("replace", replace.checked ? "true" : "false");
      upload.disabled = true;
      try {
        const ds = await api(`/api/analytics/workspaces/${encodeURIComponent(ws)}/datasets`, { method: "POST", body: fd });
        ctx.toast(t(`已导入 ${ds.name}：${ds.rows} 行`, `Imported ${ds.name}: ${ds.rows} rows`), "ok");
        ctx.navigate("analytics", "datasets", ws, ds.name);
      } catch (e) { ctx.showError(e); } finally { upload.disabled = false; }
    } }, ctx.icon("upload", 14), t("导入", "Import"));
    el.append(
      ctx.card(t("导入数据（CSV / Excel / Parquet / JSON，支持 GBK）", "Import data (CSV / Excel / Parquet / JSON, GBK supported)"),
        h("div", { class: "row", style: { gap: "8px", flexWrap: "wrap" } }, file, nameIn, enc,
          h("label", { class: "field check" }, replace, t("覆盖同名表", "Replace")), upload)),
      ctx.card(t("数据集", "Datasets"), ctx.table([
        { label: t("表名", "Table"), render: (d) => h("a", { href: `#/analytics/datasets/${encodeURIComponent(ws)}/${encodeURIComponent(d.name)}`, "data-testid": "ds-link" }, d.name) },
        { label: t("来源", "Source"), key: "source" },
        { label: t("行数", "Rows"), key: "rows", num: true },
        { label: t("列数", "Columns"), key: "columns", num: true },
        { label: t("说明", "Description"), render: (d) => (d.description || "").slice(0, 80) },
      ], list, { testid: "datasets", empty: t("还没有数据集", "No datasets yet") })),
      await glossaryCard(ctx, ws));
  }

  async function datasetDetail(el, ctx, ws, name) {
    const { h, t, api } = ctx;
    const base = `/api/analytics/workspaces/${encodeURIComponent(ws)}/datasets/${encodeURIComponent(name)}`;
    const ds = await api(base);
    const desc = Object.assign({}, ds.column_descriptions);
    const inputs = {};
    const p = ds.profile;
    const summary = (c) => {
      if (c.histogram) return bars(ctx, c.histogram.counts);
      if (c.top_values) return c.top_values.slice(0, 4).map((v) => `${v.value}: ${v.count}`).join(" · ");
      return "";
    };
    const stats = (c) => c.stats && c.kind === "number" ? `${fmt(c.stats.min)} … ${fmt(c.stats.max)} (p50 ${fmt(c.stats.p50)})`
      : c.stats && c.stats.min !== undefined ? `${fmt(c.stats.min)} … ${fmt(c.stats.max)}` : "";
    const save = h("button", { class: "btn primary", "data-testid": "save-descriptions", onclick: async () => {
      const columns = {};
      for (const [col, inp] of Object.entries(inputs)) if ((desc[col] || "") !== inp.value.trim()) columns[col] = inp.value.trim();
      try {
        await api(base, { method: "PATCH", body: { columns } });
        Object.assign(desc, columns);
        ctx.toast(t("字段说明已保存", "Descriptions saved"), "ok");
      } catch (e) { ctx.showError(e); }
    } }, t("保存字段说明", "Save descriptions"));
    el.append(
      h("div", { class: "toolbar" },
        h("a", { class: "btn", href: "#/analytics/datasets" }, "← ", t("数据集", "Datasets")),
        h("strong", { "data-testid": "ds-name" }, `${ws} / ${name}`), h("span", { class: "muted" }, `${fmt(ds.rows)} ${t("行", "rows")}`),
        h("span", { class: "spacer" }),
        h("button", { class: "btn", "data-testid": "ds-csv", onclick: () => download(ctx, base + "/csv", name + ".csv").catch(ctx.showError) }, ctx.icon("download", 14), "CSV"),
        h("button", { class: "btn danger", onclick: async () => {
          if (!(await ctx.confirm(t(`删除数据集 ${name}？`, `Delete dataset ${name}?`)))) return;
          await api(base, { method: "DELETE" }); ctx.navigate("analytics", "datasets");
        } }, t("删除", "Delete"))),
      ds.description ? h("p", { class: "muted" }, ds.description) : null,
      p.warnings.length ? h("div", { class: "notice", "data-testid": "ds-warnings" }, t("注意：", "Warnings: ") + p.warnings.join("; ")) : null,
      ctx.card(t("数据画像与字段说明", "Profile and column descriptions"), ctx.table([
        { label: t("字段", "Column"), render: (c) => h("span", { class: "mono" }, c.name) },
        { label: t("类型", "Type"), render: (c) => c.kind + (c.conversion ? ` (${c.conversion})` : "") },
        { label: t("空值率", "Nulls"), render: (c) => (100 * c.null_rate).toFixed(1) + "%" },
        { label: t("不同值", "Distinct"), key: "distinct", num: true },
        { label: t("范围", "Range"), render: stats },
        { label: t("分布", "Distribution"), render: summary },
        { label: t("说明（供分析助手阅读）", "Description (read by the agent)"), render: (c) => (inputs[c.name] = h("input", { value: desc[c.name] || "", "data-col": c.name, style: { width: "100%", minWidth: "240px" } })) },
      ], p.columns, { testid: "profile" }), save),
      ctx.card(t("样例数据", "Sample rows"), ctx.table(Object.keys(p.sample[0] || {}).map((k) => ({ label: k, render: (r) => fmt(r[k]) })), p.sample)));
  }

  async function glossaryCard(ctx, ws) {
    const { h, t, api } = ctx;
    const base = `/api/analytics/workspaces/${encodeURIComponent(ws)}/glossary`;
    const terms = await api(base);
    const body = h("div", {});
    body.append(ctx.table([
      { label: t("术语", "Term"), key: "term" }, { label: "English", key: "term_en" },
      { label: t("定义", "Definition"), render: (g) => t(g.definition_zh || g.definition_en, g.definition_en || g.definition_zh) },
      { label: t("口径/公式", "Formula"), render: (g) => h("span", { class: "mono" }, g.formula || "") },
    ], terms, { testid: "glossary" }),
    ctx.form([
      { name: "term", label: t("术语", "Term"), required: true },
      { name: "term_en", label: "English" },
      { name: "definition_zh", label: t("中文定义", "Chinese definition"), wide: true },
      { name: "definition_en", label: t("英文定义", "English definition"), wide: true },
      { name: "formula", label: t("口径/公式", "Formula") },
    ], async (v) => {
      await api(`${base}/${encodeURIComponent(v.term)}`, { method: "PUT", body: { term_en: v.term_en, definition_zh: v.definition_zh, definition_en: v.definition_en, formula: v.formula } });
      ctx.toast(t("术语已保存", "Term saved"), "ok");
      ctx.navigate("analytics", "datasets");
    }, { submitLabel: t("添加/修改术语", "Add / change term"), testid: "glossary-form" }));
    return ctx.card(t("业务术语表", "Business glossary"), body);
  }

  // ------------------------------------------------------------------ catalogue
  async function catalogueTab(el, ctx, ws) {
    const { h, t, api } = ctx;
    const models = await api("/api/analytics/catalogue");
    const tables = ws ? await api(`/api/analytics/workspaces/${encodeURIComponent(ws)}/datasets`).catch(() => []) : [];
    const start = async (m) => {
      const ds = h("select", {}, h("option", { value: "" }, t(`示例数据：${m.dataset}`, `Demo data: ${m.dataset}`)),
        tables.map((d) => h("option", { value: d.name }, `${ws} / ${d.name}`)));
      const score = h("input", { placeholder: t("评分结果表名（可选）", "Score table (optional)"), disabled: !m.scores || !ws });
      const params = h("textarea", { rows: 3, class: "mono" }, JSON.stringify(m.params));
      // engine: local (DuckDB + scikit-learn) unless this toggle asks for Spark (MLlib, local[*])
      let spark = false;
      const engineLabel = () => spark ? t("引擎：Spark（MLlib，local[*]）", "Engine: Spark (MLlib, local[*])")
        : t("引擎：本机（DuckDB + scikit-learn）", "Engine: local (DuckDB + scikit-learn)");
      const onSpark = h("button", { type: "button", class: "btn small", "aria-pressed": "false", "data-testid": "run-on-spark",
        onclick: () => { spark = !spark; onSpark.setAttribute("aria-pressed", String(spark)); onSpark.textContent = engineLabel(); } },
        engineLabel());
      ctx.modal({
        title: t("运行 ", "Run ") + t(m.name_zh, m.name_en), testid: "run-modal",
        body: h("div", { class: "form-grid" },
          h("label", { class: "field wide" }, t("数据", "Data"), ds),
          h("label", { class: "field wide" }, t("参数（JSON）", "Parameters (JSON)"), params),
          m.spark ? h("div", { class: "field wide" }, onSpark) : null,
          h("label", { class: "field wide" }, t("评分写入表", "Score into table"), score)),
        actions: [{ label: t("开始运行", "Start"), primary: true, onClick: async () => {
          let p;
          try { p = JSON.parse(params.value || "{}"); } catch (e) { ctx.toast(t("参数不是合法 JSON", "Parameters are not valid JSON"), "error"); return false; }
          const body = ctx.compact({ model: m.key, params: p, workspace: ds.value || score.value ? ws : null, dataset: ds.value || null, score_table: score.value || null, engine: spark ? "spark" : "local" });
          const run = await api("/api/analytics/runs", { method: "POST", body });
          ctx.navigate("analytics", "runs", String(run.id));
        } }],
      });
    };
    el.append(ctx.card(t("挖掘模型目录（对应报告中的基于挖掘的模型表）", "Mining-model catalogue (the talk's table of mining models)"), ctx.table([
      { label: t("模型", "Model"), render: (m) => h("div", {}, h("strong", {}, t(m.name_zh, m.name_en)), h("div", { class: "muted mono" }, m.key)) },
      { label: t("算法", "Algorithm"), key: "algorithm" },
      { label: t("主题", "Theme"), key: "theme" },
      { label: t("应用", "Application"), render: (m) => t(m.application_zh, m.application_en) },
      { label: t("主指标", "Metric"), key: "primary_metric" },
      { label: "Spark", render: (m) => m.spark ? "✓" : "" },
      { label: t("示例数据", "Demo data"), render: (m) => h("span", { title: m.dataset_licence }, m.dataset + (m.synthetic ? t("（含合成数据）", " (partly synthetic)") : "")) },
      { label: "", render: (m) => h("button", { class: "btn small primary", "data-testid": "run-" + m.key, onclick: () => start(m).catch(ctx.showError) }, t("运行", "Run")) },
    ], models, { testid: "catalogue" })));
  }

  // ------------------------------------------------------------------ runs
  function metricsTable(ctx, r) {
    const { h, t } = ctx;
    const rows = Object.keys(r.metrics || {}).map((k) => ({ id: k, k, m: r.metrics[k], b: (r.baseline || {})[k] }));
    return ctx.table([
      { label: t("指标", "Metric"), render: (x) => h("span", { class: x.k === r.primary_metric ? "badge ok" : "" }, x.k) },
      { label: t("模型", "Model"), render: (x) => fmt(x.m), num: false },
      { label: t("基线：", "Baseline: ") + (r.baseline_name || "—"), render: (x) => fmt(x.b) },
    ], rows, { testid: "run-metrics" });
  }

  async function runsTab(el, ctx, ws, id) {
    const { h, t, api } = ctx;
    if (id) return runDetail(el, ctx, ws, Number(id));
    const runs = await api("/api/analytics/runs");
    el.append(ctx.card(t("运行记录", "Runs"), ctx.table([
      { label: "#", render: (r) => h("a", { href: "#/analytics/runs/" + r.id, "data-testid": "run-link" }, String(r.id)) },
      { label: t("模型", "Model"), render: (r) => `${r.model_key} v${r.version}` },
      { label: t("数据", "Data"), key: "dataset" },
      { label: t("引擎", "Engine"), key: "engine" },
      { label: t("状态", "Status"), render: (r) => h("span", { class: "badge " + (r.status === "succeeded" ? "ok" : r.status === "failed" ? "bad" : "") }, r.status) },
      { label: t("主指标", "Metric"), render: (r) => r.metrics ? `${r.primary_metric} ${fmt(r.metrics[r.primary_metric])}` : "—" },
      { label: t("基线", "Baseline"), render: (r) => r.baseline && r.baseline[r.primary_metric] !== undefined ? fmt(r.baseline[r.primary_metric]) : "—" },
      { label: t("时间", "Time"), render: (r) => ctx.fmtTime(r.created_at) },
    ], runs, { testid: "runs", empty: t("还没有运行，去模型目录运行一个", "No runs yet: start one from the catalogue") })));
  }

  async function runDetail(el, ctx, ws, id) {
    const { h, t, api } = ctx;
    const body = h("div", { "data-testid": "run-detail" });
    el.append(h("div", { class: "toolbar" }, h("a", { class: "btn", href: "#/analytics/runs" }, "← ", t("运行记录", "Runs"))), body);
    let timer = null;
    const load = async () => {
      const r = await api("/api/analytics/runs/" + id);
      ctx.clear(body);
      const head = h("div", { class: "row", style: { gap: "10px", alignItems: "center" } },
        h("strong", {}, `#${r.id} ${r.model_key} v${r.version}`), h("span", { class: "muted" }, r.dataset), h("span", { class: "badge", "data-testid": "run-engine" }, r.engine || "local"),
        h("span", { class: "badge " + (r.status === "succeeded" ? "ok" : r.status === "failed" ? "bad" : ""), "data-testid": "run-status" }, r.status));
      body.append(head);
      if (r.status === "queued" || r.status === "running") {
        const pct = Math.round(100 * (r.progress || 0));
        body.append(h("div", { class: "bar", style: { height: "8px", background: "#e3e8ef", borderRadius: "4px", margin: "12px 0" } },
          h("div", { style: { width: pct + "%", height: "8px", background: "#5b8def", borderRadius: "4px" } })),
          h("div", { class: "muted" }, `${pct}% ${r.message || ""}`));
        timer = setTimeout(() => load().catch(ctx.showError), 1000);
        return;
      }
      if (r.status === "failed") { body.append(h("div", { class: "notice error", "data-testid": "run-error" }, r.error || "")); return; }
      const verdict = r.beats_baseline === true ? h("span", { class: "badge ok", "data-testid": "beats-baseline" }, t("优于基线", "Beats the baseline"))
        : r.beats_baseline === false ? h("span", { class: "badge bad", "data-testid": "beats-baseline" }, t("未优于基线", "Does not beat the baseline")) : null;
      const ex = r.explanation || {};
      const notes = (ex.notes || []).map((n) => h("li", {}, n));
      const detail = Object.assign({}, ex); delete detail.notes;
      const pre = h("pre", { class: "mono", style: { maxHeight: "360px", overflow: "auto", fontSize: "12px", whiteSpace: "pre-wrap" } }, JSON.stringify(detail, null, 1));
      const tables = ws ? await api(`/api/analytics/workspaces/${encodeURIComponent(ws)}/datasets`).catch(() => []) : [];
      const scoreSel = h("select", { "data-testid": "score-dataset" }, tables.map((d) => h("option", { value: d.name }, d.name)));
      const scoreBtn = h("button", { class: "btn primary", "data-testid": "score-run", disabled: !tables.length, onclick: async () => {
        try {
          const ds = await api(`/api/analytics/runs/${id}/score`, { method: "POST", body: { workspace: ws, dataset: scoreSel.value } });
          ctx.toast(t(`已写入评分表 ${ds.name}`, `Scored into ${ds.name}`), "ok");
          ctx.navigate("analytics", "datasets", ws, ds.name);
        } catch (e) { ctx.showError(e); }
      } }, t("评分", "Score"));
      body.append(
        h("div", { class: "row", style: { gap: "8px", margin: "10px 0" } }, verdict, h("span", { class: "spacer" }),
          h("button", { class: "btn", "data-testid": "download-model", onclick: () => download(ctx, `/api/analytics/runs/${id}/model`, `${r.model_key}-v${r.version}${r.engine === "spark" ? ".zip" : ".joblib"}`).catch(ctx.showError) }, ctx.icon("download", 14), t("下载模型", "Model")),
          h("button", { class: "btn", onclick: () => download(ctx, `/api/analytics/runs/${id}/evaluation`, `run-${id}-evaluation.json`).catch(ctx.showError) }, ctx.icon("download", 14), t("评估报告", "Evaluation"))),
        ctx.card(t("留出集指标与基线对比", "Hold-out metrics against the baseline"), metricsTable(ctx, r)),
        notes.length ? ctx.card(t("说明", "Notes"), h("ul", {}, notes)) : null,
        r.score_table ? h("p", {}, t("评分结果表：", "Scores table: "), h("a", { href: `#/analytics/datasets/${encodeURIComponent(ws || "demo")}/${encodeURIComponent(r.score_table)}` }, r.score_table)) : null,
        ctx.card(t("图表", "Charts"), h("div", { style: { display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(320px, 1fr))", gap: "12px" }, "data-testid": "run-charts" },
          (r.charts || []).map((c) => h("figure", {}, pngImage(ctx, `/api/analytics/runs/${id}/charts/${encodeURIComponent(c)}.png`, c), h("figcaption", { class: "muted" }, c))))),
        ctx.card(t("模型解释", "Explanation"), pre),
        ctx.card(t("用此模型评分工作区数据", "Score a workspace table with this model"),
          ws ? h("div", { class: "row", style: { gap: "8px" } }, scoreSel, scoreBtn) : h("div", { class: "muted" }, t("请先选择工作区", "Choose a workspace first"))));
    };
    await load();
    return () => { if (timer) clearTimeout(timer); };
  }

  // ------------------------------------------------------------------ page
  Z.registerPage({
    id: "analytics", title: { zh: "数据分析", en: "Analytics" }, order: 40, icon: "chart-column",
    render: async (el, ctx) => {
      const { h, t, api } = ctx;
      const [tab = "datasets", ...rest] = ctx.params || [];
      let workspaces = await api("/api/analytics/workspaces");
      let ws = rest.length > 1 && tab === "datasets" ? rest[0] : localStorage.getItem(WS_KEY);
      if (!workspaces.some((w) => w.name === ws)) ws = workspaces.length ? workspaces[0].name : null;
      if (ws) localStorage.setItem(WS_KEY, ws);
      const wsSel = h("select", { "data-testid": "ws-select", onchange: () => { localStorage.setItem(WS_KEY, wsSel.value); ctx.navigate("analytics", tab); } },
        workspaces.map((w) => h("option", { value: w.name, selected: w.name === ws }, w.name)));
      const demoBtn = h("button", { class: "btn", "data-testid": "load-demo", onclick: async () => {
        demoBtn.disabled = true;
        try { await api("/api/analytics/demo", { method: "POST" }); localStorage.setItem(WS_KEY, "demo"); ctx.navigate("analytics", "datasets"); location.reload(); }
        catch (e) { ctx.showError(e); demoBtn.disabled = false; }
      } }, t("载入示例数据", "Load demo data"));
      const newBtn = h("button", { class: "btn", onclick: () => {
        const name = h("input", { placeholder: "sales_2024" });
        ctx.modal({ title: t("新建工作区", "New workspace"), body: h("label", { class: "field" }, t("名称", "Name"), name), actions: [{
          label: t("创建", "Create"), primary: true, onClick: async () => {
            await api("/api/analytics/workspaces", { method: "POST", body: { name: name.value.trim() } });
            localStorage.setItem(WS_KEY, name.value.trim()); location.reload();
          } }] });
      } }, "+ ", t("工作区", "Workspace"));
      const tabBtn = (id, zh, en) => h("a", { class: "btn" + (tab === id ? " primary" : ""), href: "#/analytics/" + id, "data-testid": "tab-" + id }, t(zh, en));
      const content = h("div", {});
      el.append(h("div", { class: "toolbar" }, tabBtn("datasets", "数据集", "Datasets"), tabBtn("catalogue", "模型目录", "Catalogue"),
        tabBtn("runs", "运行记录", "Runs"), h("span", { class: "spacer" }), t("工作区", "Workspace"), wsSel, newBtn, demoBtn), content);
      if (tab === "catalogue") return catalogueTab(content, ctx, ws);
      if (tab === "runs") return runsTab(content, ctx, ws, rest[0]);
      return datasetsTab(content, ctx, rest.length > 1 ? rest[0] : ws, rest.length > 1 ? rest[1] : null);
    },
  });
})();
