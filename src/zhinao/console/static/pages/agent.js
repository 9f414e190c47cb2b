/* "Ask your data / 问数" page: a conversation with the analyst agent over one analytics workspace.
 *
 * Route: #/agent[/<workspace>]. Each question goes to POST /api/agent/ask (server-sent events:
 * one "tool" event per tool call as it finishes, then the "answer" event with the AgentAnswer
 * JSON) and becomes a turn showing the work: the narrative, the result table, an interactive
 * chart (the answer's plot spec, or one drawn from the table; bar/line switch), the code panel
 * (SQL, model call, generated code — copy, and re-run SQL in the sandbox), the tool calls, and
 * Accept / Correct. Accept and Correct (POST /api/agent/answers/{id}/accept|correct) feed the
 * workspace's example library and the feedback store; Correct opens an editor for the SQL (it
 * can be tried in the sandbox first) or the right answer in words.
 *
 * Follow-ups: the session id of the first answer is sent with the next question, so "now only
 * for fiber customers" refines the previous query; "New conversation" starts a fresh session.
 * The session is kept per workspace in sessionStorage (a reload keeps the conversation going).
 *
 * Data from the server is only ever set as text (h() uses textContent); charts are drawn by
 * charts.js (ECharts, loaded on first use) with escaped tooltips.
 */
