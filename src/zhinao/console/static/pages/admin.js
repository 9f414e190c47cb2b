/* Operations and administration pages: usage, live status, feedback review, models, API keys,
 * tenants, users. Each is one registerPage call over the JSON API. Admin pages are hidden from
 * members and operator sections (other tenants, defining models, tenants) from tenant admins;
 * the API refuses them anyway, this only keeps the console honest about what works.
 */
(function () {
  "use strict";
  const Z = window.Zhinao;
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
    for (const c of children.flat()) if (c !== null && c !== undefined) el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    return el;
  }
  /** Smallest 4 × (1|2|2.5|5 × 10^k) that covers v, so the four gridlines fall on round numbers. */
  function niceMax(v) {
    if (v <= 0) return 4;
    const raw = v / 4, p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return 4 * m * p;
    return 40 * p;
  }
  function isoDay(d) { return d.toISOString().slice(0, 10); }

  const PALETTE = ["#3b82f6", "#06b6d4", "#8b5cf6", "#f59e0b", "#10b981", "#ef4444", "#ec4899", "#64748b"];

  /** Stacked bar chart of tokens per day over the last `days` days (missing days are zero).
   *  series: [{id, label, color}]; values: Map(day -> {seriesId: number}). */
  function stackedChart(series, values, days, t, fmtNum) {
    const end = new Date(); end.setUTCHours(0, 0, 0, 0);
    const last = [...values.keys()].sort().pop();
    if (last && new Date(last + "T00:00:00Z") > end) end.setTime(new Date(last + "T00:00:00Z").getTime());
    const cols = [];
    for (let i = days - 1; i >= 0; i--) {
      const key = isoDay(new Date(end.getTime() - i * 86400000));
      cols.push({ day: key, v: values.get(key) || {} });
    }
    const W = 900, H = 280, L = 62, R = 16, T = 16, B = 34;
    const total = (c) => series.reduce((a, s) => a + (Number(c.v[s.id]) || 0), 0);
    const max = niceMax(Math.max(1, ...cols.map(total)));
    const plotW = W - L - R, plotH = H - T - B, bw = plotW / cols.length;
    const y = (v) => T + plotH - (v / max) * plotH;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": t("每日 Token 用量", "Tokens per day"), "data-testid": "usage-chart" });
    for (let i = 0; i <= 4; i++) {
      const v = (max / 4) * i, yy = y(v);
      root.appendChild(svg("line", { x1: L, x2: W - R, y1: yy, y2: yy, stroke: i ? "#edf1f6" : "#cbd5e1" }));
      root.appendChild(svg("text", { x: L - 8, y: yy + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7686" }, fmtNum(v)));
    }
    const step = Math.ceil(cols.length / 10);
    cols.forEach((c, i) => {
      const x0 = L + i * bw + Math.max(1, bw * 0.15), w = Math.max(1, bw * 0.7);
      const attrs = { "data-day": c.day };
      for (const s of series) attrs["data-" + s.id] = Number(c.v[s.id]) || 0;
      const tip = [c.day, ...series.map((s) => `${s.label}: ${fmtNum(Number(c.v[s.id]) || 0)}`)].join("\n");
      const g = svg("g", attrs, svg("title", {}, tip));
      let acc = 0;
      for (const s of series) {
        const v = Number(c.v[s.id]) || 0;
        if (v) g.appendChild(svg("rect", { x: x0, width: w, y: y(acc + v), height: Math.max(0, y(acc) - y(acc + v)), fill: s.color, rx: 1.5 }));
        acc += v;
      }
      g.appendChild(svg("rect", { x: L + i * bw, width: bw, y: T, height: plotH, fill: "transparent" }));
      root.appendChild(g);
      if (i % step === 0 || i === cols.length - 1) {
        root.appendChild(svg("text", { x: L + i * bw + bw / 2, y: H - 12, "text-anchor": "middle", "font-size": 11, fill: "#6b7686" }, c.day.slice(5)));
      }
    });
    return root;
  }
  function legend(h, series) {
    return h("div", { class: "legend" }, series.map((s) => h("span", {}, h("i", { style: { background: s.color } }), s.label)));
  }

  // ------------------------------------------------------------------ usage
  async function usagePage(el, ctx) {
    const { h, t, api } = ctx;
    const isAdmin = ctx.isOperator;  // "all tenants" is the operator's view
    let days = Number(sessionStorage.getItem("zhinao.usage.days")) || 30;
    let all = isAdmin && sessionStorage.getItem("zhinao.usage.all") === "1";
    let stack = sessionStorage.getItem("zhinao.usage.stack") || "kind";
    const stackSel = h("select", { "data-testid": "usage-stack", onchange: () => { stack = stackSel.value; sessionStorage.setItem("zhinao.usage.stack", stack); load(); } },
      h("option", { value: "kind", selected: stack === "kind" }, t("按提示/生成堆叠", "Stack: prompt / completion")),
      h("option", { value: "model", selected: stack === "model" }, t("按模型堆叠", "Stack: by model")));
    const body = h("div", {});
    const daySel = h("select", { "data-testid": "usage-days", onchange: () => { days = Number(daySel.value); sessionStorage.setItem("zhinao.usage.days", days); load(); } },
      [1, 7, 30, 90].map((d) => h("option", { value: d, selected: d === days }, d === 1 ? t("今天", "Today") : t(`最近 ${d} 天`, `Last ${d} days`))));
    const allBox = isAdmin ? h("label", { class: "field check" }, h("input", { type: "checkbox", checked: all, onchange: (ev) => {
      all = ev.target.checked; sessionStorage.setItem("zhinao.usage.all", all ? "1" : "0"); load(); } }), t("全部租户", "All tenants")) : null;
    el.append(h("div", { class: "toolbar" }, daySel, stackSel, allBox, h("span", { class: "spacer" }),
      h("button", { class: "btn", onclick: () => load() }, ctx.icon("refresh-cw", 14), t("刷新", "Refresh"))), body);

    async function load() {
      const q = (g) => `/api/usage?days=${days}&group_by=${g}` + (all ? "&all=1" : "");
      const [byDay, byModel, byTenant, byKey, byDayModel] = await Promise.all([
        api(q("day")), api(q("model")), all ? api(q("tenant")) : null, api(q("key")).catch(() => null),
        stack === "model" ? api(q("day,model")) : null]);
      const tot = Object.assign({}, byDay.totals || {});
      if (tot.avg_latency_ms == null && tot.requests) {  // request-weighted mean of the per-day means
        tot.avg_latency_ms = (byDay.rows || []).reduce((a, r) => a + (r.avg_latency_ms || 0) * r.requests, 0) / tot.requests;
      }
      let series, values = new Map();
      if (byDayModel) {
        const names = [...new Set(byDayModel.rows.map((r) => r.model))].sort();
        series = names.map((m, i) => ({ id: "m" + i, label: m, color: PALETTE[i % PALETTE.length] }));
        for (const r of byDayModel.rows) {
          const d = String(r.day).slice(0, 10), v = values.get(d) || {};
          v["m" + names.indexOf(r.model)] = r.total_tokens; values.set(d, v);
        }
      } else {
        series = [{ id: "prompt", label: t("提示 Token", "Prompt tokens"), color: PALETTE[0] },
          { id: "completion", label: t("生成 Token", "Completion tokens"), color: PALETTE[1] }];
        for (const r of byDay.rows || []) values.set(String(r.day).slice(0, 10), { prompt: r.prompt_tokens, completion: r.completion_tokens });
      }
      const stat = (id, k, v, fmt) => h("div", { class: "stat" }, h("div", { class: "k" }, k),
        h("div", { class: "v", "data-testid": "usage-" + id, "data-value": v ?? 0 }, fmt ? fmt(v) : ctx.fmtNum(v ?? 0)));
      const cols = (keyCol) => [keyCol,
        { label: t("请求数", "Requests"), key: "requests", num: true },
        { label: t("提示 Token", "Prompt tokens"), key: "prompt_tokens", num: true },
        { label: t("生成 Token", "Completion tokens"), key: "completion_tokens", num: true },
        { label: t("总 Token", "Total tokens"), key: "total_tokens", num: true },
        { label: t("平均延迟 (ms)", "Avg latency (ms)"), key: "avg_latency_ms", num: true }];
      ctx.clear(body).append(...[
        h("div", { class: "stats" },
          stat("requests", t("请求数", "Requests"), tot.requests),
          stat("prompt", t("提示 Token", "Prompt tokens"), tot.prompt_tokens),
          stat("completion", t("生成 Token", "Completion tokens"), tot.completion_tokens),
          stat("total", t("总 Token", "Total tokens"), tot.total_tokens),
          stat("latency", t("平均延迟", "Avg latency"), tot.avg_latency_ms, (v) => v == null ? "—" : ctx.fmtNum(v) + " ms")),
        h("div", { class: "card" },
          h("div", { class: "card-h" }, h("h3", {}, t("每日 Token 用量", "Tokens per day"))),
          h("div", { class: "card-b" },
            legend(h, series),
            h("div", { class: "chart" }, stackedChart(series, values, days, t, ctx.fmtNum)))),
        ctx.card(t("按模型", "By model"), ctx.table(cols({ label: t("模型", "Model"), key: "model" }), byModel.rows, { testid: "usage-by-model" })),
        byTenant ? ctx.card(t("按租户", "By tenant"), ctx.table(cols({ label: t("租户", "Tenant"), key: "tenant" }), byTenant.rows)) : null,
        byKey ? ctx.card(t("按 API Key", "By API key"), ctx.table(cols({ label: t("Key", "Key"), key: "key" }), byKey.rows)) : null,
      ].filter(Boolean));
    }
    await load();
  }

  /** Health of one model as {cls, label}: a lazily started model is idle, not broken. */
  function health(m, t) {
    if (!m) return { cls: "", label: "—" };
    if (m.healthy) return { cls: "ok", label: t("正常", "Healthy") };
    if (m.started === false && !m.error) return { cls: "", label: t("未启动（首次使用时启动）", "Idle (starts on first use)") };
    return { cls: "bad", label: t("异常", "Unhealthy") };
  }

  const JOB_BADGE = { queued: "", running: "blue", succeeded: "ok", failed: "bad", cancelled: "warn" };
  function jobLabel(st, t) {
    return ({ queued: t("排队中", "Queued"), running: t("运行中", "Running"), succeeded: t("已完成", "Succeeded"),
      failed: t("失败", "Failed"), cancelled: t("已取消", "Cancelled") })[st] || st;
  }

  // ------------------------------------------------------------------ live status
  async function statusPage(el, ctx) {
    const { h, t, api } = ctx;
    const body = h("div", {});
    const stamp = h("span", { class: "muted", "data-testid": "status-updated" });
    el.append(h("div", { class: "toolbar" }, h("span", { class: "badge blue" }, h("span", { class: "dot ok" }), t("实时（每 3 秒刷新）", "Live (refreshes every 3 s)")),
      h("span", { class: "spacer" }), stamp), body);
    let timer = null, stopped = false;
    async function tick() {
      try {
        const [st, jobs] = await Promise.all([api("/api/status"), api("/api/jobs?limit=20").catch(() => [])]);
        if (stopped) return;
        const models = st.models || [];
        const healthy = models.filter((m) => m.healthy).length;
        const started = models.filter((m) => m.started !== false).length;
        ctx.clear(body).append(
          h("div", { class: "stats" },
            h("div", { class: "stat" }, h("div", { class: "k" }, t("运行时长", "Uptime")), h("div", { class: "v", "data-testid": "status-uptime" }, ctx.fmtDuration(st.uptime_s))),
            h("div", { class: "stat" }, h("div", { class: "k" }, t("健康 / 已启动模型", "Healthy / started models")), h("div", { class: "v", "data-testid": "status-healthy" }, `${healthy} / ${started}`)),
            h("div", { class: "stat" }, h("div", { class: "k" }, t("处理中请求", "Requests in flight")),
              h("div", { class: "v", "data-testid": "status-busy" }, ctx.fmtNum(models.reduce((a, m) => a + (m.busy || 0), 0)))),
            h("div", { class: "stat" }, h("div", { class: "k" }, t("排队请求", "Queued requests")),
              h("div", { class: "v", "data-testid": "status-queued" }, ctx.fmtNum(models.reduce((a, m) => a + (m.queued || 0), 0)))),
            h("div", { class: "stat" }, h("div", { class: "k" }, t("后台任务", "Background jobs")), h("div", { class: "v" }, ctx.fmtNum(st.jobs_running || 0)))),
          ctx.card(t("模型与队列", "Models and queues"), ctx.table([
            { label: t("模型", "Model"), render: (m) => h("span", {}, h("span", { class: "dot " + health(m, t).cls }), m.name) },
            { label: t("后端", "Backend"), key: "backend" },
            { label: t("状态", "Health"), render: (m) => h("span", { class: "badge " + health(m, t).cls, title: m.error || "" }, health(m, t).label) },
            { label: t("槽位占用", "Slots in use"), render: (m) => h("div", { class: "row", style: { flexWrap: "nowrap" } },
              h("div", { class: "bar", style: { flex: "1" } }, h("i", { style: { width: (m.slots ? Math.min(100, 100 * (m.busy || 0) / m.slots) : 0) + "%" } })),
              h("span", { class: "mono" }, `${m.busy || 0}/${m.slots || 0}`)) },
            { label: t("排队", "Queued"), key: "queued", num: true },
            { label: t("已拒绝 (429)", "Rejected (429)"), key: "rejected", num: true },
          ], models, { testid: "status-models" })),
          ctx.card(t("后台任务（最近 20 个）", "Background jobs (latest 20)"), ctx.table([
            { label: "#", key: "id" },
            { label: t("类型", "Kind"), render: (j) => h("span", { class: "mono" }, j.kind) },
            { label: t("状态", "State"), render: (j) => h("span", { class: "badge " + JOB_BADGE[j.status] }, jobLabel(j.status, t)) },
            { label: t("进度", "Progress"), render: (j) => h("div", { class: "row", style: { flexWrap: "nowrap" } },
              h("div", { class: "bar", style: { flex: "1" } }, h("i", { style: { width: Math.round(100 * Math.min(1, j.progress || 0)) + "%" } })),
              h("span", { class: "mono" }, Math.round(100 * Math.min(1, j.progress || 0)) + "%")) },
            { label: t("信息", "Message"), render: (j) => h("span", { title: j.error || j.message || "" }, j.error || j.message || "—") },
            { label: t("创建", "Created"), render: (j) => ctx.fmtTime(j.created_at) },
            { label: "", class: "actions", render: (j) => (j.status === "queued" || j.status === "running") ? h("button", { class: "btn small danger", onclick: async () => {
              try { await api(`/api/jobs/${j.id}/cancel`, { method: "POST" }); ctx.toast(t("已请求取消", "Cancellation requested")); } catch (e) { ctx.showError(e); }
            } }, t("取消", "Cancel")) : null },
          ], jobs, { testid: "status-jobs", empty: t("暂无后台任务", "No background jobs yet") })));
        stamp.textContent = t("更新于 ", "Updated ") + new Date().toLocaleTimeString(ctx.lang === "en" ? "en-US" : "zh-CN", { hour12: false });
      } catch (e) { if (!stopped) stamp.textContent = t("刷新失败：", "Refresh failed: ") + e.message; }
      if (!stopped) timer = setTimeout(tick, 3000);
    }
    await tick();
    return () => { stopped = true; clearTimeout(timer); };
  }

  // ------------------------------------------------------------------ feedback review
  async function feedbackPage(el, ctx) {
    const { h, t, api } = ctx;
    const rows = await api("/api/feedback");
    const clip = (s, n) => { s = s || ""; return s.length > n ? s.slice(0, n) + "…" : s; };
    const up = rows.filter((r) => r.rating === 1).length, down = rows.filter((r) => r.rating === -1).length;
    el.append(
      h("div", { class: "stats" },
        h("div", { class: "stat" }, h("div", { class: "k" }, t("反馈总数", "Feedback items")), h("div", { class: "v" }, ctx.fmtNum(rows.length))),
        h("div", { class: "stat" }, h("div", { class: "k" }, ctx.icon("thumbs-up", 14), " ", t("赞", "Up")), h("div", { class: "v" }, ctx.fmtNum(up))),
        h("div", { class: "stat" }, h("div", { class: "k" }, ctx.icon("thumbs-down", 14), " ", t("踩", "Down")), h("div", { class: "v" }, ctx.fmtNum(down))),
        h("div", { class: "stat" }, h("div", { class: "k" }, t("纠正答案", "Corrections")), h("div", { class: "v" }, ctx.fmtNum(rows.filter((r) => r.corrected_answer).length)))),
      ctx.card(t("问答反馈（用于对齐训练）", "Answer feedback (feeds alignment)"), ctx.table([
        { label: t("时间", "Time"), render: (r) => ctx.fmtTime(r.created_at) },
        { label: t("模型", "Model"), key: "model" },
        { label: t("评价", "Rating"), render: (r) => r.rating === 1 ? h("span", { class: "badge ok" }, ctx.icon("thumbs-up", 12), " +1") : r.rating === -1 ? h("span", { class: "badge bad" }, ctx.icon("thumbs-down", 12), " −1") : "—" },
        { label: t("问题", "Question"), render: (r) => h("span", { title: r.user_message || "" }, clip(r.user_message, 60)) },
        { label: t("回答", "Answer"), render: (r) => h("span", { title: r.response || "" }, clip(r.response, 60)) },
        { label: t("纠正", "Correction"), render: (r) => h("span", { title: r.corrected_answer || "" }, clip(r.corrected_answer, 60) || "—") },
        { label: t("备注", "Comment"), render: (r) => clip(r.comment, 40) || "—" },
      ], rows, { testid: "feedback-table" })));
  }

  // ------------------------------------------------------------------ models
  async function modelsPage(el, ctx) {
    const { h, t, api } = ctx;
    const isAdmin = ctx.isOperator;  // models are platform resources: only the operator defines, tests, removes them
    const listBox = h("div", {});
    async function load() {
      const rows = await api("/api/models");
      ctx.clear(listBox).appendChild(ctx.card(t("已注册模型", "Registered models"), ctx.table([
        { label: t("名称", "Name"), render: (m) => h("span", {}, h("span", { class: "dot " + health(m.status, t).cls }), h("b", {}, m.name)) },
        { label: t("后端", "Backend"), key: "backend" },
        { label: t("状态", "Health"), render: (m) => h("span", { class: "badge " + health(m.status, t).cls, title: (m.status && m.status.error) || "" }, health(m.status, t).label) },
        { label: t("别名", "Aliases"), render: (m) => (m.aliases || []).join(", ") || "—" },
        { label: t("槽位×副本", "Slots × replicas"), render: (m) => `${m.slots ?? (m.status && m.status.slots) ?? "—"} × ${m.replicas ?? 1}` },
        { label: t("来源", "Source"), render: (m) => h("span", { class: "badge" }, m.source || "—") },
        { label: t("说明", "Description"), render: (m) => m.description || m.path || "—" },
        { label: "", class: "actions", render: (m) => isAdmin ? h("span", {},
          h("button", { class: "btn small", onclick: () => testModel(m) }, t("测试", "Test")),
          h("button", { class: "btn small danger", onclick: async () => {
            if (!(await ctx.confirm(t(`删除模型 ${m.name}？`, `Delete model ${m.name}?`)))) return;
            try { await api("/api/models/" + encodeURIComponent(m.name), { method: "DELETE" }); ctx.toast(t("已删除", "Deleted")); load(); } catch (e) { ctx.showError(e); }
          } }, t("删除", "Delete"))) : null },
      ], rows, { testid: "models-table" })));
    }
    async function testModel(m) {
      ctx.toast(t("正在测试 ", "Testing ") + m.name + "…");
      try {
        const r = await api("/api/models/" + encodeURIComponent(m.name) + "/test", { method: "POST", body: {} });
        ctx.modal({ title: t("模型测试：", "Model test: ") + m.name, body: [
          h("div", {}, h("span", { class: "badge " + (r.ok ? "ok" : "bad") }, r.ok ? t("通过", "OK") : t("失败", "Failed")),
            " ", r.latency_ms != null ? ctx.fmtNum(r.latency_ms) + " ms" : ""),
          r.error ? h("div", { class: "notice" }, r.error) : null,
          r.reply ? h("div", { class: "md" }, h("pre", {}, r.reply)) : null] });
      } catch (e) { ctx.showError(e); }
    }
    el.appendChild(listBox);
    if (!isAdmin) el.appendChild(h("div", { class: "notice", "data-testid": "models-granted-note" },
      t("这里列出平台运营者授予本租户的模型。添加或删除模型请联系平台运营者。",
        "These are the models the platform operator grants your tenant. Ask the operator to add or remove models.")));
    if (isAdmin) {
      let backends = ["llama-server", "llamacpp", "openai", "echo"];
      try { backends = await api("/api/models/backends"); } catch (_) { /* keep the usual ones */ }
      const known = { "llama-server": t("llama.cpp 服务（GGUF，并发槽位）", "llama.cpp server (GGUF, parallel slots)"),
        llamacpp: t("llama.cpp 进程内（GGUF）", "llama.cpp in-process (GGUF)"), openai: t("OpenAI 兼容接口", "OpenAI-compatible endpoint"),
        echo: t("回显（测试用）", "Echo (for tests)") };
      el.appendChild(ctx.card(t("添加模型", "Add a model"), ctx.form([
        { name: "name", label: t("名称", "Name"), required: true, placeholder: "qwen2.5-7b" },
        { name: "backend", label: t("后端", "Backend"), type: "select", value: backends[0],
          options: backends.map((b) => ({ value: b, label: known[b] ? `${b} — ${known[b]}` : b })) },
        { name: "path", label: t("GGUF 路径（须在模型目录内）", "GGUF path (inside the model folders)"), placeholder: "~/.zhinao/models/x.gguf" },
        { name: "base_url", label: t("接口地址", "Base URL"), placeholder: "http://host:8000/v1" },
        { name: "remote_name", label: t("远端模型名", "Remote model name") },
        { name: "api_key", label: "API key", type: "password" },
        { name: "slots", label: t("并行槽位", "Parallel slots"), type: "number", min: 1 },
        { name: "replicas", label: t("副本数", "Replicas"), type: "number", min: 1 },
        { name: "context_window", label: t("上下文长度", "Context window"), type: "number", min: 256 },
        { name: "aliases", label: t("别名（逗号分隔）", "Aliases (comma separated)") },
        { name: "description", label: t("说明", "Description"), wide: true },
      ], async (v, f) => {
        const body = ctx.compact(v);
        if (body.aliases) body.aliases = body.aliases.split(/[,，\s]+/).filter(Boolean);
        await api("/api/models", { body });
        ctx.toast(t("模型已添加", "Model added")); f.reset(); load();
      }, { submitLabel: t("添加", "Add"), testid: "model-form" })));
    }
    await load();
  }

  // ------------------------------------------------------------------ API keys
  async function keysPage(el, ctx) {
    const { h, t, api } = ctx;
    const isAdmin = ctx.isAdmin;
    const listBox = h("div", {});
    let models = [];
    try { models = (await api("/api/models")).map((m) => m.name); } catch (_) { /* the form still works */ }
    async function load() {
      const rows = await api("/api/keys");
      ctx.clear(listBox).appendChild(ctx.card(t("API 密钥", "API keys"), ctx.table([
        { label: t("名称", "Name"), render: (k) => h("b", {}, k.name) },
        { label: t("前缀", "Prefix"), render: (k) => h("span", { class: "mono" }, (k.prefix || "") + "…") },
        { label: t("角色", "Role"), render: (k) => ctx.roleLabel(k.role) },
        { label: t("可用模型", "Models"), render: (k) => (k.models && k.models.length) ? k.models.join(", ") : t("全部", "All") },
        { label: t("限额 RPM/TPM/日", "Limits RPM/TPM/day"), render: (k) => [k.rpm, k.tpm, k.tokens_per_day].map((x) => x == null ? "∞" : ctx.fmtNum(x)).join(" / ") },
        { label: t("状态", "State"), render: (k) => k.revoked ? h("span", { class: "badge bad" }, t("已吊销", "Revoked")) : h("span", { class: "badge ok" }, t("有效", "Active")) },
        { label: t("创建", "Created"), render: (k) => ctx.fmtTime(k.created_at) },
        { label: t("最近使用", "Last used"), render: (k) => ctx.fmtTime(k.last_used_at) },
        { label: "", class: "actions", render: (k) => k.revoked ? null : h("button", { class: "btn small danger", "data-testid": "revoke-key", onclick: async () => {
          if (!(await ctx.confirm(t(`吊销密钥 ${k.name}？使用它的应用将立即失去访问权限。`, `Revoke key ${k.name}? Applications using it lose access at once.`)))) return;
          try { await api("/api/keys/" + k.id, { method: "DELETE" }); ctx.toast(t("已吊销", "Revoked")); load(); } catch (e) { ctx.showError(e); }
        } }, t("吊销", "Revoke")) },
      ], rows, { testid: "keys-table" })));
    }
    const fields = [
      { name: "name", label: t("名称", "Name"), required: true, placeholder: t("如：客服机器人", "e.g. service bot") },
      { name: "models", label: t("可用模型（不选为全部）", "Models (none = all)"), type: "select", multiple: true, options: models.map((m) => ({ value: m, label: m })) },
      { name: "rpm", label: t("每分钟请求", "Requests / minute"), type: "number", min: 1 },
      { name: "tpm", label: t("每分钟 Token", "Tokens / minute"), type: "number", min: 1 },
      { name: "tokens_per_day", label: t("每日 Token", "Tokens / day"), type: "number", min: 1 },
    ];
    if (isAdmin) fields.push({ name: "role", label: t("角色（不高于你自己的）", "Role (not above your own)"), type: "select", value: "member",
      options: roleOptions(ctx) });
    el.append(ctx.card(t("创建 API 密钥", "Create an API key"), ctx.form(fields, async (v, f) => {
      const body = ctx.compact(v);
      if (!body.models || !body.models.length) delete body.models;
      const k = await api("/api/keys", { body });
      f.reset();
      ctx.modal({ title: t("新密钥已创建", "New key created"), testid: "new-key-modal", body: [
        h("div", { class: "notice" }, t("请立即复制并妥善保存。关闭后将无法再次查看此密钥。", "Copy it now and keep it safe. You will not be able to see this key again.")),
        h("div", { class: "secret", "data-testid": "new-key-secret" }, k.key),
        h("div", { class: "muted" }, t("用法：", "Usage: "), h("span", { class: "mono" }, "Authorization: Bearer " + (k.prefix || "zk-") + "…"))],
      actions: [
        { label: t("复制", "Copy"), onClick: async () => { try { await navigator.clipboard.writeText(k.key); ctx.toast(t("已复制", "Copied")); } catch (_) { ctx.toast(t("请手动复制", "Please copy it by hand"), "error"); } return false; } },
        { label: t("我已保存", "I have saved it"), primary: true, testid: "new-key-close" }] });
      load();
    }, { submitLabel: t("创建", "Create"), testid: "key-form" })), listBox);
    await load();
  }

  // ------------------------------------------------------------------ tenants
  async function tenantsPage(el, ctx) {
    const { h, t, api } = ctx;
    const listBox = h("div", {});
    async function load() {
      const rows = await api("/api/tenants");
      ctx.clear(listBox).appendChild(ctx.card(t("租户", "Tenants"), ctx.table([
        { label: t("标识", "Name"), render: (r) => h("b", {}, r.name) },
        { label: t("显示名", "Display name"), key: "display_name" },
        { label: "RPM", render: (r) => r.rpm == null ? "∞" : ctx.fmtNum(r.rpm), class: "num" },
        { label: "TPM", render: (r) => r.tpm == null ? "∞" : ctx.fmtNum(r.tpm), class: "num" },
        { label: t("每日 Token", "Tokens / day"), render: (r) => r.tokens_per_day == null ? "∞" : ctx.fmtNum(r.tokens_per_day), class: "num" },
        { label: t("授予的模型", "Granted models"), render: (r) => r.models == null ? t("全部", "All") : (r.models.join(", ") || "—") },
        { label: t("状态", "State"), render: (r) => r.disabled ? h("span", { class: "badge bad" }, t("已停用", "Disabled")) : h("span", { class: "badge ok" }, t("启用", "Enabled")) },
        { label: t("创建", "Created"), render: (r) => ctx.fmtTime(r.created_at) },
        { label: "", class: "actions", render: (r) => h("span", {},
          h("button", { class: "btn small", onclick: () => edit(r) }, t("编辑", "Edit")),
          h("button", { class: "btn small", onclick: () => patch(r, { disabled: !r.disabled }) }, r.disabled ? t("启用", "Enable") : t("停用", "Disable")),
          h("button", { class: "btn small danger", onclick: async () => {
            if (!(await ctx.confirm(t(`删除租户 ${r.name}？`, `Delete tenant ${r.name}?`)))) return;
            try { await api("/api/tenants/" + r.id, { method: "DELETE" }); load(); } catch (e) { ctx.showError(e); }
          } }, t("删除", "Delete"))) },
      ], rows, { testid: "tenants-table" })));
    }
    async function patch(r, body) {
      try { await api("/api/tenants/" + r.id, { method: "PATCH", body }); ctx.toast(t("已保存", "Saved")); load(); } catch (e) { ctx.showError(e); }
    }
    function edit(r) {
      const m = ctx.modal({ title: t("编辑租户 ", "Edit tenant ") + r.name, body: ctx.form([
        { name: "display_name", label: t("显示名", "Display name"), value: r.display_name || "" },
        { name: "rpm", label: "RPM", type: "number", value: r.rpm ?? "", min: 1 },
        { name: "tpm", label: "TPM", type: "number", value: r.tpm ?? "", min: 1 },
        { name: "tokens_per_day", label: t("每日 Token", "Tokens / day"), type: "number", value: r.tokens_per_day ?? "", min: 1 },
        { name: "models", label: t("授予的模型（逗号分隔，留空为全部）", "Granted models (comma separated, empty = all)"),
          value: (r.models || []).join(", "), wide: true },
      ], async (v) => {
        const body = Object.assign({}, v);
        const names = String(body.models || "").split(/[,，\s]+/).filter(Boolean);
        body.models = names.length ? names : null;
        await patch(r, body); m.close();
      }), actions: [{ label: t("关闭", "Close") }] });
    }
    el.append(ctx.card(t("创建租户", "Create a tenant"), ctx.form([
      { name: "name", label: t("标识（英文）", "Name (slug)"), required: true, placeholder: "marketing" },
      { name: "display_name", label: t("显示名", "Display name"), placeholder: t("市场部", "Marketing") },
      { name: "rpm", label: "RPM", type: "number", min: 1 },
      { name: "tpm", label: "TPM", type: "number", min: 1 },
      { name: "tokens_per_day", label: t("每日 Token", "Tokens / day"), type: "number", min: 1 },
    ], async (v, f) => { await api("/api/tenants", { body: ctx.compact(v) }); ctx.toast(t("租户已创建", "Tenant created")); f.reset(); load(); },
    { submitLabel: t("创建", "Create"), testid: "tenant-form" })), listBox);
    await load();
  }

  // ------------------------------------------------------------------ users
  async function usersPage(el, ctx) {
    const { h, t, api } = ctx;
    const listBox = h("div", {});
    let tenants = [];
    // only the operator manages other tenants' users; a tenant admin sees their own tenant
    if (ctx.isOperator) { try { tenants = await api("/api/tenants"); } catch (_) { /* own tenant only */ } }
    const tenantName = (id) => (tenants.find((x) => x.id === id) || {}).name || id;
    const tenantSel = h("select", { "data-testid": "users-tenant", onchange: () => load() },
      tenants.map((x) => h("option", { value: x.id, selected: x.id === ctx.user.tenant_id }, x.display_name || x.name)));
    async function load() {
      const q = tenantSel.value ? "?tenant_id=" + encodeURIComponent(tenantSel.value) : "";
      const rows = await api("/api/users" + q);
      ctx.clear(listBox).appendChild(ctx.card(t("用户", "Users"), ctx.table([
        { label: t("用户名", "Username"), render: (u) => h("b", {}, u.username) },
        { label: t("租户", "Tenant"), render: (u) => tenantName(u.tenant_id) },
        { label: t("角色", "Role"), render: (u) => u.role === "member" ? ctx.roleLabel(u.role) : h("span", { class: "badge " + (u.role === "operator" ? "warn" : "blue"), "data-role": u.role }, ctx.roleLabel(u.role)) },
        { label: t("状态", "State"), render: (u) => u.disabled ? h("span", { class: "badge bad" }, t("已停用", "Disabled")) : h("span", { class: "badge ok" }, t("启用", "Enabled")) },
        { label: t("创建", "Created"), render: (u) => ctx.fmtTime(u.created_at) },
        { label: "", class: "actions", render: (u) => u.id === ctx.user.id ? h("span", { class: "muted" }, t("（当前用户）", "(you)"))
          : (u.role === "operator" && !ctx.isOperator) ? h("span", { class: "muted" }, t("（平台运营者）", "(platform operator)")) : h("span", {},
          u.role === "operator" ? null : h("button", { class: "btn small", onclick: () => patch(u, { role: u.role === "admin" ? "member" : "admin" }) }, u.role === "admin" ? t("设为成员", "Make member") : t("设为管理员", "Make admin")),
          h("button", { class: "btn small", onclick: () => resetPw(u) }, t("重置密码", "Reset password")),
          h("button", { class: "btn small", onclick: () => patch(u, { disabled: !u.disabled }) }, u.disabled ? t("启用", "Enable") : t("停用", "Disable")),
          h("button", { class: "btn small danger", onclick: async () => {
            if (!(await ctx.confirm(t(`删除用户 ${u.username}？`, `Delete user ${u.username}?`)))) return;
            try { await api("/api/users/" + u.id, { method: "DELETE" }); load(); } catch (e) { ctx.showError(e); }
          } }, t("删除", "Delete"))) },
      ], rows, { testid: "users-table" })));
    }
    async function patch(u, body) {
      try { await api("/api/users/" + u.id, { method: "PATCH", body }); ctx.toast(t("已保存", "Saved")); load(); } catch (e) { ctx.showError(e); }
    }
    function resetPw(u) {
      const m = ctx.modal({ title: t("重置密码：", "Reset password: ") + u.username, body: ctx.form([
        { name: "password", label: t("新密码", "New password"), type: "password", required: true }],
      async (v) => { await patch(u, { password: v.password }); m.close(); }), actions: [{ label: t("关闭", "Close") }] });
    }
    el.append(
      h("div", { class: "toolbar" }, tenants.length ? [t("租户：", "Tenant: "), tenantSel] : null),
      ctx.card(t("创建用户", "Create a user"), ctx.form([
        { name: "username", label: t("用户名", "Username"), required: true },
        { name: "password", label: t("初始密码", "Initial password"), type: "password", required: true },
        { name: "role", label: t("角色", "Role"), type: "select", value: "member", options: roleOptions(ctx) },
      ], async (v, f) => {
        const body = Object.assign({}, v);
        if (tenantSel.value) body.tenant_id = Number(tenantSel.value);
        await api("/api/users", { body }); ctx.toast(t("用户已创建", "User created")); f.reset(); load();
      }, { submitLabel: t("创建", "Create"), testid: "user-form" })), listBox);
    await load();
  }

  /** Roles the signed-in user may give: never above their own; operator only in tenant default. */
  function roleOptions(ctx) {
    const t = ctx.t;
    const out = [{ value: "member", label: t("成员", "Member") }, { value: "admin", label: t("管理员", "Admin") }];
    if (ctx.isOperator) out.push({ value: "operator", label: t("平台运营者（仅 default 租户）", "Platform operator (tenant default only)") });
    return out;
  }

  const reg = (id, zh, en, icon, order, group, render, adminOnly, operatorOnly) =>
    Z.registerPage({ id, title: { zh, en }, icon, order, group, render, adminOnly, operatorOnly: !!operatorOnly });
  reg("usage", "用量统计", "Usage", "chart-column", 50, "ops", usagePage, false);
  reg("status", "实时监控", "Live status", "activity", 55, "ops", statusPage, false);
  reg("feedback", "问答反馈", "Feedback", "lightbulb", 60, "ops", feedbackPage, true);
  reg("models", "模型管理", "Models", "cpu", 70, "admin", modelsPage, false);
  reg("keys", "API 密钥", "API keys", "key-round", 75, "admin", keysPage, false);
  reg("tenants", "租户管理", "Tenants", "building", 80, "admin", tenantsPage, true, true);
  reg("users", "用户管理", "Users", "users", 85, "admin", usersPage, true);
})();
