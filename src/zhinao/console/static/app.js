/* Zhinao console shell.
 *
 * The shell owns sign-in, the zh/en switch, the nav and hash routing; every screen is a page
 * registered with `Zhinao.registerPage({...})` by a script that the server lists at
 * GET /api/console/pages (built-in pages are registered exactly like extensions). A page's
 * `render(el, ctx)` may return a function; the shell calls it when the user leaves the page
 * (stop timers, abort streams).
 *
 * Everything user-visible goes through `t(zh, en)`; DOM is built with `h()`, which sets text
 * through textContent, so data from the server can never become markup by accident.
 */
(function () {
  "use strict";

  const TOKEN_KEY = "zhinao.token";
  const LANG_KEY = "zhinao.lang";
  const registry = new Map();
  const state = {
    lang: localStorage.getItem(LANG_KEY) || "zh",
    token: localStorage.getItem(TOKEN_KEY) || "",
    user: null,
    cleanup: null,
    renderSeq: 0,
    scriptsLoaded: false,
  };

  // ------------------------------------------------------------------ helpers
  function t(zh, en) { return state.lang === "en" ? (en ?? zh) : (zh ?? en); }

  /** h("div", {class: "x", onclick: fn}, "text", child, [more]) -> Element. Strings become text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k === "value") el.value = v;
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  /** icon("thumbs-up") -> inline SVG from the vendored Lucide subset; unknown names become text. */
  function icon(name, size) {
    const nodes = window.ZhinaoIcons && window.ZhinaoIcons[name];
    if (!nodes) return document.createTextNode(name || "");
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    const attrs = { viewBox: "0 0 24 24", width: size || 16, height: size || 16, fill: "none", stroke: "currentColor",
      "stroke-width": 2, "stroke-linecap": "round", "stroke-linejoin": "round", class: "icon", "aria-hidden": "true" };
    for (const [k, v] of Object.entries(attrs)) svg.setAttribute(k, String(v));
    for (const [tag, a] of nodes) {
      const el = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(a)) el.setAttribute(k, String(v));
      svg.appendChild(el);
    }
    return svg;
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

  function fmtNum(n) {
    if (n === null || n === undefined || n === "") return "—";
    const x = Number(n);
    if (!Number.isFinite(x)) return String(n);
    return x.toLocaleString(state.lang === "en" ? "en-US" : "zh-CN", { maximumFractionDigits: 1 });
  }
  function fmtTime(s) {
    if (!s) return "—";
    const d = new Date(typeof s === "number" ? s * 1000 : (/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : s + "Z"));
    if (isNaN(d)) return String(s);
    return d.toLocaleString(state.lang === "en" ? "en-US" : "zh-CN", { hour12: false });
  }
  function fmtDuration(sec) {
    sec = Math.floor(Number(sec) || 0);
    const d = Math.floor(sec / 86400), hh = Math.floor(sec % 86400 / 3600), mm = Math.floor(sec % 3600 / 60), ss = sec % 60;
    const parts = [];
    if (d) parts.push(d + t("天", "d"));
    if (d || hh) parts.push(hh + t("小时", "h"));
    if (d || hh || mm) parts.push(mm + t("分", "m"));
    parts.push(ss + t("秒", "s"));
    return parts.join(" ");
  }

  // ------------------------------------------------------------------ markdown (safe)
  let mdReady = false;
  function setupMarkdown() {
    if (mdReady || !window.marked) return;
    const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
    window.marked.use({
      gfm: true, breaks: true,
      renderer: {
        // Raw HTML from a model is shown as text, never interpreted.
        html(token) { return esc(token.text || token.raw || ""); },
        // No remote images: they would leak data to third parties and break offline use.
        image(token) { return esc("![" + (token.text || "") + "](" + (token.href || "") + ")"); },
      },
    });
    mdReady = true;
  }
  /** Markdown -> sanitised HTML string. Safe to assign to innerHTML. */
  function markdown(text) {
    setupMarkdown();
    const src = String(text ?? "");
    let html;
    if (mdReady) html = window.marked.parse(src);
    else html = src.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\n/g, "<br>");
    if (window.DOMPurify) {
      html = window.DOMPurify.sanitize(html, {
        FORBID_TAGS: ["style", "img", "form", "input", "button", "iframe", "object", "embed", "svg", "math"],
        FORBID_ATTR: ["style"],
        ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
      });
    } else {
      html = html.replace(/</g, "&lt;"); // no sanitiser loaded: refuse to emit markup at all
    }
    return html;
  }
  function renderMarkdown(el, text) {
    el.innerHTML = markdown(text);
    for (const a of el.querySelectorAll("a[href]")) { a.target = "_blank"; a.rel = "noopener noreferrer"; }
    for (const pre of el.querySelectorAll("pre")) {
      const code = pre.textContent;
      pre.appendChild(h("button", { class: "btn small copy-code", type: "button", onclick: async () => {
        try { await navigator.clipboard.writeText(code); toast(t("已复制代码", "Code copied")); } catch (_) { toast(t("无法访问剪贴板", "Clipboard is not available"), "error"); }
      } }, t("复制", "Copy")));
    }
    return el;
  }

  // ------------------------------------------------------------------ API
  class ApiError extends Error {
    constructor(message, status, body) { super(message); this.status = status; this.body = body; }
  }
  /** fetch with the Bearer token; JSON in/out; throws ApiError with the server's message.
   *  opts: {method, body (object => JSON), signal, raw (return the Response, for streams), headers} */
  async function api(path, opts = {}) {
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (state.token) headers.Authorization = "Bearer " + state.token;
    let body = opts.body;
    if (body !== undefined && !(body instanceof FormData) && typeof body !== "string") {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    const method = opts.method || (body !== undefined ? "POST" : "GET");
    let resp;
    try {
      resp = await fetch(path, { method, headers, body, signal: opts.signal });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(t("无法连接服务器：", "Cannot reach the server: ") + e.message, 0, null);
    }
    if (!resp.ok) {
      let msg = resp.status + " " + resp.statusText, data = null;
      try {
        data = await resp.json();
        const err = data && (data.error || data.detail);
        if (typeof err === "string") msg = err;
        else if (err && err.message) msg = err.message;
        else if (Array.isArray(err)) msg = err.map((x) => x.msg || JSON.stringify(x)).join("; ");
      } catch (_) { /* not JSON */ }
      if (resp.status === 401 && path !== "/api/auth/login") { signOut(false); }
      throw new ApiError(msg, resp.status, data);
    }
    if (opts.raw) return resp;
    if (resp.status === 204) return null;
    const ct = resp.headers.get("content-type") || "";
    return ct.includes("json") ? resp.json() : resp.text();
  }

  /** POST a body and yield parsed SSE `data:` JSON events from a text/event-stream response. */
  async function* sse(path, body, signal) {
    const resp = await api(path, { method: "POST", body, signal, raw: true, headers: { Accept: "text/event-stream" } });
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true }).replace(/\r\n/g, "\n");
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i); buf = buf.slice(i + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
          if (!data || data === "[DONE]") continue;
          try { yield JSON.parse(data); } catch (_) { /* ignore a malformed event */ }
        }
      }
    } finally {
      try { reader.releaseLock(); } catch (_) { /* already released */ }
    }
  }

  // ------------------------------------------------------------------ UI kit
  function toast(msg, kind) {
    let box = document.querySelector(".toasts");
    if (!box) { box = h("div", { class: "toasts" }); document.body.appendChild(box); }
    const el = h("div", { class: "toast " + (kind || ""), role: kind === "error" ? "alert" : "status" }, msg);
    box.appendChild(el);
    setTimeout(() => el.remove(), kind === "error" ? 6000 : 3000);
  }
  function showError(e) { if (e && e.name === "AbortError") return; toast((e && e.message) || String(e), "error"); }

  /** modal({title, body: Node|[Node], actions: [{label, primary, danger, onClick -> false keeps open}]}) */
  function modal({ title, body, actions, testid }) {
    const bg = h("div", { class: "modal-bg" });
    const close = () => bg.remove();
    const foot = h("div", { class: "m-f" });
    for (const a of actions || [{ label: t("关闭", "Close") }]) {
      foot.appendChild(h("button", {
        class: "btn " + (a.primary ? "primary" : a.danger ? "danger" : ""), "data-testid": a.testid,
        onclick: async () => {
          try { if (a.onClick && (await a.onClick()) === false) return; close(); } catch (e) { showError(e); }
        },
      }, a.label));
    }
    const m = h("div", { class: "modal", role: "dialog", "aria-modal": "true", "data-testid": testid },
      h("div", { class: "m-h" }, title), h("div", { class: "m-b" }, body), foot);
    bg.appendChild(m);
    bg.addEventListener("click", (ev) => { if (ev.target === bg) close(); });
    document.body.appendChild(bg);
    const first = m.querySelector("input, textarea, select");
    if (first) first.focus();
    return { close, el: m };
  }
  function confirmBox(message, { danger = true } = {}) {
    return new Promise((resolve) => {
      const m = modal({
        title: t("请确认", "Please confirm"), body: h("div", {}, message),
        actions: [{ label: t("取消", "Cancel"), onClick: () => resolve(false) },
          { label: t("确定", "OK"), primary: !danger, danger, testid: "confirm-ok", onClick: () => resolve(true) }],
      });
      m.el.parentElement.addEventListener("click", (ev) => { if (ev.target === m.el.parentElement) resolve(false); });
    });
  }

  /** table(columns, rows): columns = [{label, key | render(row) -> Node|string, num, class}] */
  function table(columns, rows, { empty, testid } = {}) {
    if (!rows || !rows.length) return h("div", { class: "empty", "data-testid": testid }, empty || t("暂无数据", "No data yet"));
    return h("table", { class: "tbl", "data-testid": testid },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : c.class }, c.label)))),
      h("tbody", {}, rows.map((r) => h("tr", { "data-id": r.id },
        columns.map((c) => h("td", { class: c.num ? "num" : c.class },
          c.render ? c.render(r) : (c.num ? fmtNum(r[c.key]) : (r[c.key] ?? "—"))))))));
  }

  /** form(fields, onSubmit): fields = [{name, label, type: text|password|number|select|checkbox|textarea, options, value, required, placeholder, wide}]
   *  Values are typed: number fields give numbers (or null when blank), checkboxes booleans. */
  function form(fields, onSubmit, { submitLabel, testid } = {}) {
    const inputs = {};
    const f = h("form", { class: "form-grid", "data-testid": testid });
    for (const fd of fields) {
      let input;
      if (fd.type === "select") {
        input = h("select", { name: fd.name, multiple: fd.multiple },
          fd.options.map((o) => h("option", { value: o.value, selected: fd.value === o.value }, o.label)));
      } else if (fd.type === "textarea") {
        input = h("textarea", { name: fd.name, rows: 3, placeholder: fd.placeholder, value: fd.value ?? "" });
      } else {
        input = h("input", { name: fd.name, type: fd.type || "text", required: fd.required, placeholder: fd.placeholder,
          value: fd.type === "checkbox" ? undefined : fd.value ?? "", checked: fd.type === "checkbox" && fd.value, min: fd.min,
          step: fd.step, autocomplete: fd.type === "password" ? "new-password" : "off" });
      }
      inputs[fd.name] = { input, fd };
      f.appendChild(h("label", { class: "field" + (fd.type === "checkbox" ? " check" : "") + (fd.wide ? " wide" : "") },
        fd.type === "checkbox" ? [input, fd.label] : [fd.label, input]));
    }
    const btn = h("button", { class: "btn primary", type: "submit" }, submitLabel || t("保存", "Save"));
    f.appendChild(h("div", {}, btn));
    f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const values = {};
      for (const [name, { input, fd }] of Object.entries(inputs)) {
        if (fd.type === "checkbox") values[name] = input.checked;
        else if (fd.type === "number") values[name] = input.value === "" ? null : Number(input.value);
        else if (fd.multiple) values[name] = Array.from(input.selectedOptions).map((o) => o.value);
        else values[name] = input.value.trim();
      }
      btn.disabled = true;
      try { await onSubmit(values, f); } catch (e) { showError(e); } finally { btn.disabled = false; }
    });
    return f;
  }
  function card(title, body, extra) {
    return h("div", { class: "card" }, h("div", { class: "card-h" }, h("h3", {}, title), extra || null),
      h("div", { class: "card-b" + (body && body.tagName === "TABLE" ? " flush" : "") }, body));
  }
  /** Drop nulls/empty strings so PATCH/POST bodies only carry what the user filled in. */
  function compact(obj) {
    const out = {};
    for (const [k, v] of Object.entries(obj)) if (v !== null && v !== "" && v !== undefined) out[k] = v;
    return out;
  }

  // ------------------------------------------------------------------ pages & routing
  function registerPage(page) {
    if (!page || !page.id || typeof page.render !== "function") throw new Error("registerPage needs {id, render}");
    registry.set(page.id, Object.assign({ order: 100, group: "work", icon: "sparkles", title: { zh: page.id, en: page.id } }, page));
    if (state.user && state.scriptsLoaded) renderShell(); // a page registered late (e.g. from the console)
  }
  /** Roles: operator (the platform's: models, tenants, every tenant's figures) > admin (one tenant) > member. */
  function isOperator(u) { return !!u && u.role === "operator"; }
  function isAdmin(u) { return !!u && (u.role === "admin" || u.role === "operator"); }
  function roleLabel(role) {
    return role === "operator" ? t("平台运营者", "Platform operator") : role === "admin" ? t("管理员", "Administrator") : t("成员", "Member");
  }
  function visiblePages() {
    return [...registry.values()]
      .filter((p) => (!p.adminOnly || isAdmin(state.user)) && (!p.operatorOnly || isOperator(state.user)))
      .sort((a, b) => a.order - b.order || a.id.localeCompare(b.id));
  }
  function route() {
    const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
    return { id: parts[0] || "", params: parts.slice(1) };
  }
  function navigate(id, ...params) { location.hash = "#/" + [id, ...params].map(encodeURIComponent).join("/"); }

  async function loadPageScripts() {
    if (state.scriptsLoaded) return;
    let list = [];
    try { list = await api("/api/console/pages"); } catch (e) { showError(e); }
    await Promise.all(list.map((p) => new Promise((resolve) => {
      if (document.querySelector('script[data-page="' + CSS.escape(p.id) + '"]')) return resolve();
      const s = document.createElement("script");
      s.src = p.script; s.dataset.page = p.id; s.async = false;
      s.onload = resolve;
      s.onerror = () => { toast(t("页面脚本加载失败：", "Failed to load page script: ") + p.script, "error"); resolve(); };
      document.head.appendChild(s);
    })));
    state.scriptsLoaded = true;
  }

  function setLang(lang) {
    state.lang = lang === "en" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, state.lang);
    document.documentElement.lang = state.lang === "en" ? "en" : "zh-CN";
    if (state.user) renderShell(true); else renderLogin();
  }
  function langSwitch() {
    return h("div", { class: "lang-switch", role: "group", "aria-label": "Language", "data-testid": "lang-switch" },
      h("button", { class: state.lang === "zh" ? "on" : "", "data-lang": "zh", onclick: () => setLang("zh") }, "中文"),
      h("button", { class: state.lang === "en" ? "on" : "", "data-lang": "en", onclick: () => setLang("en") }, "EN"));
  }
  const GROUPS = [
    { id: "work", zh: "工作台", en: "Workspace" },
    { id: "ops", zh: "运营管理", en: "Operations" },
    { id: "admin", zh: "系统管理", en: "Administration" },
  ];

  // ------------------------------------------------------------------ sign-in
  function renderLogin(message) {
    runCleanup();
    const app = clear(document.getElementById("app"));
    const err = h("div", { class: "err", "data-testid": "login-error" }, message || "");
    const user = h("input", { name: "username", autocomplete: "username", required: true,
      placeholder: t("用户名，或 租户/用户名", "username, or tenant/username") });
    const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
    const btn = h("button", { class: "btn primary", type: "submit", style: { justifyContent: "center", padding: "9px" } }, t("登录", "Sign in"));
    const f = h("form", { "data-testid": "login-form" },
      h("label", { class: "field" }, t("用户名", "Username"), user),
      h("label", { class: "field" }, t("密码", "Password"), pass), err, btn);
    f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      btn.disabled = true; err.textContent = "";
      try {
        const r = await api("/api/auth/login", { body: { username: user.value.trim(), password: pass.value } });
        state.token = r.token; localStorage.setItem(TOKEN_KEY, r.token);
        state.user = r.user;
        await start();
      } catch (e) {
        err.textContent = e.status === 401 || e.status === 403 ? t("用户名或密码错误（多租户时请用 租户/用户名 登录）", "Wrong username or password (with several tenants, sign in as tenant/username)")
          : e.status === 429 ? t("失败次数过多，请稍后再试", "Too many failed sign-ins; try again later") + (e.message ? "：" + e.message : "") : e.message;
      } finally { btn.disabled = false; }
    });
    app.appendChild(h("div", { class: "login-wrap" }, h("div", { class: "login-card" },
      h("div", { class: "brand-row" }, h("img", { src: "/static/logo.svg", alt: "", width: 44, height: 44 }), langSwitch()),
      h("h1", {}, t("智脑 企业大模型平台", "Zhinao Enterprise AI Platform")),
      h("p", { class: "sub" }, t("登录运营管理控制台", "Sign in to the operations console")), f)));
    user.focus();
  }
  async function signOut(callServer = true) {
    if (callServer && state.token) { try { await api("/api/auth/logout", { method: "POST" }); } catch (_) { /* ignore */ } }
    state.token = ""; state.user = null; localStorage.removeItem(TOKEN_KEY);
    renderLogin(callServer ? "" : t("会话已过期，请重新登录", "Your session has expired; please sign in again"));
  }

  // ------------------------------------------------------------------ shell
  function runCleanup() {
    if (typeof state.cleanup === "function") { try { state.cleanup(); } catch (_) { /* ignore */ } }
    state.cleanup = null;
  }
  function ctx(params) {
    return { api, sse, t, lang: state.lang, user: state.user, params, navigate, h, icon, markdown, renderMarkdown, toast, showError,
      modal, confirm: confirmBox, table, form, card, compact, fmtNum, fmtTime, fmtDuration, clear,
      isAdmin: isAdmin(state.user), isOperator: isOperator(state.user), roleLabel };
  }

  function renderShell(keepScroll) {
    const app = document.getElementById("app");
    const r = route();
    const pages = visiblePages();
    let page = registry.get(r.id);
    if (!page || !pages.includes(page)) page = pages[0];
    const nav = h("nav", { class: "nav", "data-testid": "nav" });
    for (const g of GROUPS) {
      const inGroup = pages.filter((p) => (p.group || "work") === g.id);
      if (!inGroup.length) continue;
      nav.appendChild(h("div", { class: "group" }, t(g.zh, g.en)));
      for (const p of inGroup) {
        nav.appendChild(h("a", { href: "#/" + p.id, class: p === page ? "active" : "", "data-page": p.id },
          h("span", { class: "ico", "aria-hidden": "true" }, icon(p.icon, 17)), t(p.title.zh, p.title.en)));
      }
    }
    const other = pages.filter((p) => !GROUPS.some((g) => g.id === (p.group || "work")));
    for (const p of other) nav.appendChild(h("a", { href: "#/" + p.id, class: p === page ? "active" : "", "data-page": p.id },
      h("span", { class: "ico" }, icon(p.icon, 17)), t(p.title.zh, p.title.en)));

    const u = state.user;
    const shell = h("div", { class: "shell" });
    const sidebar = h("aside", { class: "sidebar" },
      h("div", { class: "brand" }, h("img", { src: "/static/logo.svg", alt: "" }),
        h("div", {}, "智脑 Zhinao", h("small", {}, t("企业大模型平台", "Enterprise AI platform")))),
      nav,
      h("div", { class: "side-foot" },
        h("div", { class: "who", "data-testid": "who" }, u.username,
          h("small", { "data-testid": "who-role", "data-role": u.role }, (u.tenant || "") + " · " + roleLabel(u.role))),
        h("div", { class: "row" }, langSwitch(), h("span", { class: "spacer" }),
          h("button", { class: "btn small ghost", style: { color: "#c7d2e0" }, "data-testid": "sign-out", onclick: () => signOut(true) },
            icon("log-out", 14), t("退出", "Sign out")))));
    const title = h("h2", { "data-testid": "page-title" }, page ? t(page.title.zh, page.title.en) : "");
    document.title = (page ? t(page.title.zh, page.title.en) + " · " : "") + t("智脑", "Zhinao");
    const content = h("div", { class: "content" + (page && page.flush ? " flush" : ""), "data-testid": "content" });
    const main = h("div", { class: "main" },
      h("header", { class: "topbar" },
        h("button", { class: "btn ghost menu-btn", "aria-label": t("菜单", "Menu"), onclick: () => shell.classList.toggle("nav-open") }, icon("menu", 18)),
        title, h("span", { class: "muted", style: { fontSize: "12.5px" } }, u.tenant ? t("租户：", "Tenant: ") + u.tenant : "")),
      content);
    shell.append(sidebar, main);
    nav.addEventListener("click", () => shell.classList.remove("nav-open"));
    runCleanup();
    clear(app).appendChild(shell);
    if (!page) { content.appendChild(h("div", { class: "empty" }, t("没有可用页面", "No pages available"))); return; }
    if (r.id !== page.id) { history.replaceState(null, "", "#/" + page.id); }
    const seq = ++state.renderSeq;
    Promise.resolve()
      .then(() => page.render(content, ctx(r.id === page.id ? r.params : [])))
      .then((cleanup) => { if (seq === state.renderSeq) state.cleanup = cleanup; else if (typeof cleanup === "function") cleanup(); })
      .catch((e) => { showError(e); content.appendChild(h("div", { class: "empty" }, e.message || String(e))); });
    void keepScroll;
  }

  async function start() {
    document.documentElement.lang = state.lang === "en" ? "en" : "zh-CN";
    if (!state.token) return renderLogin();
    if (!state.user) {
      try { state.user = await api("/api/me"); } catch (e) { if (e.status !== 401) showError(e); return renderLogin(); }
    }
    await loadPageScripts();
    renderShell();
  }

  window.addEventListener("hashchange", () => { if (state.user) renderShell(); });

  // the charts module (and ECharts behind it) for pages that draw: loaded once, on first use
  let chartsLoading = null;
  function loadCharts() {
    if (window.ZhinaoCharts && window.echarts) return Promise.resolve(window.ZhinaoCharts);
    if (!chartsLoading) {
      chartsLoading = new Promise((resolve, reject) => {
        const done = () => window.ZhinaoCharts.load().then(() => resolve(window.ZhinaoCharts), reject);
        if (window.ZhinaoCharts) return done();
        const s = document.createElement("script");
        s.src = "/static/charts.js"; s.onload = done;
        s.onerror = () => { chartsLoading = null; reject(new Error("failed to load /static/charts.js")); };
        document.head.appendChild(s);
      });
    }
    return chartsLoading;
  }

  window.Zhinao = {
    registerPage, t, h, icon, api, sse, markdown, renderMarkdown, toast, showError, modal, confirm: confirmBox, table, form, card,
    compact, fmtNum, fmtTime, fmtDuration, clear, navigate, loadCharts, ApiError, isAdmin, isOperator, roleLabel,
    get lang() { return state.lang; }, get user() { return state.user; }, setLang,
  };

  document.addEventListener("DOMContentLoaded", start);
})();