(function () {
  "use strict";
  const Z = window.Zhinao;
  const WS_KEY = "zhinao.agent.ws";
  const ANALYTICS_WS_KEY = "zhinao.analytics.ws";
  const SESSION_KEY = (ws) => "zhinao.agent.session." + ws;
  const MAX_TABLE_ROWS = 200;
  const SAMPLES = [
    { zh: "各合约类型的离网率分别是多少？", en: "What is the churn rate of each contract type?" },
    { zh: "按支付方式统计客户数", en: "How many customers use each payment method?" },
    { zh: "2013 年 12 月每天的总话务量", en: "Total Milan activity per day in December 2013" },
    { zh: "下周话务量会怎样？", en: "How will traffic develop next week?" },
    { zh: "哪些客户最可能离网？为什么？", en: "Which customers are most likely to churn, and why?" },
    { zh: "写一段 pandas 代码统计各宽带类型的平均月费", en: "Write pandas code for the average monthly charge per internet service" },
  ];

  // ------------------------------------------------------------------ loading charts.js + css once
  const loadCharts = () => window.Zhinao.loadCharts();  // one loader for every page (app.js)
  function loadCss() {
    if (document.querySelector('link[data-page-css="agent"]')) return;
    const l = document.createElement("link");
    l.rel = "stylesheet"; l.href = "/static/pages/agent.css"; l.dataset.pageCss = "agent";
    document.head.appendChild(l);
  }

  // ------------------------------------------------------------------ small helpers
  function fmt(v) {
    if (v === null || v === undefined) return "—";
    if (typeof v === "number") return Number.isInteger(v) ? Z.fmtNum(v) : (Math.abs(v) >= 1000 ? Z.fmtNum(v) : String(+v.toFixed(4)));
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const TIME_NAME = /date|time|day|month|year|week|hour|period|日期|时间|月|年|周|小时/i;
  const TIME_VALUE = /^\d{4}-\d{2}(-\d{2})?([ T]\d{2}(:\d{2})?(:\d{2})?)?/;

  /** The value columns of a result table that a chart can plot (numbers only), x excluded. */
  function valueColumns(columns, rows) {
    if (!columns || !rows || !rows.length) return { xi: -1, ys: [] };
    const numeric = columns.map((_, i) => rows.every((r) => r[i] === null || isNum(r[i])) && rows.some((r) => isNum(r[i])));
    let xi = numeric.findIndex((n) => !n);
    if (xi < 0) xi = 0;
    return { xi, ys: columns.map((c, i) => i).filter((i) => i !== xi && numeric[i]) };
  }

  /** A plot spec drawn from a result table: x = the first non-numeric column (else the first),
   *  y = the column ``y`` (default: the last numeric one, as the server's charts; "all": up to
   *  3 — columns of different scales on one axis hide each other); "line" for a time axis,
   *  "bar" otherwise. Null when the table has one row, no number, or too many rows to chart. */
  function tableSpec(columns, rows, kind, y) {
    if (!columns || !rows || rows.length < 2 || rows.length > 500 || columns.length < 2) return null;
    const vc = valueColumns(columns, rows);
    const xi = vc.xi;
    let ys = vc.ys;
    if (!ys.length) return null;
    ys = y === "all" ? ys.slice(0, 3) : ys.includes(Number(y)) && y !== "" && y !== undefined && y !== null ? [Number(y)] : [ys[ys.length - 1]];
    const xs = rows.map((r) => r[xi]);
    const time = TIME_NAME.test(columns[xi]) || xs.every((v) => typeof v === "string" && TIME_VALUE.test(v));
    kind = kind || (time ? "line" : "bar");
    const title = `${ys.map((i) => columns[i]).join(", ")} / ${columns[xi]}`;
    if (kind === "line") {
      const order = rows.map((r, i) => i);
      if (time) order.sort((a, b) => String(xs[a]).localeCompare(String(xs[b])));
      return { type: "line", title, x_label: columns[xi], y_label: ys.length === 1 ? columns[ys[0]] : "",
        series: ys.map((i) => ({ name: columns[i], points: order.map((k) => [String(xs[k]), rows[k][i]]) })) };
    }
    return { type: "bar", title, horizontal: false, categories: xs.slice(0, 60).map((v) => String(v)),
      series: ys.map((i) => ({ name: columns[i], values: rows.slice(0, 60).map((r) => r[i]) })) };
  }

  async function copyText(ctx, text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {  // no clipboard permission (plain http, headless): the old way
      const ta = ctx.h("textarea", { style: { position: "fixed", top: "-1000px" } });
      ta.value = text; document.body.appendChild(ta); ta.select();
      let ok = false;
      try { ok = document.execCommand("copy"); } catch (__) { ok = false; }
      ta.remove();
      if (!ok) return ctx.toast(ctx.t("无法访问剪贴板", "Clipboard is not available"), "error");
    }
    ctx.toast(ctx.t("已复制", "Copied"), "ok");
  }

  function resultTable(ctx, columns, rows, testid) {
    const { h, t } = ctx;
    if (!columns || !columns.length) return null;
    const shown = (rows || []).slice(0, MAX_TABLE_ROWS);
    const numeric = columns.map((_, i) => shown.length && shown.every((r) => r[i] === null || isNum(r[i])));
    const table = h("table", { class: "tbl", "data-testid": testid || "agent-table" },
      h("thead", {}, h("tr", {}, columns.map((c, i) => h("th", { class: numeric[i] ? "num" : "" }, c)))),
      h("tbody", {}, shown.map((r) => h("tr", {}, r.map((v, i) => h("td", { class: numeric[i] ? "num" : "" }, fmt(v)))))));
    const more = (rows || []).length > shown.length
      ? h("div", { class: "muted", style: { fontSize: "12px", padding: "4px 8px" } },
        t(`仅显示前 ${shown.length} 行，共 ${rows.length} 行`, `First ${shown.length} of ${rows.length} rows`)) : null;
    return h("div", { class: "agent-table-wrap" }, shown.length ? table
      : h("div", { class: "empty", "data-testid": testid || "agent-table" }, t("查询没有返回行", "The query returned no rows")), more);
  }

  // ------------------------------------------------------------------ one answered turn
  function renderTurn(ctx, box, question, a, ws, disposers) {
    const { h, t, api } = ctx;
    Z.clear(box);
    box.dataset.answerId = a.answer_id ?? "";
    box.append(h("div", { class: "agent-q" }, question,
      a.latency_ms ? h("span", { class: "muted" }, `${(a.latency_ms / 1000).toFixed(1)} s${a.model ? " · " + a.model : ""}`) : null));
    const routeLabel = { sql: "SQL", model: t("模型", "model"), forecast: t("预测", "forecast"), chart: t("图表", "chart"),
      code: t("代码", "code"), schema: t("数据结构", "schema"), explain: t("解释", "explain"), refuse: t("拒绝", "refused") }[a.route] || a.route;
    box.append(h("div", { class: "agent-badges" },
      a.route ? h("span", { class: "badge blue", "data-testid": "agent-route" }, routeLabel) : null,
      a.repaired ? h("span", { class: "badge warn", title: t("验证发现错误并已修复", "verification caught an error and repaired it") }, t("已修复", "repaired")) : null,
      a.found === false ? h("span", { class: "badge warn" }, t("数据不足", "not in the data")) : null,
      (a.masked_columns || []).length ? h("span", { class: "badge", title: a.masked_columns.join(", ") },
        t(`已遮盖个人信息列 ${a.masked_columns.length} 个`, `${a.masked_columns.length} personal column(s) masked`)) : null));
    box.append(h("div", { class: "agent-narrative" + (a.found === false ? " not-found" : ""), "data-testid": "agent-answer" }, a.answer || "—"));

    // table
    const tableBox = h("div", {});
    const setTable = (cols, rows) => { Z.clear(tableBox); const el = resultTable(ctx, cols, rows); if (el) tableBox.append(el); };
    setTable(a.columns, a.rows);
    box.append(tableBox);

    // chart: the answer's spec, or one from the table; bar / line switch when it comes from the table
    const chartBox = h("div", { class: "agent-chart", "data-testid": "agent-chart" });
    const figure = h("div", {});
    let dispose = null;
    const draw = async (spec) => {
      if (dispose) { dispose(); dispose = null; }
      Z.clear(figure);
      if (!spec) return;
      try {
        const C = await loadCharts();
        dispose = C.render(figure, spec, ctx.lang);
        disposers.push(() => { if (dispose) dispose(); });
      } catch (e) { figure.append(h("div", { class: "muted" }, e.message)); }
    };
    let current = { columns: a.columns, rows: a.rows };
    const initial = a.chart || tableSpec(a.columns, a.rows);
    if (initial) {
      // the user picks the chart type and the value column; "auto" is the answer's own chart
      const redraw = () => {
        const auto = kindSel.value === "auto" && ySel.value === "";
        draw(auto ? (a.chart || tableSpec(current.columns, current.rows))
          : tableSpec(current.columns, current.rows, kindSel.value === "auto" ? undefined : kindSel.value, ySel.value));
      };
      const kindSel = h("select", { "data-testid": "agent-chart-kind", onchange: redraw },
        h("option", { value: "auto" }, t("自动", "auto")), h("option", { value: "bar" }, t("柱状图", "bar")),
        h("option", { value: "line" }, t("折线图", "line")));
      const vc = valueColumns(a.columns, a.rows);
      const ySel = h("select", { "data-testid": "agent-chart-y", title: t("数值列", "Value column"), onchange: redraw },
        h("option", { value: "" }, t("数值列：自动", "value: auto")),
        vc.ys.map((i) => h("option", { value: String(i) }, a.columns[i])),
        vc.ys.length > 1 ? h("option", { value: "all" }, t("全部数值列", "all value columns")) : null);
      const canSwitch = !!tableSpec(a.columns, a.rows);
      chartBox.append(h("div", { class: "row" }, h("span", { class: "muted" }, initial.title || t("图表", "Chart")),
        h("span", { class: "spacer" }), canSwitch && vc.ys.length > 1 ? ySel : null, canSwitch ? kindSel : null), figure);
      box.append(chartBox);
      draw(initial);
    }

    // code panel: SQL / model call / generated code
    const panes = [];
    if (a.sql) panes.push({ id: "sql", label: "SQL", text: a.sql });
    if (a.call) panes.push({ id: "call", label: t("模型调用", "Model call"), text: JSON.stringify(a.call, null, 2) });
    if (a.code && a.code.source) {
      panes.push({ id: "code", label: t("生成的代码", "Generated code") + ` (${a.code.language || "?"})`, text: a.code.source,
        note: a.code.executed ? t("已在沙箱中运行", "ran in the sandbox") : t("未运行", "not executed"), output: a.code.output });
    }
    if (panes.length) {
      const code = h("div", { class: "agent-code", "data-testid": "agent-code" });
      const pre = h("pre", { "data-testid": "agent-code-text" });
      const output = h("pre", { class: "output", style: { display: "none" }, "data-testid": "agent-code-output" });
      const note = h("span", { class: "muted", style: { fontSize: "12px" } });
      let active = panes[0];
      const tabs = h("div", { class: "tabs" });
      const show = (p) => {
        active = p;
        pre.textContent = p.text;
        pre.dataset.kind = p.id;
        note.textContent = p.note || "";
        output.textContent = p.output || "";
        output.style.display = p.output ? "block" : "none";
        for (const b of tabs.querySelectorAll("button[data-pane]")) b.className = "btn small" + (b.dataset.pane === p.id ? " primary" : "");
        rerun.style.display = p.id === "sql" ? "" : "none";
      };
      const rerun = h("button", { class: "btn small", "data-testid": "agent-rerun", title: t("在 SQL 沙箱中重新运行", "Run again in the SQL sandbox"), onclick: async () => {
        rerun.disabled = true;
        try {
          const r = await api(`/api/analytics/workspaces/${encodeURIComponent(ws)}/query`, { body: { sql: active.text, limit: MAX_TABLE_ROWS } });
          current = { columns: r.columns, rows: r.rows };
          setTable(r.columns, r.rows);
          ctx.toast(t(`已重新运行：${r.row_count} 行`, `Ran again: ${r.row_count} rows`), "ok");
        } catch (e) { ctx.showError(e); } finally { rerun.disabled = false; }
      } }, ctx.icon("refresh-cw", 13), t("重新运行", "Run again"));
      for (const p of panes) tabs.append(h("button", { class: "btn small", "data-pane": p.id, "data-testid": "agent-code-tab", onclick: () => show(p) }, p.label));
      tabs.append(h("span", { class: "spacer" }), note, rerun,
        h("button", { class: "btn small", "data-testid": "agent-copy", onclick: () => copyText(ctx, active.text) }, ctx.icon("copy", 13), t("复制", "Copy")));
      code.append(tabs, pre, output);
      box.append(code);
      show(active);
    }

    // the tool calls, folded
    if ((a.tool_calls || []).length) {
      box.append(h("details", { class: "agent-tools", "data-testid": "agent-tools" },
        h("summary", {}, t(`工具调用 ${a.tool_calls.length} 次`, `${a.tool_calls.length} tool call(s)`)),
        h("ol", {}, a.tool_calls.map((c) => h("li", {}, h("code", {}, c.tool), " ",
          h("span", { class: "badge " + (c.ok ? "ok" : "bad") }, c.ok ? "ok" : t("失败", "failed")), " ",
          c.summary || c.error || "", c.ms ? h("span", { class: "muted" }, ` · ${Math.round(c.ms)} ms`) : null)))));
    }

    // accept / correct
    if (a.answer_id !== null && a.answer_id !== undefined) {
      const verdict = h("span", { class: "muted", "data-testid": "agent-verdict" });
      const setVerdict = (status, r) => {
        verdict.dataset.status = status;
        verdict.textContent = status === "accepted"
          ? t("已采纳：已加入本工作区的示例库", "Accepted: added to this workspace's example library")
          : t("已更正：更正已记录", "Corrected: the correction is recorded") + (r && r.example_id ? t("，并加入示例库", " and added to the example library") : "");
        acceptBtn.disabled = true;
      };
      const acceptBtn = h("button", { class: "btn small", "data-testid": "agent-accept", onclick: async () => {
        acceptBtn.disabled = true;
        try {
          const r = await api(`/api/agent/answers/${a.answer_id}/accept`, { method: "POST" });
          setVerdict("accepted", r);
          ctx.toast(t("已采纳", "Accepted"), "ok");
        } catch (e) { ctx.showError(e); acceptBtn.disabled = false; }
      } }, ctx.icon("thumbs-up", 13), t("采纳", "Accept"));
      const correctBtn = h("button", { class: "btn small", "data-testid": "agent-correct",
        onclick: () => openCorrect(ctx, a, ws, (r) => setVerdict("corrected", r)) }, ctx.icon("pencil", 13), t("更正", "Correct"));
      box.append(h("div", { class: "agent-actions" }, acceptBtn, correctBtn, verdict));
    }
  }

  /** The Correct dialog: the right SQL (tried in the sandbox before it is sent) and/or the right answer. */
  function openCorrect(ctx, a, ws, done) {
    const { h, t, api } = ctx;
    const sql = h("textarea", { rows: 7, "data-testid": "agent-correct-sql", spellcheck: "false",
      placeholder: t("正确的 SQL（一条只读 SELECT）", "The right SQL (one read-only SELECT)") });
    sql.value = a.sql || "";
    const text = h("textarea", { rows: 3, "data-testid": "agent-correct-answer",
      placeholder: t("或者：用文字写出正确答案", "Or: the right answer in words") });
    const preview = h("div", { class: "agent-preview", "data-testid": "agent-correct-preview" });
    const tryBtn = h("button", { class: "btn small", type: "button", "data-testid": "agent-correct-try", onclick: async () => {
      Z.clear(preview);
      if (!sql.value.trim()) return;
      tryBtn.disabled = true;
      try {
        const r = await api(`/api/analytics/workspaces/${encodeURIComponent(ws)}/query`, { body: { sql: sql.value, limit: 50 } });
        preview.append(resultTable(ctx, r.columns, r.rows, "agent-correct-table"));
      } catch (e) { preview.append(h("div", { class: "inline-error" }, e.message)); } finally { tryBtn.disabled = false; }
    } }, ctx.icon("refresh-cw", 13), t("试运行", "Try it"));
    ctx.modal({
      title: t("更正这个回答", "Correct this answer"), testid: "agent-correct-dialog",
      body: h("div", { class: "agent-editor" },
        h("label", { class: "field" }, "SQL", sql), h("div", { class: "row", style: { gap: "8px" } }, tryBtn), preview,
        h("label", { class: "field", style: { marginTop: "8px" } }, t("正确答案", "Right answer"), text)),
      actions: [
        { label: t("取消", "Cancel") },
        { label: t("提交更正", "Submit correction"), primary: true, testid: "agent-correct-submit", onClick: async () => {
          const body = ctx.compact({ sql: sql.value.trim() !== (a.sql || "").trim() ? sql.value.trim() : "", answer: text.value.trim() });
          if (!body.sql && !body.answer) {
            ctx.toast(t("请修改 SQL 或写出正确答案", "Change the SQL or write the right answer"), "error");
            return false;
          }
          const r = await api(`/api/agent/answers/${a.answer_id}/correct`, { body });
          ctx.toast(t("已记录更正", "Correction recorded"), "ok");
          done(r);
        } },
      ],
    });
  }

  // ------------------------------------------------------------------ the page
  async function render(el, ctx) {
    const { h, t, api } = ctx;
    loadCss();
    const disposers = [];
    let abort = null;
    let workspaces = [];
    try { workspaces = await api("/api/analytics/workspaces"); } catch (e) { ctx.showError(e); }
    let ws = ctx.params[0] || localStorage.getItem(WS_KEY) || localStorage.getItem(ANALYTICS_WS_KEY);
    if (!workspaces.some((w) => w.name === ws)) ws = (workspaces.find((w) => w.name === "demo") || workspaces[0] || {}).name || null;
    if (ws) localStorage.setItem(WS_KEY, ws);

    const demoBtn = h("button", { class: "btn", "data-testid": "agent-load-demo", onclick: async () => {
      demoBtn.disabled = true;
      try { await api("/api/analytics/demo", { method: "POST" }); localStorage.setItem(WS_KEY, "demo"); ctx.navigate("agent", "demo"); }
      catch (e) { ctx.showError(e); demoBtn.disabled = false; }
    } }, t("载入示例数据", "Load demo data"));
    const wsSel = h("select", { "data-testid": "agent-ws", onchange: () => { localStorage.setItem(WS_KEY, wsSel.value); ctx.navigate("agent", wsSel.value); } },
      workspaces.map((w) => h("option", { value: w.name, selected: w.name === ws }, w.name)));
    const newBtn = h("button", { class: "btn", "data-testid": "agent-new", onclick: () => {
      if (abort) abort.abort();
      sessionStorage.removeItem(SESSION_KEY(ws));
      session = null;
      for (const d of disposers.splice(0)) d();
      Z.clear(thread); sessionNote.textContent = "";
      question.focus();
    } }, ctx.icon("plus", 14), t("新对话", "New conversation"));
    el.append(h("div", { class: "toolbar" }, t("工作区", "Workspace"), workspaces.length ? wsSel : null,
      ws !== "demo" && !workspaces.some((w) => w.name === "demo") ? demoBtn : null, h("span", { class: "spacer" }), ws ? newBtn : null));
    if (!ws) {
      el.append(h("div", { class: "empty" }, t("还没有工作区：先载入示例数据，或在“数据分析”页导入自己的表",
        "No workspace yet: load the demo data, or import your own tables on the Analytics page")));
      return () => {};
    }

    let session = sessionStorage.getItem(SESSION_KEY(ws)) || null;
    const thread = h("div", { "data-testid": "agent-thread" });
    const sessionNote = h("span", { class: "muted", "data-testid": "agent-session", style: { fontSize: "12px" } });
    const showSession = () => { sessionNote.textContent = session ? t("追问会沿用上文", "Follow-ups keep the context") : ""; sessionNote.dataset.session = session || ""; };
    showSession();
    const question = h("textarea", { rows: 2, style: { width: "100%" }, "data-testid": "agent-question",
      placeholder: t("用中文或英文提问，例如：各合约类型的平均月费是多少？（回车发送，Shift+回车换行）",
        "Ask in Chinese or English, e.g. What is the average monthly charge per contract type? (Enter sends, Shift+Enter for a new line)") });
    const askBtn = h("button", { class: "btn primary", "data-testid": "agent-ask", onclick: () => ask() }, ctx.icon("send", 14), t("提问", "Ask"));
    const samples = h("div", { class: "agent-samples" }, SAMPLES.map((s) =>
      h("button", { class: "btn small ghost", type: "button", onclick: () => { question.value = t(s.zh, s.en); question.focus(); } }, t(s.zh, s.en))));
    question.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); ask(); } });
    el.append(ctx.card(t("问数：用自然语言查询数据", "Ask your data"), h("div", {}, question,
      h("div", { class: "row", style: { gap: "8px", marginTop: "6px" } }, askBtn, sessionNote), samples)));
    el.append(thread);

    async function ask() {
      const q = question.value.trim();
      if (!q || askBtn.disabled) return;
      if (abort) abort.abort();
      abort = new AbortController();
      const box = h("div", { class: "agent-turn", "data-testid": "agent-turn" });
      const progress = h("ol", { class: "agent-progress muted" });
      box.append(h("div", { class: "agent-q" }, q), h("div", { class: "muted", "data-testid": "agent-thinking" }, t("分析中…", "Working…")), progress);
      thread.append(box);
      box.scrollIntoView({ block: "nearest" });
      askBtn.disabled = true;
      let answered = false;
      try {
        const body = { question: q, workspace: ws, stream: true };
        if (session) body.session_id = session;
        for await (const ev of ctx.sse("/api/agent/ask", body, abort.signal)) {
          if (ev.event === "tool") {
            progress.append(h("li", {}, h("code", {}, ev.tool), " ", ev.ok ? (ev.summary || "ok") : (ev.error || t("失败", "failed"))));
          } else if (ev.event === "answer" && ev.answer) {
            answered = true;
            const a = ev.answer;
            if (a.session_id) { session = a.session_id; sessionStorage.setItem(SESSION_KEY(ws), session); showSession(); }
            renderTurn(ctx, box, q, a, ws, disposers);
          } else if (ev.event === "error") {
            throw new Error((ev.error && ev.error.message) || t("回答失败", "The answer failed"));
          }
        }
        if (!answered) throw new Error(t("服务器没有返回回答", "The server returned no answer"));
        question.value = "";
      } catch (e) {
        if (e.name === "AbortError") { box.remove(); return; }
        ctx.showError(e);
        Z.clear(box).append(h("div", { class: "agent-q" }, q), h("div", { class: "inline-error", "data-testid": "agent-error" }, e.message || String(e)));
      } finally { askBtn.disabled = false; }
    }

    question.focus();
    return () => { if (abort) abort.abort(); for (const d of disposers.splice(0)) d(); };
  }

  Z.registerPage({ id: "agent", title: { zh: "问数", en: "Ask your data" }, order: 35, icon: "database", group: "work", render });
})();
