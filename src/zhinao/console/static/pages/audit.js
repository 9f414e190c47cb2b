/* Audit / 审计: who did what, when, from where (GET /api/audit).
 * The operator sees every tenant, can verify the hash chain and export it; a tenant admin
 * sees their own tenant's rows. Members never see the page (and the API refuses them).
 */
(function () {
  "use strict";
  const Z = window.Zhinao;

  const ACTION_BADGE = { write: "blue", read: "", login: "warn" };
  function statusBadge(h, s) {
    const cls = s >= 500 ? "bad" : s >= 400 ? "warn" : "ok";
    return h("span", { class: "badge " + cls }, String(s));
  }

  async function auditPage(el, ctx) {
    const { h, t, api } = ctx;
    const isOperator = ctx.user.role === "operator";
    const f = { action: "", method: "", route: "", username: "", since: "", tenant_id: "" };
    let nextBefore = null, rows = [];
    const actionSel = h("select", { "data-testid": "audit-action", onchange: () => { f.action = actionSel.value; reload(); } },
      h("option", { value: "" }, t("全部操作", "All actions")),
      h("option", { value: "write" }, t("写操作", "Writes")),
      h("option", { value: "read" }, t("跨租户读取", "Cross-tenant reads")),
      h("option", { value: "login" }, t("登录", "Sign-ins")));
    const methodSel = h("select", { "data-testid": "audit-method", onchange: () => { f.method = methodSel.value; reload(); } },
      h("option", { value: "" }, t("全部方法", "All methods")), ["POST", "PUT", "PATCH", "DELETE", "GET"].map((m) => h("option", { value: m }, m)));
    const routeIn = h("input", { type: "search", placeholder: t("路由包含…", "Route contains…"), "data-testid": "audit-route",
      onchange: () => { f.route = routeIn.value.trim(); reload(); } });
    const userIn = h("input", { type: "search", placeholder: t("用户名", "Username"), onchange: () => { f.username = userIn.value.trim(); reload(); } });
    const sinceIn = h("input", { type: "date", title: t("起始日期（UTC）", "Since (UTC date)"), onchange: () => { f.since = sinceIn.value; reload(); } });
    const tenantIn = isOperator ? h("input", { type: "number", min: 1, placeholder: t("租户 ID", "Tenant id"), style: { width: "100px" },
      onchange: () => { f.tenant_id = tenantIn.value; reload(); } }) : null;
    const verifyBox = h("span", { "data-testid": "audit-verify-result" });
    const listBox = h("div", {});
    const more = h("button", { class: "btn", "data-testid": "audit-more", onclick: () => load(false) }, t("加载更多", "Load more"));

    function query(extra) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(Object.assign({}, f, extra || {}))) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
      return q.toString();
    }
    async function verify() {
      ctx.clear(verifyBox).append(h("span", { class: "muted" }, t("校验中…", "Verifying…")));
      try {
        const r = await api("/api/audit/verify");
        ctx.clear(verifyBox).append(r.ok
          ? h("span", { class: "badge ok", title: r.head ? `${r.head.seq}:${r.head.hash}` : "" },
            t(`哈希链完整（${r.rows} 行）`, `Chain intact (${r.rows} rows)`))
          : h("span", { class: "badge bad", title: r.first_broken.reason },
            t(`第 ${r.first_broken.seq} 行起链条断裂：`, `Broken at row ${r.first_broken.seq}: `) + r.first_broken.reason));
      } catch (e) { ctx.clear(verifyBox); ctx.showError(e); }
    }
    async function exportJsonl() {
      try {
        const resp = await api("/api/audit/export?" + query({ action: "", method: "", route: "", username: "" }), { raw: true });
        const url = URL.createObjectURL(await resp.blob());
        const a = h("a", { href: url, download: "audit.jsonl" });
        document.body.appendChild(a); a.click(); a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 1000);
      } catch (e) { ctx.showError(e); }
    }
    function who(r) {
      if (!r.username && !r.key_id) return h("span", { class: "muted" }, t("匿名", "anonymous"));
      return h("span", {}, h("b", {}, r.username || ("key #" + r.key_id)),
        h("span", { class: "muted" }, " @" + (r.tenant || r.tenant_id || "—") + (r.role ? " · " + r.role : "")));
    }
    function ids(r) {
      const res = Object.entries(r.resource || {}).map(([k, v]) => `${k}=${v}`);
      const vals = r.detail && r.detail.values ? Object.entries(r.detail.values).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(",") : v}`) : [];
      return h("span", { class: "mono", title: (r.detail && r.detail.fields ? t("字段：", "Fields: ") + r.detail.fields.join(", ") : "") },
        [...res, ...vals].join("  ") || "—");
    }
    function render() {
      ctx.clear(listBox).append(ctx.card(t("审计记录（最新在前）", "Audit rows (newest first)"), ctx.table([
        { label: "#", render: (r) => h("span", { class: "mono", title: "hash " + r.hash }, String(r.seq)) },
        { label: t("时间", "Time"), render: (r) => ctx.fmtTime(r.created_at) },
        { label: t("操作者", "Who"), render: who },
        { label: t("类型", "Kind"), render: (r) => h("span", { class: "badge " + (ACTION_BADGE[r.action] || "") },
          ({ write: t("写", "write"), read: t("读", "read"), login: t("登录", "sign-in") })[r.action] || r.action) },
        { label: t("请求", "Request"), render: (r) => h("span", { class: "mono", title: r.path }, r.method + " " + r.route) },
        { label: t("对象", "Resource"), render: ids },
        { label: t("结果", "Status"), render: (r) => statusBadge(h, r.status) },
        { label: t("来源 IP", "Client IP"), render: (r) => h("span", { class: "mono" }, r.client_ip || "—") },
        { label: t("请求 ID", "Request id"), render: (r) => h("span", { class: "mono" }, r.request_id || "—") },
      ], rows, { testid: "audit-table", empty: t("没有符合条件的审计记录", "No audit rows match") })),
      nextBefore ? h("div", { class: "toolbar" }, more) : null);
    }
    async function load(reset) {
      const page = await api("/api/audit?" + query({ limit: 100, before: reset ? "" : nextBefore }));
      rows = reset ? page.rows : rows.concat(page.rows);
      nextBefore = page.next_before;
      render();
    }
    function reload() { load(true).catch((e) => ctx.showError(e)); }

    el.append(
      h("p", { class: "muted" }, isOperator
        ? t("所有租户的写操作、登录以及运营者的跨租户读取；记录只增不改，逐行哈希链接。",
          "Every tenant's writes and sign-ins, and the operator's cross-tenant reads; append-only, each row hash-chained to the one before.")
        : t("本租户的写操作与登录，以及平台运营者对本租户的操作。", "Your tenant's writes and sign-ins, and what the platform operator did to it.")),
      h("div", { class: "toolbar" }, actionSel, methodSel, routeIn, userIn, sinceIn, tenantIn, h("span", { class: "spacer" }),
        isOperator ? h("button", { class: "btn", "data-testid": "audit-verify", onclick: verify }, ctx.icon("shield", 14), t("校验哈希链", "Verify chain")) : null,
        h("button", { class: "btn", "data-testid": "audit-export", onclick: exportJsonl }, ctx.icon("download", 14), t("导出 JSONL", "Export JSONL")),
        h("button", { class: "btn", onclick: reload }, ctx.icon("refresh-cw", 14), t("刷新", "Refresh"))),
      isOperator ? h("div", { class: "toolbar" }, verifyBox) : null,
      listBox);
    await load(true);
  }

  Z.registerPage({ id: "audit", title: { zh: "审计", en: "Audit" }, icon: "shield", order: 90, group: "admin",
    render: auditPage, adminOnly: true });
})();
