/* Alignment page (对齐): compare mode for reviewers; datasets, training stages with live
 * loss / reward / KL charts, and aligned models with their evaluation, for tenant admins.
 *
 * Route: #/alignment/<tab>[/<id>], tab = compare | datasets | training | models. Members see
 * only the compare tab (the API refuses them the rest with 403 anyway).
 *
 * Compare mode: a prompt goes to the model 2-4 times (different seeds and temperatures); the
 * distinct answers are shown side by side, the reviewer may write a better one, gives each a
 * rank (1 = best) and saves: every higher answer becomes "chosen" over every lower one in the
 * preference data (3 ranked answers, 3 pairs). Ties are refused by the server with a message.
 *
 * Model text is only ever set through h() (textContent), never as HTML. Charts come from
 * charts.js + the vendored ECharts, loaded on first use as the analytics page does.
 */
(function () {
  "use strict";
  const Z = window.Zhinao;
  const A = "/api/alignment";
  const POLL_MS = 2000;

  // the chart code (charts.js + vendored ECharts) is loaded on first use only
  const loadCharts = () => window.Zhinao.loadCharts();  // one loader for every page (app.js)

  const STATUS = { queued: ["排队", "queued", "warn"], running: ["训练中", "running", "warn"], succeeded: ["完成", "succeeded", "ok"],
    failed: ["失败", "failed", "bad"], cancelled: ["已取消", "cancelled", ""] };
  function statusBadge(ctx, s) {
    const [zh, en, cls] = STATUS[s] || [s, s, ""];
    return ctx.h("span", { class: "badge " + cls, "data-testid": "align-job-status", "data-status": s }, ctx.t(zh, en));
  }
  const STAGES = { sft: ["监督微调 SFT", "SFT (supervised fine-tuning)"], rm: ["奖励模型 RM", "Reward model"],
    dpo: ["DPO 偏好优化", "DPO (direct preference)"], ppo: ["PPO 强化学习", "PPO (RL with KL control)"] };
  const stageLabel = (t, s) => (STAGES[s] ? t(STAGES[s][0], STAGES[s][1]) : s || "—");
  const fmt = (v) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : v === null || v === undefined ? "—" : String(v));

  /** A file download through fetch (the token is a header, not a cookie). */
  async function download(ctx, path, name) {
    const resp = await ctx.api(path, { raw: true });
    const url = URL.createObjectURL(await resp.blob());
    const a = ctx.h("a", { href: url, download: name });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // ------------------------------------------------------------------ compare
  async function compareTab(el, ctx, openId) {
    const { h, t, api } = ctx;
    const prompt = h("textarea", { rows: 3, style: { width: "100%" }, "data-testid": "align-prompt",
      placeholder: t("输入要比较回答的问题，例如：国际漫游怎么开通？", "A question to compare answers to, e.g. How do I turn on roaming?") });
    const nSel = h("select", { "data-testid": "align-n" }, [2, 3, 4].map((n) => h("option", { value: n, selected: n === 3 }, String(n))));
    // the chat page's model list: test models (echo) are the operator's, labelled as such
    let models = [];
    try { models = (await api("/api/models")).filter((m) => !m.test_model || ctx.isOperator); } catch (_) { models = []; }
    const model = h("select", { "data-testid": "align-model", title: t("模型", "Model") },
      h("option", { value: "" }, t("默认模型", "Default model")),
      models.map((m) => h("option", { value: m.name }, m.name + (m.test_model ? t("（测试）", " (test)") : ""))));
    const box = h("div", { "data-testid": "align-compare" });
    const recent = h("div", {});
    const sampleBtn = h("button", { class: "btn primary", "data-testid": "align-sample", onclick: async () => {
      const q = prompt.value.trim();
      if (!q) return ctx.toast(t("请先输入问题", "Write a question first"), "error");
      sampleBtn.disabled = true;
      Z.clear(box).append(h("div", { class: "muted" }, t("正在生成回答…", "Drawing answers…")));
      try {
        const s = await api(`${A}/compare`, { body: ctx.compact({ prompt: q, n: Number(nSel.value), model: model.value.trim() }) });
        showSession(s);
        refreshRecent();
      } catch (e) { Z.clear(box); ctx.showError(e); } finally { sampleBtn.disabled = false; }
    } }, ctx.icon("sparkles", 14), t("生成回答", "Sample answers"));

    function showSession(s) {
      Z.clear(box);
      const ranks = {};
      const ranked = {};
      (s.ranking || []).forEach((id, i) => { ranked[id] = i + 1; });
      const k = s.answers.length;
      const cols = h("div", { class: "align-answers", style: { display: "grid", gap: "12px",
        gridTemplateColumns: `repeat(${Math.max(1, k)}, minmax(220px, 1fr))`, overflowX: "auto" } });
      for (const a of s.answers) {
        const sel = h("select", { "data-testid": "align-rank", "data-answer": a.id, onchange: () => { ranks[a.id] = sel.value; } },
          h("option", { value: "" }, t("不排名", "not ranked")),
          Array.from({ length: k }, (_, i) => h("option", { value: i + 1, selected: ranked[a.id] === i + 1 }, t(`第 ${i + 1} 名`, `#${i + 1}`))));
        if (ranked[a.id]) ranks[a.id] = String(ranked[a.id]);
        const draws = (a.params && a.params.draws) || [];
        cols.append(h("div", { class: "card", "data-testid": "align-answer", "data-source": a.source, style: { margin: 0 } },
          h("div", { class: "card-h" }, h("h3", {}, t(`回答 ${a.position}`, `Answer ${a.position}`)),
            h("span", { class: "badge " + (a.source === "reviewer" ? "blue" : "") }, a.source === "reviewer" ? t("人工撰写", "written") : t("模型", "model"))),
          h("div", { class: "card-b" },
            h("div", { "data-testid": "align-answer-text", style: { whiteSpace: "pre-wrap", minHeight: "60px" } }, a.text),
            h("div", { class: "muted", style: { fontSize: "12px", margin: "8px 0" } },
              draws.length ? t(`${a.samples} 次采样得到此回答 · `, `${a.samples} draw(s) gave this · `) +
                draws.map((d) => `T=${d.temperature} seed=${d.seed}`).join(", ") : t("评审撰写", "written by a reviewer")),
            h("label", { class: "field" }, t("排名（1 = 最好）", "Rank (1 = best)"), sel))));
      }
      const written = h("textarea", { rows: 2, style: { width: "100%" }, "data-testid": "align-write",
        placeholder: t("觉得都不好？写一个更好的回答（纠正）", "None good enough? Write a better answer (a correction)") });
      const addBtn = h("button", { class: "btn", "data-testid": "align-add", disabled: k >= 4, onclick: async () => {
        if (!written.value.trim()) return;
        try { showSession(await api(`${A}/compare/${s.id}/answers`, { body: { text: written.value } })); } catch (e) { ctx.showError(e); }
      } }, ctx.icon("pencil", 14), t("加入比较", "Add to the comparison"));
      const saved = h("span", { class: "muted", "data-testid": "align-saved" },
        s.ranking && s.ranking.length ? t(`已保存：${s.pairs} 对比较`, `Saved: ${s.pairs} comparison pair(s)`) : "");
      const saveBtn = h("button", { class: "btn primary", "data-testid": "align-save", onclick: async () => {
        const body = {};
        for (const [id, r] of Object.entries(ranks)) if (r) body[id] = Number(r);
        try {
          const r = await api(`${A}/compare/${s.id}/rank`, { body: { ranks: body } });
          saved.textContent = t(`已保存：${r.pairs} 对比较`, `Saved: ${r.pairs} comparison pair(s)`);
          ctx.toast(t(`排名已保存，生成 ${r.pairs} 对偏好数据`, `Ranking saved: ${r.pairs} preference pair(s)`), "ok");
          refreshRecent();
        } catch (e) { ctx.showError(e); }
      } }, ctx.icon("check", 14), t("保存排名", "Save ranking"));
      box.append(h("div", { class: "muted", style: { margin: "4px 0 10px" } },
        t(`模型 ${s.model} · ${k} 个不同回答`, `Model ${s.model} · ${k} distinct answer(s)`),
        k < 2 ? t("（回答相同：写一个更好的回答，或再次生成）", " (the draws agreed: write a better answer, or sample again)") : ""),
        cols, h("div", { style: { marginTop: "12px" } }, written,
          h("div", { class: "row", style: { gap: "8px", marginTop: "6px", alignItems: "center" } }, addBtn, saveBtn, saved)));
    }

    async function refreshRecent() {
      try {
        const list = await api(`${A}/compare?limit=20`);
        Z.clear(recent).append(ctx.table([
          { label: "#", key: "id", num: true },
          { label: t("问题", "Prompt"), render: (s) => h("a", { href: "#", onclick: (e) => { e.preventDefault(); showSession(s); } },
            String((s.prompt[s.prompt.length - 1] || {}).content || "").slice(0, 80)) },
          { label: t("回答", "Answers"), render: (s) => String(s.answers.length) },
          { label: t("比较对", "Pairs"), render: (s) => (s.ranking && s.ranking.length ? String(s.pairs) : t("未排名", "not ranked")) },
          { label: t("时间", "When"), render: (s) => ctx.fmtTime(s.created_at) },
        ], list, { testid: "align-recent", empty: t("还没有比较", "No comparisons yet") }));
      } catch (e) { ctx.showError(e); }
    }

    el.append(ctx.card(t("比较模式：同一问题的多个回答", "Compare mode: several answers to one prompt"), h("div", {}, prompt,
      h("div", { class: "row", style: { gap: "8px", marginTop: "6px", alignItems: "center" } },
        t("回答数", "Answers"), nSel, model, sampleBtn)), null));
    el.append(box);
    el.append(ctx.card(t("最近的比较", "Recent comparisons"), recent));
    await refreshRecent();
    if (openId) { try { showSession(await api(`${A}/compare/${openId}`)); } catch (e) { ctx.showError(e); } }
    return () => {};
  }

  // ------------------------------------------------------------------ datasets
  async function datasetsTab(el, ctx) {
    const { h, t, api } = ctx;
    const list = h("div", {});
    async function refresh() {
      const rows = await api(`${A}/datasets`);
      Z.clear(list).append(ctx.table([
        { label: t("名称", "Name"), render: (d) => `${d.name}@${d.version}` },
        { label: t("类型", "Kind"), render: (d) => (d.kind === "sft" ? t("示范 SFT", "demonstrations (SFT)") : t("偏好对比", "comparisons")) },
        { label: t("训练", "Train"), key: "n_train", num: true },
        { label: t("评估", "Eval"), key: "n_eval", num: true },
        { label: t("来源", "Source"), render: (d) => String((d.stats || {}).source || "—") },
        { label: t("创建", "Created"), render: (d) => ctx.fmtTime(d.created_at) },
        { label: "", render: (d) => h("span", { class: "row", style: { gap: "4px" } }, ["train", "eval"].map((sp) =>
          h("button", { class: "btn small", "data-testid": "align-export", onclick: () =>
            download(ctx, `${A}/datasets/${encodeURIComponent(d.name + "@" + d.version)}/export?split=${sp}`, `${d.name}-v${d.version}-${sp}.jsonl`)
              .catch((e) => ctx.showError(e)) }, ctx.icon("download", 12), sp))) },
      ], rows, { testid: "align-datasets", empty: t("还没有数据集：从反馈构建或导入 JSONL", "No datasets yet: build one from feedback or import JSONL") }));
    }
    const kinds = [{ value: "preference", label: t("偏好对比（RM / DPO / PPO）", "comparisons (RM / DPO / PPO)") },
      { value: "sft", label: t("示范（SFT）", "demonstrations (SFT)") }];
    const build = ctx.form([
      { name: "name", label: t("名称", "Name"), required: true, placeholder: "feedback-pairs" },
      { name: "kind", label: t("类型", "Kind"), type: "select", options: kinds, value: "preference" },
      { name: "eval_fraction", label: t("评估集比例", "Eval share"), type: "number", value: 0.2, step: 0.05, min: 0 },
    ], async (v) => {
      const d = await api(`${A}/datasets`, { body: ctx.compact(v) });
      ctx.toast(d.reused ? t("内容未变，沿用已有版本", "Same content: the existing version") : t(`已创建 ${d.name}@${d.version}`, `Created ${d.name}@${d.version}`), "ok");
      await refresh();
    }, { submitLabel: t("从反馈构建", "Build from feedback"), testid: "align-build" });
    const file = h("input", { type: "file", accept: ".jsonl", "data-testid": "align-import-file" });
    const iname = h("input", { placeholder: t("名称", "name"), "data-testid": "align-import-name" });
    const ikind = h("select", {}, kinds.map((k) => h("option", { value: k.value }, k.label)));
    const importBtn = h("button", { class: "btn", "data-testid": "align-import", onclick: async () => {
      if (!file.files.length || !iname.value.trim()) return ctx.toast(t("请选择文件并填写名称", "Choose a file and a name"), "error");
      const fd = new FormData();
      fd.append("file", file.files[0], file.files[0].name); fd.append("name", iname.value.trim()); fd.append("kind", ikind.value);
      try { const d = await api(`${A}/datasets/import`, { method: "POST", body: fd }); ctx.toast(t(`已导入 ${d.name}@${d.version}`, `Imported ${d.name}@${d.version}`), "ok"); await refresh(); }
      catch (e) { ctx.showError(e); }
    } }, ctx.icon("upload", 14), t("导入", "Import"));
    el.append(ctx.card(t("数据集版本", "Dataset versions"), list));
    el.append(ctx.card(t("从产品反馈构建（点赞、纠正、重新生成、问数的采纳、比较排名；脱敏、去重、按问题划分）",
      "Build from product feedback (thumbs, corrections, regenerations, the agent's verdicts, compare rankings; scrubbed, deduplicated, split by prompt)"), build));
    el.append(ctx.card(t("导入 JSONL（TRL 格式）", "Import JSONL (TRL's format)"), h("div", { class: "row", style: { gap: "8px", flexWrap: "wrap" } }, file, iname, ikind, importBtn)));
    await refresh();
    return () => {};
  }

  // ------------------------------------------------------------------ training
  const CHARTS = [
    { id: "loss", zh: "损失", en: "Loss", keys: ["loss", "eval_loss"] },
    { id: "reward", zh: "奖励 / 准确率", en: "Reward / accuracy", keys: ["rewards/chosen", "rewards/rejected", "rewards/margins",
      "rewards/accuracies", "accuracy", "objective/scores", "objective/rlhf_reward"] },
    { id: "kl", zh: "KL 散度（相对参考模型）", en: "KL from the reference", keys: ["objective/kl"] },
  ];

  async function trainingTab(el, ctx, jobId) {
    const { h, t, api } = ctx;
    let gone = false;
    let timer = null;
    const disposers = [];
    const [datasets, jobs0] = await Promise.all([api(`${A}/datasets`), api(`${A}/jobs`)]);
    const latest = {};
    for (const d of datasets) latest[d.name] = d;
    const dsOptions = Object.values(latest).map((d) => ({ value: d.name, label: `${d.name}@${d.version} (${d.kind}, ${d.n_train})` }));
    const start = ctx.form([
      { name: "stage", label: t("阶段", "Stage"), type: "select", value: "sft", options: Object.keys(STAGES).map((s) => ({ value: s, label: stageLabel(t, s) })) },
      { name: "dataset", label: t("数据集", "Dataset"), type: "select", options: dsOptions.length ? dsOptions : [{ value: "", label: t("（先构建数据集）", "(build a dataset first)") }] },
      { name: "base_model", label: t("基座模型", "Base model"), value: "smollm2-135m" },
      { name: "reward_model", label: t("奖励模型（PPO）", "Reward model (PPO)"), placeholder: "demo-rm" },
      { name: "output_name", label: t("输出模型名", "Output name"), placeholder: "my-dpo" },
      { name: "max_steps", label: t("步数", "Steps"), type: "number", value: 20, min: 1 },
      { name: "lora", label: "LoRA", type: "checkbox", value: true },
      { name: "extra", label: t("其他配置（JSON）", "More config (JSON)"), type: "textarea", placeholder: '{"learning_rate": 0.0001}', wide: true },
    ], async (v) => {
      let extra = {};
      if (v.extra) { try { extra = JSON.parse(v.extra); } catch (_) { throw new Error(t("其他配置不是合法的 JSON", "More config is not valid JSON")); } }
      const config = Object.assign(ctx.compact({ dataset: v.dataset, base_model: v.base_model, output_name: v.output_name,
        max_steps: v.max_steps, lora: v.lora }), extra);
      if (v.stage === "ppo" && v.reward_model) config.reward_model = v.reward_model;
      const r = await api(`${A}/jobs`, { body: { stage: v.stage, config } });
      ctx.toast(t(`已提交训练任务 #${r.job_id}`, `Training job #${r.job_id} submitted`), "ok");
      ctx.navigate("alignment", "training", String(r.job_id));
    }, { submitLabel: t("开始训练", "Start"), testid: "align-start" });

    const jobsBox = h("div", {});
    const detail = h("div", { "data-testid": "align-job" });
    function jobsTable(jobs) {
      Z.clear(jobsBox).append(ctx.table([
        { label: "#", key: "id", num: true },
        { label: t("阶段", "Stage"), render: (j) => stageLabel(t, j.stage) },
        { label: t("数据集", "Dataset"), render: (j) => (j.config || {}).dataset || "—" },
        { label: t("状态", "Status"), render: (j) => statusBadge(ctx, j.status) },
        { label: t("进度", "Progress"), render: (j) => `${Math.round(100 * (j.progress || 0))}%` },
        { label: t("信息", "Message"), render: (j) => h("span", { class: "muted" }, String(j.error || j.message || "").slice(0, 120)) },
        { label: t("创建", "Created"), render: (j) => ctx.fmtTime(j.created_at) },
        { label: "", render: (j) => h("a", { class: "btn small", href: `#/alignment/training/${j.id}`, "data-testid": "align-job-open" }, t("曲线", "Charts")) },
      ], jobs, { testid: "align-jobs", empty: t("还没有训练任务", "No training jobs yet") }));
    }
    jobsTable(jobs0);

    async function showJob(id) {
      let C = null;
      try { C = await loadCharts(); } catch (e) { ctx.showError(e); }
      const poll = async () => {
        if (gone) return;
        let j;
        try { j = await api(`${A}/jobs/${id}`); } catch (e) { ctx.showError(e); return; }
        if (gone) return;
        for (const d of disposers.splice(0)) d();
        const running = j.status === "queued" || j.status === "running";
        const cancel = running ? h("button", { class: "btn small danger", "data-testid": "align-cancel", onclick: async () => {
          if (!(await ctx.confirm(t("取消这个训练任务？", "Cancel this training job?")))) return;
          try { await api(`${A}/jobs/${id}/cancel`, { method: "POST" }); poll(); } catch (e) { ctx.showError(e); }
        } }, t("取消", "Cancel")) : null;
        const charts = h("div", { style: { display: "grid", gridTemplateColumns: "repeat(auto-fit, minmax(360px, 1fr))", gap: "12px" } });
        Z.clear(detail).append(ctx.card(t(`任务 #${j.id} · `, `Job #${j.id} · `) + stageLabel(t, j.stage), h("div", {},
          h("div", { class: "row", style: { gap: "8px", alignItems: "center", marginBottom: "8px" } }, statusBadge(ctx, j.status),
            h("span", {}, `${Math.round(100 * (j.progress || 0))}%`), h("span", { class: "muted" }, String(j.error || j.message || "")), cancel),
          j.series.length ? charts : h("div", { class: "empty" }, running ? t("等待第一条训练日志…", "Waiting for the first training log…") : t("没有记录的曲线", "No recorded series")),
          j.result && j.result.metrics ? metricsTable(ctx, j.result.metrics) : null)));
        if (C) {
          for (const c of CHARTS) {
            const keys = c.keys.filter((k) => j.chart_keys.includes(k));
            if (!keys.length) continue;
            const fig = h("div", { "data-testid": "align-chart", "data-chart": c.id }, h("div", { style: { fontWeight: 600 } }, t(c.zh, c.en)));
            charts.append(fig);
            const spec = { type: "line", x_label: t("步 step", "step"), y_label: "", series: keys.map((k) => ({ name: k,
              points: j.series.filter((r) => typeof r[k] === "number").map((r) => [r.step, r[k]]) })) };
            try { disposers.push(C.render(fig, spec, ctx.lang)); } catch (e) { fig.append(h("div", { class: "muted" }, e.message)); }
          }
        }
        if (running) timer = setTimeout(poll, POLL_MS);
        else api(`${A}/jobs`).then(jobsTable).catch(() => {});
      };
      await poll();
    }

    const startCard = ctx.card(t("开始一个阶段", "Start a stage"), start);
    // a job's charts first when one is opened; the start form first otherwise
    el.append(...(jobId ? [detail, startCard] : [startCard, detail]), ctx.card(t("训练任务", "Training jobs"), jobsBox));
    if (jobId) await showJob(jobId);
    return () => { gone = true; if (timer) clearTimeout(timer); for (const d of disposers.splice(0)) d(); };
  }

  function metricsTable(ctx, metrics) {
    const { h, t } = ctx;
    const rows = Object.entries(metrics || {}).filter(([, v]) => typeof v !== "object" || v === null).map(([k, v]) => ({ id: k, k, v }));
    const nested = Object.entries(metrics || {}).filter(([, v]) => v && typeof v === "object");
    return h("div", {}, ctx.table([{ label: t("指标", "Metric"), key: "k" }, { label: t("值", "Value"), render: (r) => fmt(r.v) }], rows,
      { testid: "align-metrics", empty: t("还没有评估结果", "No evaluation yet") }),
      nested.map(([k, v]) => h("details", {}, h("summary", {}, k), h("pre", { style: { whiteSpace: "pre-wrap", fontSize: "12px" } }, JSON.stringify(v, null, 1)))));
  }

  // ------------------------------------------------------------------ models
  async function modelsTab(el, ctx) {
    const { h, t, api } = ctx;
    const models = await api(`${A}/models`);
    const KEY_METRICS = ["pair_accuracy", "win_rate", "kl", "false_premise_rate", "refusal_rate"];
    const headline = (m) => {
      const got = KEY_METRICS.filter((k) => typeof (m.metrics || {})[k] === "number");
      return got.length ? got.map((k) => `${k} ${fmt(m.metrics[k])}`).join(" · ") : "—";
    };
    el.append(ctx.card(t("对齐后的模型", "Aligned models"), ctx.table([
      { label: t("名称", "Name"), key: "name" },
      { label: t("阶段", "Stage"), render: (m) => stageLabel(t, m.stage) },
      { label: t("基座", "Base"), key: "base" },
      { label: t("主要指标", "Key metrics"), render: headline },
      { label: t("创建", "Created"), render: (m) => ctx.fmtTime(m.created_at) },
      { label: "", render: (m) => h("button", { class: "btn small", "data-testid": "align-model-report", onclick: async () => {
        try {
          const r = await api(`${A}/models/${encodeURIComponent(m.name)}`);
          ctx.modal({ title: t(`评估报告：${r.name}`, `Evaluation report: ${r.name}`), body: metricsTable(ctx, r.report) });
        } catch (e) { ctx.showError(e); }
      } }, t("评估报告", "Report")) },
    ], models, { testid: "align-models", empty: t("还没有训练好的模型", "No trained models yet") })));
    // A/B panel: pages/alignment_ab.js (its own module, loaded on first use)
    try {
      if (!window.ZhinaoAlignmentAB) {
        await new Promise((resolve, reject) => {
          const s = document.createElement("script");
          s.src = "/static/pages/alignment_ab.js"; s.onload = resolve;
          s.onerror = () => reject(new Error("failed to load /static/pages/alignment_ab.js"));
          document.head.appendChild(s);
        });
      }
      return await window.ZhinaoAlignmentAB.render(el, ctx);
    } catch (e) { ctx.showError(e); return () => {}; }
  }

  // ------------------------------------------------------------------ page
  Z.registerPage({
    id: "alignment", title: { zh: "对齐", en: "Alignment" }, order: 60, icon: "brain", group: "work",
    render: async (el, ctx) => {
      const { h, t } = ctx;
      const tabs = ctx.isAdmin ? [["compare", "比较模式", "Compare"], ["datasets", "数据集", "Datasets"],
        ["training", "训练", "Training"], ["models", "模型", "Models"]] : [["compare", "比较模式", "Compare"]];
      let [tab = "compare", arg] = ctx.params || [];
      if (!tabs.some(([id]) => id === tab)) tab = "compare";
      el.append(h("div", { class: "toolbar" }, tabs.map(([id, zh, en]) =>
        h("a", { class: "btn" + (tab === id ? " primary" : ""), href: "#/alignment/" + id, "data-testid": "align-tab-" + id }, t(zh, en))),
        h("span", { class: "spacer" }), h("span", { class: "muted" }, t("基于反馈的 RLHF：SFT → 奖励模型 → PPO / DPO", "RLHF from feedback: SFT → reward model → PPO / DPO"))));
      const content = h("div", {});
      el.append(content);
      if (tab === "datasets") return datasetsTab(content, ctx);
      if (tab === "training") return trainingTab(content, ctx, arg);
      if (tab === "models") return modelsTab(content, ctx);
      return compareTab(content, ctx, arg);
    },
  });
})();
