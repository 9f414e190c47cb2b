/* Analytics page (数据分析): workspaces and datasets with profiles, column descriptions and the
 * business glossary; the mining-model catalogue; runs with metrics against the baseline,
 * explanations, charts, model download and scoring into workspace tables.
 *
 * Routes: #/analytics/datasets[/<ws>/<table>], #/analytics/catalogue, #/analytics/runs[/<id>].
 * The run dialog binds the model's column roles (target, features, time …) to the chosen table:
 * POST /api/analytics/bind shows the inferred defaults and any error before the run starts;
 * only roles the user changes are sent, the rest stay inferred on the server (as on the CLI),
 * so the run record's binding says which were inferred.
 * A run's figures are drawn in the browser with ECharts from its plot specs (charts.js, loaded on
 * first use); the PNG charts stay as "export PNG" downloads for reports. Downloads need the
 * Bearer token, so they are fetched as blobs.
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
    el.append(...[  // no "null" text for a missing description or warnings
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
      ctx.card(t("样例数据", "Sample rows"), ctx.table(Object.keys(p.sample[0] || {}).map((k) => ({ label: k, render: (r) => fmt(r[k]) })), p.sample))].filter(Boolean));
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

  // ------------------------------------------------------------------ words (zh / en)
  // Values the server sends as English identifiers, shown in the console's language.
  const WORDS = {
    status: { queued: ["排队中", "queued"], running: ["运行中", "running"], succeeded: ["成功", "succeeded"], failed: ["失败", "failed"] },
    task: { classification: ["分类", "classification"], regression: ["回归", "regression"], forecast: ["预测", "forecast"],
      clustering: ["聚类", "clustering"], association: ["关联分析", "association"], sequence: ["序列挖掘", "sequence"],
      graph: ["社交网络（图）", "graph"], tagging: ["序列标注", "tagging"] },
    theme: { classification: ["分类", "classification"], forecasting: ["预测", "forecasting"], clustering: ["聚类", "clustering"],
      association: ["关联分析", "association"], sequence: ["序列分析", "sequence"], graph: ["社交网络", "graph"], text: ["文本", "text"],
      regression: ["回归", "regression"] },
    kind: { numeric: ["数值", "numeric"], boolean: ["二值", "boolean"], categorical: ["类别", "categorical"], datetime: ["日期时间", "datetime"],
      text: ["文本", "text"], id: ["标识", "id"], empty: ["空", "empty"], any: ["任意", "any"] },
    role: { target: ["目标列", "target"], features: ["特征列", "features"], id: ["标识列", "id"], time: ["时间列", "time"],
      value: ["数值列", "value"], group: ["分组列", "group"], session: ["会话列", "session"], item: ["项目列", "item"],
      source: ["起点列", "source"], destination: ["终点列", "destination"], text: ["文本列", "text"], label: ["标签列", "label"],
      weight: ["权重列", "weight"], user: ["用户列", "user"], tokens: ["词元列", "tokens"], token: ["词元列", "token"],
      tags: ["标注列", "tags"], sentence: ["句子列", "sentence"], network: ["网络列", "network"] },
    engine: { local: ["本机", "local"], spark: ["Spark", "Spark"] },
    // explanation keys -> headings of their tables
    expl: { coefficients: ["系数", "Coefficients"], importances: ["特征重要性", "Feature importances"],
      feature_importances: ["特征重要性", "Feature importances"], importance: ["特征重要性", "Feature importance"],
      lift: ["提升度与覆盖率（按十分位）", "Lift and capture by decile"], lift_table: ["提升度与覆盖率（按十分位）", "Lift and capture by decile"],
      thresholds: ["阈值表", "Thresholds"], threshold_table: ["阈值表", "Thresholds"], threshold: ["阈值", "Threshold"],
      rules: ["规则", "Rules"], top_rules: ["主要规则", "Top rules"], profiles: ["分群画像", "Segment profiles"],
      segment_profiles: ["分群画像", "Segment profiles"], segments: ["分群", "Segments"], clusters: ["簇", "Clusters"],
      centroids: ["簇中心", "Centroids"], features: ["使用的特征", "Features used"], per_class_f1: ["各类别 F1", "F1 by class"],
      errors: ["错分样例", "Misclassified examples"], examples: ["样例", "Examples"], confusion_matrix: ["混淆矩阵", "Confusion matrix"],
      positive: ["正类", "Positive class"], communities: ["社区", "Communities"], centrality: ["中心性", "Centrality"],
      top_patterns: ["高频模式", "Top patterns"], patterns: ["模式", "Patterns"], order: ["阶数", "Order"], holidays: ["节假日", "Holidays"],
      calendar: ["节假日日历", "Holiday calendar"], summary: ["概要", "Summary"], baseline: ["基线", "Baseline"],
      lift_by_decile: ["提升度与覆盖率（按十分位）", "Lift and capture by decile"], target: ["目标列", "Target"],
      intercept: ["截距", "Intercept"], fitted_on: ["训练数据", "Fitted on"], odds_ratios: ["优势比", "Odds ratios"],
      tree: ["决策树", "Tree"], largest_communities: ["最大的社区", "Largest communities"], top_pagerank: ["PageRank 最高的节点", "Top PageRank"],
      coefficients_log_scale: ["系数（对数尺度）", "Coefficients (log scale)"], lag_coefficients: ["滞后项系数", "Lag coefficients"],
      series: ["序列", "Series"], special_days: ["节假日与调休", "Special days"], cluster_profiles: ["簇画像", "Cluster profiles"],
      top_rules_by_lift: ["提升度最高的规则", "Top rules by lift"], hit_rate_by_k: ["前 k 项命中率", "Hit rate by k"], hit_by_k: ["前 k 项命中率", "Hit rate by k"],
      repeat_last_item_baseline: ["基线：重复上一项", "Baseline: repeat the last item"], example: ["样例", "Example"],
      transition_probs: ["状态转移概率", "Transition probabilities"], feature_importance: ["特征重要性", "Feature importance"],
      bic_by_k: ["各簇数的 BIC", "BIC by k"], aic_grid: ["AIC 定阶", "AIC order search"], arima_params: ["ARIMA 参数", "ARIMA parameters"],
      max_match_with_training_vocab: ["基线：按训练词表最大匹配", "Baseline: max match with the training vocabulary"],
      new_words_not_in_jieba_dictionary: ["jieba 词典之外的新词", "New words not in the jieba dictionary"], transitions: ["转移", "Transitions"], recommendations: ["推荐", "Recommendations"] },
  };
  const word = (t, group, v) => { const w = WORDS[group] && WORDS[group][v]; return w ? t(w[0], w[1]) : (v ?? "—"); };
  // Algorithm names are English in the catalogue; phrase by phrase into Chinese.
  const ALGO_ZH = [
    [/logistic regression/gi, "逻辑回归"], [/linear regression/gi, "线性回归"], [/decision tree/gi, "决策树"],
    [/gradient[- ]boost(ed|ing)( decision)? trees?/gi, "梯度提升树"], [/gradient boosting/gi, "梯度提升"], [/random forest/gi, "随机森林"],
    [/multi-?layer perceptron/gi, "多层感知机"], [/neural network/gi, "神经网络"], [/support vector machine/gi, "支持向量机"],
    [/RBF kernel/g, "RBF 核"], [/linear kernel/gi, "线性核"], [/multinomial naive Bayes/gi, "多项式朴素贝叶斯"],
    [/Gaussian for numbers/gi, "数值用高斯分布"], [/categorical for categories/gi, "类别用类别分布"],
    [/standardi[sz]ed numbers/gi, "数值标准化"], [/one-hot categories/gi, "类别独热编码"], [/\bcosine\b/gi, "余弦相似度"],
    [/^PrefixSpan$/, "PrefixSpan 序列模式挖掘"],
    [/naive Bayes/gi, "朴素贝叶斯"], [/k-?nearest neighbou?rs?/gi, "K 近邻"], [/\bKMeans\b/g, "K 均值（KMeans）"], [/\bKModes\b/g, "K 众数（KModes）"],
    [/Gaussian mixture/gi, "高斯混合"], [/regression with ARIMA errors/gi, "带 ARIMA 误差的回归"], [/order chosen by AIC/gi, "按 AIC 选阶"],
    [/Louvain community detection/gi, "Louvain 社区发现"], [/PageRank centrality/gi, "PageRank 中心性"],
    [/hidden Markov model/gi, "隐马尔可夫模型"], [/Viterbi/g, "维特比"], [/Apriori association rules/gi, "Apriori 关联规则"],
    [/item-item collaborative filtering/gi, "物品协同过滤"], [/collaborative filtering/gi, "协同过滤"], [/association rules/gi, "关联规则"],
    [/sequential pattern mining/gi, "序列模式挖掘"], [/for tables/gi, "表格数据"], [/\btabular\b/gi, "表格"],
    [/multinomial/gi, "多项式"], [/gaussian/gi, "高斯"], [/categorical/gi, "类别型"], [/mixed/gi, "混合型"],
  ];
  function algorithm(t, s) {
    if (!s || t("zh", "en") === "en") return s || "—";
    let out = String(s);
    for (const [re, zh] of ALGO_ZH) out = out.replace(re, zh);
    return out.replace(/\s*\(/g, "（").replace(/\)/g, "）").replace(/, /g, "，").replace(/ \+ /g, " + ");
  }
  function dropReason(t, r) {
    if (t("zh", "en") === "en") return r;
    const known = { "entirely empty": "全为空", "identifier (one value per row)": "标识列（每行一个值）", constant: "常量" };
    if (known[r]) return known[r];
    const m = /^(\w+) column \(this role takes (.+)\)$/.exec(r || "");
    return m ? `${word(t, "kind", m[1])}列（此角色需要 ${m[2].split(" or ").map((k) => word(t, "kind", k)).join(" 或 ")}）` : r;
  }
  const statusBadge = (ctx, s, testid) => ctx.h("span", { class: "badge " + (s === "succeeded" ? "ok" : s === "failed" ? "bad" : ""),
    "data-testid": testid, "data-status": s }, word(ctx.t, "status", s));

  // the chart code (charts.js + vendored ECharts) is loaded on first use only
  const loadCharts = () => window.Zhinao.loadCharts();  // one loader for every page (app.js)

  // ------------------------------------------------------------------ catalogue and the run dialog
  /** The role editor of the run dialog: one control per role, filled from POST /bind. */
  function roleEditor(ctx, m) {
    const { h, t } = ctx;
    const touched = {};  // role -> what the user chose (sent as a binding); untouched roles stay inferred
    const box = h("div", { class: "roles", "data-testid": "run-roles" });
    const err = h("div", { class: "inline-error", "data-testid": "bind-error", role: "alert" });
    const kindTag = (k) => h("span", { class: "kind kind-" + k }, word(t, "kind", k));
    let onChange = () => {};
    function draw(res) {
      ctx.clear(box);
      const cols = (res && res.columns) || [];
      const b = (res && res.binding) || { columns: {}, inferred: [], dropped: {}, kinds: {} };
      err.textContent = res && res.error ? res.error : "";
      err.style.display = res && res.error ? "" : "none";
      for (const role of m.roles || []) {
        const value = touched[role.name] !== undefined ? touched[role.name] : b.columns[role.name];
        const inferred = touched[role.name] === undefined && (b.inferred || []).includes(role.name);
        // what bind() accepts for the role (roles.py check), and what "all usable" takes (its "rest" rule)
        const K = role.kinds, has = (k) => K.includes(k);
        const usable = (c) => has("any") || has(c.kind) || (c.kind === "boolean" && has("categorical"));
        const fits = (c) => usable(c) || (c.kind === "id" && (has("categorical") || has("text") || has("id")))
          || (["numeric", "boolean"].includes(c.kind) && has("categorical")) || (c.kind === "categorical" && has("text"))
          || (c.kind === "boolean" && has("numeric"));
        const ordered = [...cols.filter(fits), ...cols.filter((c) => !fits(c))];
        let control;
        if (role.many) {
          const chosen = new Set(Array.isArray(value) ? value : value ? [value] : []);
          const checks = ordered.map((c) => h("label", { class: "col-check" + (fits(c) ? "" : " off") },
            h("input", { type: "checkbox", value: c.name, checked: chosen.has(c.name), "data-col": c.name, onchange: () => {
              touched[role.name] = checks.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
              onChange();
            } }), h("span", { class: "mono" }, c.name), kindTag(c.kind),
            b.dropped && b.dropped[c.name] && !chosen.has(c.name) ? h("span", { class: "muted small" }, dropReason(t, b.dropped[c.name])) : null));
          control = h("div", {},
            h("div", { class: "row small-gap" },
              h("button", { type: "button", class: "btn small", onclick: () => { touched[role.name] = ordered.filter(usable).map((c) => c.name); onChange(); } }, t("全选可用列", "All usable")),
              h("button", { type: "button", class: "btn small", onclick: () => { touched[role.name] = []; onChange(); } }, t("清空", "None")),
              h("button", { type: "button", class: "btn small", "data-testid": "reset-" + role.name, onclick: () => { delete touched[role.name]; onChange(); } }, t("恢复自动推断", "Infer again")),
              h("span", { class: "muted" }, t(`已选 ${chosen.size} 列`, `${chosen.size} chosen`))),
            h("div", { class: "cols-box", "data-testid": "role-" + role.name }, checks));
        } else {
          const sel = h("select", { "data-testid": "role-" + role.name, onchange: () => {
            if (sel.value === "") delete touched[role.name]; else touched[role.name] = sel.value;
            onChange();
          } },
          h("option", { value: "" }, role.required && !role.infer && !role.demo ? t("— 请选择 —", "— choose —")
            : role.required ? t("（自动推断）", "(infer)") : t("（自动推断，可不用）", "(infer, optional)")),
          ordered.map((c) => h("option", { value: c.name, selected: c.name === value }, `${c.name} · ${word(t, "kind", c.kind)}${fits(c) ? "" : " ✗"}`)));
          if (value && !cols.some((c) => c.name === value)) sel.appendChild(h("option", { value, selected: true }, value));
          control = sel;
        }
        box.append(h("div", { class: "role-row", "data-role": role.name },
          h("div", { class: "role-name" }, h("strong", {}, word(t, "role", role.name)),
            word(t, "role", role.name) !== role.name ? h("span", { class: "mono muted" }, role.name) : null,
            role.required ? h("span", { class: "req", title: t("必需", "required") }, "*") : null,
            inferred ? h("span", { class: "badge blue", "data-testid": "inferred-" + role.name }, t("自动推断", "inferred")) : null,
            h("div", { class: "muted small" }, t(role.help_zh || role.help_en, role.help_en || role.help_zh)),
            h("div", { class: "muted small" }, t("可用类型：", "Kinds: ") + role.kinds.map((k) => word(t, "kind", k)).join(" / "))),
          h("div", { class: "role-control" }, control)));
      }
      const dropped = Object.entries(b.dropped || {});
      if (dropped.length) {
        box.append(h("div", { class: "muted small", "data-testid": "bind-dropped" }, t("未使用的列：", "Columns left out: "),
          dropped.map(([c, r]) => `${c}（${dropReason(t, r)}）`).join(t("；", "; "))));
      }
    }
    return { box, err, draw, touched, set onChange(fn) { onChange = fn; } };
  }

  async function catalogueTab(el, ctx, ws) {
    const { h, t, api } = ctx;
    const models = await api("/api/analytics/catalogue");
    const tables = ws ? await api(`/api/analytics/workspaces/${encodeURIComponent(ws)}/datasets`).catch(() => []) : [];
    const start = async (m) => {
      const roleNames = new Set((m.roles || []).map((r) => r.name));
      const presets = m.presets || [];
      const ds = h("select", { "data-testid": "run-dataset" }, h("option", { value: "" }, t(`示例数据：${m.dataset}`, `Demo data: ${m.dataset}`)),
        tables.map((d) => h("option", { value: d.name }, `${ws} / ${d.name}`)));
      const presetSel = h("select", { "data-testid": "run-preset", disabled: !presets.length },
        presets.length ? presets.map((p) => h("option", { value: p.key }, t(p.name_zh, p.name_en))) : h("option", { value: "" }, "—"));
      const presetNote = h("div", { class: "muted small", "data-testid": "preset-note" });
      const score = h("input", { placeholder: t("评分结果表名（可选）", "Score table (optional)"), disabled: !m.scores || !ws, "data-testid": "run-score-table" });
      const positive = "positive" in (m.params || {}) ? h("input", { placeholder: t("例如 是 / True / 流失（默认自动识别）", "e.g. Yes / True / 流失 (detected by default)"), "data-testid": "run-positive" }) : null;
      // refit: after the hold-out evaluation, fit once more on every row (the model then scores new tables)
      const refit = "refit" in (m.params || {}) ? h("input", { type: "checkbox", "data-testid": "run-refit" }) : null;
      const params = h("textarea", { rows: 3, class: "mono", "data-testid": "run-params" });
      const bindState = h("span", { class: "muted small", "data-testid": "bind-status" });
      const editor = roleEditor(ctx, m);
      const otherParams = () => {
        const p = presets.find((x) => x.key === presetSel.value);
        const out = {};
        for (const [k, v] of Object.entries(Object.assign({}, m.params || {}, p ? p.params : {}))) {
          if (!roleNames.has(k) && !["positive", "preset", "refit"].includes(k)) out[k] = v;
        }
        return out;
      };
      const showPreset = () => {
        const p = presets.find((x) => x.key === presetSel.value);
        presetNote.textContent = p ? t(p.note_zh || p.note_en, p.note_en || p.note_zh) : "";
        params.value = JSON.stringify(otherParams());
      };
      const readParams = () => {
        let p;
        try { p = JSON.parse(params.value || "{}"); } catch (e) { throw new Error(t("参数不是合法 JSON", "Parameters are not valid JSON")); }
        if (!p || typeof p !== "object" || Array.isArray(p)) throw new Error(t("参数须为 JSON 对象", "Parameters must be a JSON object"));
        Object.assign(p, editor.touched);
        if (positive && positive.value.trim()) p.positive = positive.value.trim();
        if (refit && refit.checked) p.refit = true;
        return p;
      };
      let seq = 0, timer = null;
      const rebind = async () => {
        const mine = ++seq;
        if (!ds.value) {  // demo data: the roles' demo columns, nothing to ask the server
          const cols = [];
          const binding = { columns: {}, inferred: [], dropped: {}, kinds: {} };
          for (const r of m.roles || []) if (r.demo) { binding.columns[r.name] = r.demo; binding.inferred.push(r.name); }
          for (const r of m.roles || []) for (const c of [].concat(r.demo || [])) if (!cols.some((x) => x.name === c)) cols.push({ name: c, kind: r.kinds[0] });
          bindState.textContent = t("示例数据使用其默认列", "Demo data runs with its own columns");
          editor.draw({ columns: cols, binding, error: null });
          return;
        }
        let body;
        try { body = { model: m.key, workspace: ws, dataset: ds.value, params: readParams(), preset: presetSel.value || null }; }
        catch (e) { editor.draw({ columns: [], binding: null, error: e.message }); return; }
        bindState.textContent = t("正在识别列…", "Binding columns…");
        try {
          const res = await api("/api/analytics/bind", { method: "POST", body: ctx.compact(body) });
          if (mine !== seq) return;
          bindState.textContent = res.ok ? t("列绑定可用", "Binding is valid") : t("列绑定有误", "Binding has a problem");
          bindState.dataset.ok = String(!!res.ok);
          editor.draw(res);
        } catch (e) {
          if (mine !== seq) return;
          bindState.textContent = ""; bindState.dataset.ok = "false";
          editor.draw({ columns: [], binding: null, error: e.message });
        }
      };
      const later = () => { clearTimeout(timer); timer = setTimeout(() => rebind().catch(ctx.showError), 250); };
      editor.onChange = later;
      ds.addEventListener("change", () => { for (const k of Object.keys(editor.touched)) delete editor.touched[k]; later(); });
      presetSel.addEventListener("change", () => { showPreset(); later(); });
      params.addEventListener("change", later);
      if (positive) positive.addEventListener("change", later);
      // engine: local (DuckDB + scikit-learn) unless this toggle asks for Spark (MLlib, local[*])
      let spark = false;
      const engineLabel = () => spark ? t("引擎：Spark（MLlib，local[*]）", "Engine: Spark (MLlib, local[*])")
        : t("引擎：本机（DuckDB + scikit-learn）", "Engine: local (DuckDB + scikit-learn)");
      const onSpark = h("button", { type: "button", class: "btn small", "aria-pressed": "false", "data-testid": "run-on-spark",
        onclick: () => { spark = !spark; onSpark.setAttribute("aria-pressed", String(spark)); onSpark.textContent = engineLabel(); } },
        engineLabel());
      showPreset();
      ctx.modal({
        title: t("运行 ", "Run ") + t(m.name_zh, m.name_en), testid: "run-modal",
        body: h("div", { class: "form-grid" },
          h("label", { class: "field" }, t("数据", "Data"), ds),
          h("label", { class: "field" }, t("应用模型（预设）", "Application model (preset)"), presetSel),
          h("div", { class: "wide" }, presetNote),
          h("div", { class: "field wide" }, h("div", { class: "row" }, h("span", {}, t("列角色", "Column roles")), bindState), editor.err, editor.box),
          positive ? h("label", { class: "field wide" }, t("正类取值（可选）", "Positive class (optional)"), positive) : null,
          refit ? h("label", { class: "field check wide" }, refit, t("评估后用全部行重新训练（用于评分新数据）", "Refit on all rows after the evaluation (for scoring new data)")) : null,
          h("label", { class: "field wide" }, t("其他参数（JSON）", "Other parameters (JSON)"), params),
          m.spark ? h("div", { class: "field wide" }, onSpark) : null,
          h("label", { class: "field wide" }, t("评分写入表", "Score into table"), score)),
        actions: [{ label: t("开始运行", "Start"), primary: true, testid: "run-start", onClick: async () => {
          let p;
          try { p = readParams(); } catch (e) { ctx.toast(e.message, "error"); return false; }
          const body = ctx.compact({ model: m.key, params: p, workspace: ds.value || score.value ? ws : null, dataset: ds.value || null,
            score_table: score.value || null, engine: spark ? "spark" : "local", preset: presetSel.value || null });
          const run = await api("/api/analytics/runs", { method: "POST", body });
          ctx.navigate("analytics", "runs", String(run.id));
        } }],
      });
      await rebind();
    };
    el.append(ctx.card(t("挖掘模型目录（对应报告中的基于挖掘的模型表）", "Mining-model catalogue (the talk's table of mining models)"), ctx.table([
      { label: t("模型", "Model"), render: (m) => h("div", {}, h("strong", {}, t(m.name_zh, m.name_en)), h("div", { class: "muted mono" }, m.key)) },
      { label: t("算法", "Algorithm"), render: (m) => h("span", { "data-testid": "algorithm" }, algorithm(t, m.algorithm)) },
      { label: t("任务", "Task"), render: (m) => h("span", { "data-testid": "task" }, word(t, "task", m.task)) },
      { label: t("主题", "Theme"), render: (m) => word(t, "theme", m.theme) },
      { label: t("应用", "Application"), render: (m) => h("div", {}, t(m.application_zh, m.application_en),
        (m.presets || []).length > 1 ? h("div", { class: "chips" }, m.presets.map((p) => h("span", { class: "chip" }, t(p.name_zh, p.name_en)))) : null) },
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

  /** A cell value: numbers formatted, short lists joined, anything nested as compact text. */
  function cell(v) {
    if (v === null || v === undefined) return "—";
    if (typeof v === "number" || typeof v === "string") return fmt(v);
    if (typeof v === "boolean") return String(v);
    if (Array.isArray(v) && v.every((x) => x === null || typeof x !== "object")) return v.map((x) => fmt(x)).join(", ");
    if (typeof v === "object" && !Array.isArray(v) && Object.values(v).every((x) => x === null || typeof x !== "object")) {
      return Object.entries(v).map(([k, x]) => `${k}: ${fmt(x)}`).join(", ");
    }
    return JSON.stringify(v);
  }
  const MAX_ROWS = 50;
  /** One explanation value as a table (or a line), whatever its shape; null when there is nothing. */
  function valueTable(ctx, v) {
    const { h, t } = ctx;
    const more = (n) => n > MAX_ROWS ? h("div", { class: "muted small" }, t(`共 ${n} 行，显示前 ${MAX_ROWS} 行`, `${n} rows, first ${MAX_ROWS} shown`)) : null;
    const isObj = (x) => x && typeof x === "object" && !Array.isArray(x);
    if (Array.isArray(v)) {
      if (!v.length) return h("div", { class: "muted" }, "—");
      if (v.every(isObj)) {
        const keys = [...new Set(v.flatMap((x) => Object.keys(x)))].slice(0, 14);
        return h("div", { class: "expl-table" }, ctx.table(keys.map((k) => ({ label: k, render: (r) => cell(r[k]), num: typeof v[0][k] === "number" })),
          v.slice(0, MAX_ROWS)), more(v.length));
      }
      if (v.every(Array.isArray)) return h("div", { class: "expl-table" }, ctx.table(v[0].map((_, i) => ({ label: "#" + (i + 1), render: (r) => cell(r[i]) })), v.slice(0, MAX_ROWS)), more(v.length));
      return h("div", {}, cell(v));
    }
    if (isObj(v)) {
      const entries = Object.entries(v);
      if (!entries.length) return h("div", { class: "muted" }, "—");
      if (entries.every(([, x]) => isObj(x))) {  // {segment: {col: value}} -> one row per outer key
        const keys = [...new Set(entries.flatMap(([, x]) => Object.keys(x)))].slice(0, 14);
        return h("div", { class: "expl-table" }, ctx.table([{ label: "", render: (r) => h("strong", {}, r[0]) },
          ...keys.map((k) => ({ label: k, render: (r) => cell(r[1][k]), num: typeof entries[0][1][k] === "number" }))], entries.slice(0, MAX_ROWS)), more(entries.length));
      }
      return h("div", { class: "expl-table" }, ctx.table([{ label: t("项", "Name"), render: (r) => h("span", { class: "mono" }, r[0]) },
        { label: t("值", "Value"), render: (r) => cell(r[1]), num: false }], entries.slice(0, MAX_ROWS)), more(entries.length));
    }
    return h("div", {}, cell(v));
  }
  /** The explanation as tables: scalars together in a summary, every structured value its own table. */
  function explanationCards(ctx, ex, shown) {
    const { t } = ctx;
    const skip = new Set(["notes", "split", ...(shown || [])]);  // those have cards of their own
    const summary = {};
    const out = [];
    for (const [k, v] of Object.entries(ex || {})) {
      if (skip.has(k)) continue;
      if (v === null || typeof v !== "object" || (Array.isArray(v) && v.length <= 12 && v.every((x) => x === null || typeof x !== "object"))) { summary[k] = v; continue; }
      const w = WORDS.expl[k];
      out.push(ctx.h("div", { class: "expl", "data-testid": "expl-" + k }, ctx.h("h4", {}, w ? t(w[0], w[1]) : k.replace(/_/g, " ")), valueTable(ctx, v)));
    }
    if (Object.keys(summary).length) {
      const named = Object.fromEntries(Object.entries(summary).map(([k, v]) => [WORDS.expl[k] ? t(WORDS.expl[k][0], WORDS.expl[k][1]) : k, v]));
      out.unshift(ctx.h("div", { class: "expl", "data-testid": "expl-summary" }, ctx.h("h4", {}, t("概要", "Summary")), valueTable(ctx, named)));
    }
    return out;
  }
  function bindingTable(ctx, binding) {
    const { h, t } = ctx;
    const b = binding || {};
    const rows = Object.entries(b.columns || {}).map(([role, cols]) => ({ id: role, role, cols: [].concat(cols ?? []) }));
    const dropped = Object.entries(b.dropped || {});
    return h("div", {}, ctx.table([
      { label: t("角色", "Role"), render: (r) => h("span", {}, word(t, "role", r.role), " ", h("span", { class: "mono muted" }, r.role)) },
      { label: t("列", "Columns"), render: (r) => h("span", { class: "mono" }, r.cols.length ? r.cols.map((c) => `${c}（${word(t, "kind", (b.kinds || {})[c])}）`).join(t("、", ", ")) : "—") },
      { label: t("来源", "From"), render: (r) => (b.inferred || []).includes(r.role) ? h("span", { class: "badge blue" }, t("自动推断", "inferred")) : h("span", { class: "badge" }, t("指定", "given")) },
    ], rows, { testid: "run-binding", empty: t("此运行没有记录列绑定", "This run recorded no binding") }),
    dropped.length ? h("div", { class: "muted small", style: { padding: "8px 14px" } }, t("未使用的列：", "Columns left out: "),
      dropped.map(([c, r]) => `${c}（${dropReason(t, r)}）`).join(t("；", "; "))) : null);
  }

  async function runsTab(el, ctx, ws, id) {
    const { h, t, api } = ctx;
    if (id) return runDetail(el, ctx, ws, Number(id));
    const runs = await api("/api/analytics/runs");
    el.append(ctx.card(t("运行记录", "Runs"), ctx.table([
      { label: "#", render: (r) => h("a", { href: "#/analytics/runs/" + r.id, "data-testid": "run-link" }, String(r.id)) },
      { label: t("模型", "Model"), render: (r) => `${r.model_key} v${r.version}` },
      { label: t("数据", "Data"), key: "dataset" },
      { label: t("引擎", "Engine"), render: (r) => word(t, "engine", r.engine || "local") },
      { label: t("状态", "Status"), render: (r) => statusBadge(ctx, r.status) },
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
    let gone = false;
    const disposers = [];
    const load = async () => {
      const r = await api("/api/analytics/runs/" + id);
      if (gone) return;
      ctx.clear(body);
      const head = h("div", { class: "row", style: { gap: "10px", alignItems: "center" } },
        h("strong", {}, `#${r.id} ${r.model_key} v${r.version}`), h("span", { class: "muted" }, r.dataset),
        h("span", { class: "badge", "data-testid": "run-engine", "data-engine": r.engine || "local" }, word(t, "engine", r.engine || "local")),
        r.preset ? h("span", { class: "badge blue", "data-testid": "run-preset" }, r.preset) : null,
        statusBadge(ctx, r.status, "run-status"));
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
      const notes = (r.notes && r.notes.length ? r.notes : ex.notes || []).map((n) => h("li", {}, n));
      const split = r.split || ex.split;
      const meta = await api(`/api/analytics/catalogue/${encodeURIComponent(r.model_key)}`).catch(() => null);
      const scores = !meta || meta.scores !== false;  // clustering/graph/sequence entries may not score rows
      const fitting = ws && scores ? await api(`/api/analytics/runs/${id}/score-tables?workspace=${encodeURIComponent(ws)}`).catch(() => []) : [];
      const scoreSel = h("select", { "data-testid": "score-dataset" }, fitting.map((d) => h("option", { value: d.name }, d.rows !== undefined && d.rows !== null ? `${d.name}（${fmt(d.rows)} ${t("行", "rows")}）` : d.name)));
      const scoreBtn = h("button", { class: "btn primary", "data-testid": "score-run", disabled: !fitting.length, onclick: async () => {
        try {
          const ds = await api(`/api/analytics/runs/${id}/score`, { method: "POST", body: { workspace: ws, dataset: scoreSel.value } });
          ctx.toast(t(`已写入评分表 ${ds.name}`, `Scored into ${ds.name}`), "ok");
          ctx.navigate("analytics", "datasets", ws, ds.name);
        } catch (e) { ctx.showError(e); }
      } }, t("评分", "Score"));
      const charts = h("div", { class: "chart-grid", "data-testid": "run-charts" });
      const pngs = (r.charts || []).map((c) => h("button", { class: "btn small", "data-testid": "export-png", "data-chart": c,
        onclick: () => download(ctx, `/api/analytics/runs/${id}/charts/${encodeURIComponent(c)}.png`, `run-${id}-${c}.png`).catch(ctx.showError) },
      ctx.icon("download", 13), c + ".png"));
      body.append(...[  // DOM append() would print a null as "null"
        h("div", { class: "row", style: { gap: "8px", margin: "10px 0" } }, verdict, h("span", { class: "spacer" }),
          h("button", { class: "btn", "data-testid": "download-model", onclick: () => download(ctx, `/api/analytics/runs/${id}/model`, `${r.model_key}-v${r.version}${r.engine === "spark" ? ".zip" : ".joblib"}`).catch(ctx.showError) }, ctx.icon("download", 14), t("下载模型", "Model")),
          h("button", { class: "btn", onclick: () => download(ctx, `/api/analytics/runs/${id}/evaluation`, `run-${id}-evaluation.json`).catch(ctx.showError) }, ctx.icon("download", 14), t("评估报告", "Evaluation"))),
        ctx.card(t("留出集指标与基线对比", "Hold-out metrics against the baseline"), metricsTable(ctx, r)),
        split ? ctx.card(t("留出集划分", "Hold-out split"), h("div", { "data-testid": "run-split" }, valueTable(ctx, split))) : null,
        ctx.card(t("列绑定", "Column binding"), bindingTable(ctx, r.binding)),
        notes.length ? ctx.card(t("说明", "Notes"), h("ul", { "data-testid": "run-notes" }, notes)) : null,
        r.score_table ? h("p", {}, t("评分结果表：", "Scores table: "), h("a", { href: `#/analytics/datasets/${encodeURIComponent(ws || "demo")}/${encodeURIComponent(r.score_table)}` }, r.score_table)) : null,
        ctx.card(t("交互图表", "Interactive charts"), charts,
          pngs.length ? h("div", { class: "row small-gap", "data-testid": "png-exports" }, h("span", { class: "muted small" }, t("导出 PNG（用于报告）：", "Export PNG (for reports):")), pngs) : null),
        ctx.card(t("模型解释", "Explanation"), h("div", { "data-testid": "run-explanation" }, explanationCards(ctx, ex, r.binding ? ["binding"] : []))),
        ctx.card(t("用此模型评分工作区数据", "Score a workspace table with this model"),
          !scores ? h("div", { class: "muted", "data-testid": "score-none" }, t("此模型不对数据行评分", "This model does not score rows"))
            : !ws ? h("div", { class: "muted" }, t("请先选择工作区", "Choose a workspace first"))
            : fitting.length ? h("div", { class: "row", style: { gap: "8px" } }, scoreSel, scoreBtn)
              : h("div", { class: "muted", "data-testid": "score-none" }, (r.engine || "local") !== "local"
                ? t("Spark 引擎的运行不在控制台评分；请用本机引擎运行", "Runs on the Spark engine are not scored here; run on the local engine")
                : t(`工作区 ${ws} 中没有包含此模型所需各列的表`, `No table of workspace ${ws} has every column this model needs`)))].filter(Boolean));
      if (!(r.plots || []).length) { charts.append(h("div", { class: "muted" }, t("此运行没有交互图表", "This run has no interactive charts"))); return; }
      const [C, specs] = await Promise.all([loadCharts(), api(`/api/analytics/runs/${id}/plots`)]);
      if (gone) return;
      for (const [name, spec] of Object.entries(specs || {})) {
        const fig = h("figure", { class: "plot" + (spec.type === "table" ? " wide" : ""), "data-plot": name, "data-type": spec.type },
          h("figcaption", {}, C.pick(spec.title || name, ctx.lang), spec.sampled ? h("span", { class: "muted small" }, t("（抽样显示）", " (sampled)")) : null));
        charts.append(fig);
        try { disposers.push(C.render(fig, spec, ctx.lang)); } catch (e) { fig.append(h("div", { class: "muted" }, e.message)); }
      }
    };
    await load();
    return () => { gone = true; if (timer) clearTimeout(timer); for (const d of disposers.splice(0)) d(); };
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
