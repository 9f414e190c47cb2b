/* Knowledge page (知识库): collections, drag-and-drop upload with progress, the document
 * table (status, chunks, updated; replace / delete), ask with citations, library search.
 *
 * Route: #/knowledge/<collection>. Text from documents is only ever set through h()
 * (textContent); search highlights arrive HTML-escaped with <mark> tags and are rebuilt
 * here as text nodes and <mark> elements, never assigned as HTML.
 */
(function () {
  "use strict";
  const Z = window.Zhinao;
  const KEY = "zhinao.kb.collection";

  function enc(s) { return encodeURIComponent(s); }
  function unescapeHtml(s) { const ta = document.createElement("textarea"); ta.innerHTML = s; return ta.value; }
  function highlighted(h, html) {  // "a &lt;b&gt; <mark>c</mark>" -> [text, <mark>, ...] without innerHTML on the page
    return String(html || "").split(/(<mark>[\s\S]*?<\/mark>)/).filter(Boolean).map((part) =>
      part.startsWith("<mark>") ? h("mark", {}, unescapeHtml(part.slice(6, -7))) : unescapeHtml(part));
  }
  function statusBadge(h, t, s) {
    const cls = { ready: "ok", indexing: "warn", pending: "warn", failed: "err", deleting: "warn" }[s] || "";
    const label = { ready: t("就绪", "ready"), indexing: t("索引中", "indexing"), pending: t("排队", "pending"),
      failed: t("失败", "failed"), deleting: t("删除中", "deleting") }[s] || s;
    return h("span", { class: "badge " + cls, "data-status": s }, label);
  }

  /** multipart upload with progress (fetch has no upload progress): resolves to the JSON reply */
  function upload(path, form, onProgress, method) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method || "POST", path);
      const token = localStorage.getItem("zhinao.token");
      if (token) xhr.setRequestHeader("Authorization", "Bearer " + token);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      xhr.onload = () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300) return resolve(data);
        const err = data && (data.error || data.detail);
        reject(new Error((err && (err.message || (typeof err === "string" ? err : ""))) || xhr.status + " " + xhr.statusText));
      };
      xhr.onerror = () => reject(new Error("network error"));
      xhr.send(form);
    });
  }

  async function render(el, ctx) {
    const { h, t, api } = ctx;
    const timers = [];
    let collections = [];
    try { collections = await api("/api/kb/collections"); } catch (e) { ctx.showError(e); }
    let current = ctx.params[0] || localStorage.getItem(KEY) || (collections[0] && collections[0].name) || "";
    if (current && !collections.some((c) => c.name === current)) current = collections[0] ? collections[0].name : "";
    if (current) localStorage.setItem(KEY, current);
    const coll = collections.find((c) => c.name === current);

    // ---------------------------------------------------------------- collections
    const picker = h("select", { "data-testid": "kb-collection", onchange: () => ctx.navigate("knowledge", picker.value) },
      collections.map((c) => h("option", { value: c.name, selected: c.name === current }, `${c.name} (${c.documents})`)));
    const createForm = ctx.form([
      { name: "name", label: t("名称", "Name"), required: true, placeholder: "customer-service" },
      { name: "description", label: t("说明", "Description") },
      { name: "private", label: t("仅成员可见", "Members only"), type: "checkbox" },
    ], async (v) => {
      const c = await api("/api/kb/collections", { body: { name: v.name, description: v.description, visibility: v.private ? "private" : "tenant" } });
      ctx.toast(t(`已创建知识库 ${c.name}`, `Created collection ${c.name}`), "ok");
      ctx.navigate("knowledge", c.name);
    }, { submitLabel: t("创建", "Create"), testid: "kb-create" });
    el.append(ctx.card(t("知识库", "Collections"), h("div", {},
      collections.length ? h("div", { class: "row", style: { gap: "8px", marginBottom: "10px" } }, t("当前：", "Current: "), picker,
        coll ? h("span", { class: "muted" }, `${coll.documents} ${t("篇文档", "documents")} · ${coll.chunks} ${t("个片段", "chunks")}`) : null) :
        h("div", { class: "empty" }, t("还没有知识库，先创建一个", "No collection yet: create one")),
      createForm)));
    if (!coll) return () => timers.forEach(clearInterval);
    const base = `/api/kb/${enc(current)}`;

    // ---------------------------------------------------------------- upload
    const files = h("input", { type: "file", multiple: true, "data-testid": "kb-files",
      accept: ".pdf,.docx,.pptx,.xlsx,.csv,.tsv,.html,.htm,.md,.markdown,.txt,.jsonl" });
    const tags = h("input", { placeholder: t("标签，逗号分隔", "Tags, comma-separated"), "data-testid": "kb-tags" });
    const date = h("input", { type: "date", title: t("生效日期", "Effective date") });
    const bar = h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
      "aria-valuenow": "0", "data-testid": "kb-progress", style: { height: "8px", background: "#e3e8ef", borderRadius: "4px", overflow: "hidden", display: "none" } },
      h("div", { style: { height: "100%", width: "0%", background: "#5b8def" } }));
    const status = h("div", { class: "muted", "data-testid": "kb-upload-status" });
    // per-file errors stay on the page (refused at upload: size, type, empty; failed while indexing)
    const fileErrors = h("ul", { class: "errors", "data-testid": "kb-upload-errors", style: { color: "#b42318", fontSize: "13px", margin: "6px 0 0 0" } });
    const fileError = (source, msg) => fileErrors.append(h("li", { "data-source": source }, msg));
    const setBar = (f) => {
      const pct = Math.round(f * 100);
      bar.style.display = "block"; bar.firstChild.style.width = pct + "%"; bar.setAttribute("aria-valuenow", String(pct));
    };
    async function send(list) {
      if (!list.length) return ctx.toast(t("请选择文件", "Choose files"), "error");
      const fd = new FormData();
      for (const f of list) fd.append("files", f, f.name);
      if (tags.value.trim()) fd.append("tags", tags.value.trim());
      if (date.value) fd.append("effective_date", date.value);
      status.textContent = t("上传中…", "Uploading…");
      Z.clear(fileErrors);
      try {
        const r = await upload(`${base}/documents`, fd, (p) => setBar(p * 0.3));
        for (const x of r.rejected || []) { ctx.toast(x.error, "error"); fileError(x.source, x.error); }
        status.textContent = t(`已接收 ${r.accepted.length} 个文件，正在索引…`, `${r.accepted.length} file(s) accepted, indexing…`);
        await followJob(r.job_id);
      } catch (e) { ctx.showError(e); status.textContent = e.message; }
    }
    async function followJob(id) {
      return new Promise((resolve) => {
        const timer = setInterval(async () => {
          try {
            const j = await api(`/api/jobs/${id}`);
            setBar(0.3 + 0.7 * (j.progress || 0));
            if (["succeeded", "failed", "cancelled"].includes(j.status)) {
              clearInterval(timer);
              const counts = (j.result && j.result.counts) || {};
              status.textContent = j.status === "succeeded"
                ? t("完成：", "Done: ") + Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ")
                : `${j.status}: ${j.error || ""}`;
              for (const r of (j.result && j.result.results) || []) {
                if (r.status === "failed") { ctx.toast(r.error, "error"); fileError(r.source, r.error); }
              }
              await refreshDocs();
              resolve(j);
            }
          } catch (e) { clearInterval(timer); ctx.showError(e); resolve(null); }
        }, 700);
        timers.push(timer);
      });
    }
    const drop = h("div", { class: "dropzone", "data-testid": "kb-drop", style: { border: "2px dashed #b8c4d6", borderRadius: "8px",
      padding: "18px", textAlign: "center", marginBottom: "8px" } },
      t("把文件拖到这里（PDF、Word、PPT、Excel、CSV、HTML、Markdown、TXT、JSONL 问答，可多选）",
        "Drop files here (PDF, Word, PowerPoint, Excel, CSV, HTML, Markdown, TXT, JSONL Q&A; many at once)"));
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.style.background = "#eef3fd"; });
    drop.addEventListener("dragleave", () => { drop.style.background = ""; });
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.style.background = ""; send(Array.from(e.dataTransfer.files)); });
    const sendBtn = h("button", { class: "btn primary", "data-testid": "kb-upload", onclick: () => send(Array.from(files.files)) },
      ctx.icon("upload", 14), t("上传", "Upload"));
    el.append(ctx.card(t("上传文档", "Upload documents"), h("div", {}, drop,
      h("div", { class: "row", style: { gap: "8px", flexWrap: "wrap" } }, files, tags, date, sendBtn), bar, status, fileErrors)));

    // ---------------------------------------------------------------- documents
    const docsBox = h("div", {});
    async function replaceDoc(d) {
      const input = h("input", { type: "file" });
      input.onchange = async () => {
        if (!input.files.length) return;
        const fd = new FormData();
        fd.append("file", input.files[0], input.files[0].name);
        status.textContent = t(`正在替换 ${d.source}…`, `Replacing ${d.source}…`);
        try { const r = await upload(`${base}/documents/${d.id}`, fd, (p) => setBar(p * 0.3), "PUT"); await followJob(r.job_id); }
        catch (e) { ctx.showError(e); status.textContent = e.message; }
      };
      input.click();
    }
    async function refreshDocs() {
      const docs = await api(`${base}/documents`);
      Z.clear(docsBox).append(ctx.table([
        { label: t("文件", "File"), key: "source" },
        { label: t("标题", "Title"), render: (d) => d.title || "—" },
        { label: t("类型", "Type"), key: "doc_type" },
        { label: t("状态", "Status"), render: (d) => h("span", { title: d.error || "" }, statusBadge(h, t, d.status),
          d.error ? h("div", { class: "muted", style: { fontSize: "12px" } }, d.error.slice(0, 120)) : null) },
        { label: t("片段", "Chunks"), key: "chunks", num: true },
        { label: t("标签", "Tags"), render: (d) => (d.tags || []).join(", ") || "—" },
        { label: t("更新时间", "Updated"), render: (d) => ctx.fmtTime(d.updated_at) },
        { label: "", render: (d) => coll.can_write ? h("span", { class: "row", style: { gap: "4px" } },
          h("button", { class: "btn small", "data-testid": "kb-replace", onclick: () => replaceDoc(d) }, t("替换", "Replace")),
          h("button", { class: "btn small danger", "data-testid": "kb-delete", onclick: async () => {
            if (!(await ctx.confirm(t(`删除 ${d.source}？`, `Delete ${d.source}?`)))) return;
            try { await api(`${base}/documents/${d.id}`, { method: "DELETE" }); await refreshDocs(); } catch (e) { ctx.showError(e); }
          } }, t("删除", "Delete"))) : "" },
      ], docs, { testid: "kb-docs", empty: t("还没有文档", "No documents yet") }));
    }
    el.append(ctx.card(t("文档", "Documents"), docsBox));
    await refreshDocs();

    // ---------------------------------------------------------------- ask
    const question = h("textarea", { rows: 2, style: { width: "100%" }, "data-testid": "kb-question",
      placeholder: t("向知识库提问，例如：携号转网需要什么条件？", "Ask the knowledge base, e.g. What does the Asia roaming day pass cost?") });
    const answer = h("div", { class: "answer", "data-testid": "kb-answer", style: { whiteSpace: "pre-wrap", margin: "8px 0" } });
    const cites = h("ol", { class: "citations", "data-testid": "kb-citations" });
    const history = [];
    let abort = null;
    function showPassage(c) {
      api(c.url).then((p) => ctx.modal({ title: `[${c.n}] ${c.title}${c.page ? " · p." + c.page : ""}`,
        body: h("div", {}, (p.heading || []).length ? h("div", { class: "muted" }, p.heading.join(" > ")) : null,
          h("p", { style: { whiteSpace: "pre-wrap" } }, p.text)) })).catch((e) => ctx.showError(e));
    }
    // a citation: document title, its section (heading path) and page, then the passage
    // around the cited sentence with that sentence in <mark> (text nodes only, no HTML)
    function citedExcerpt(c) {
      const text = c.excerpt || (c.snippet || "").slice(0, 160);
      const s = c.sentence || "";
      const at = s ? text.indexOf(s) : -1;
      if (at < 0) return h("div", { class: "muted", style: { fontSize: "12px" } }, text);
      return h("div", { class: "muted", style: { fontSize: "12px" }, "data-testid": "kb-cite-excerpt" },
        text.slice(0, at), h("mark", { title: t("引用的句子", "Cited sentence") }, s), text.slice(at + s.length));
    }
    function renderCites(list) {
      Z.clear(cites);
      for (const c of list || []) {
        const section = (c.heading || []).filter((x) => x && x !== c.title).join(" > ");
        cites.append(h("li", { value: c.n, style: { fontWeight: c.cited ? "600" : "normal" } },
          h("a", { href: "#", onclick: (e) => { e.preventDefault(); showPassage(c); } }, c.title),
          section ? h("span", { class: "kb-cite-section", "data-testid": "kb-cite-section" }, " · " + section) : "",
          c.page ? h("span", { "data-testid": "kb-cite-page" }, t(` · 第 ${c.page} 页`, ` · p. ${c.page}`)) : "",
          citedExcerpt(c)));
      }
    }
    const askBtn = h("button", { class: "btn primary", "data-testid": "kb-ask", onclick: async () => {
      const q = question.value.trim();
      if (!q) return;
      if (abort) abort.abort();
      abort = new AbortController();
      history.push({ role: "user", content: q });
      answer.textContent = ""; renderCites([]);
      askBtn.disabled = true;
      try {
        for await (const ev of ctx.sse(`${base}/chat`, { messages: history.slice(-6), stream: true }, abort.signal)) {
          if (ev.type === "citations" || ev.type === "done") renderCites(ev.citations);
          else if (ev.type === "delta") answer.textContent += ev.content;
          else if (ev.type === "error") ctx.toast(ev.error.message, "error");
        }
        history.push({ role: "assistant", content: answer.textContent });
      } catch (e) { ctx.showError(e); } finally { askBtn.disabled = false; }
    } }, ctx.icon("send", 14), t("提问", "Ask"));
    el.append(ctx.card(t("知识问答（带引用）", "Ask, with citations"), h("div", {}, question,
      h("div", { class: "row", style: { gap: "8px" } }, askBtn,
        h("button", { class: "btn ghost", onclick: () => { history.length = 0; answer.textContent = ""; renderCites([]); } }, t("新对话", "New conversation"))),
      answer, cites)));

    // ---------------------------------------------------------------- search
    const sq = h("input", { placeholder: t("检索文档库", "Search the library"), "data-testid": "kb-search-q", style: { flex: "1" } });
    const stag = h("input", { placeholder: t("标签", "Tag"), style: { width: "120px" } });
    const stype = h("select", {}, h("option", { value: "" }, t("全部类型", "All types")),
      ["pdf", "docx", "pptx", "xlsx", "csv", "html", "md", "txt", "jsonl"].map((x) => h("option", { value: x }, x)));
    const sfrom = h("input", { type: "date", title: t("生效日期起", "Effective from") });
    const results = h("div", { "data-testid": "kb-search-results" });
    async function doSearch() {
      const q = sq.value.trim();
      if (!q) return;
      const params = new URLSearchParams({ q, collection: current });
      if (stag.value.trim()) params.append("tag", stag.value.trim());
      if (stype.value) params.append("type", stype.value);
      if (sfrom.value) params.append("date_from", sfrom.value);
      try {
        const r = await api(`/api/kb/search?${params}`);
        Z.clear(results);
        if (!r.results.length) results.append(h("div", { class: "empty" }, t("没有结果", "No results")));
        r.results.forEach((d, i) => results.append(h("div", { class: "search-hit", style: { margin: "10px 0" } },
          h("div", { style: { fontWeight: "600" } }, `${i + 1}. ${d.title || d.source}`,
            h("span", { class: "muted", style: { fontWeight: "normal", marginLeft: "8px" } },
              `${d.source} · ${d.doc_type}${d.effective_date ? " · " + d.effective_date : ""}`)),
          d.passages.map((p) => h("div", { class: "muted", style: { margin: "4px 0 0 14px" } },
            p.page ? `p.${p.page} ` : "", (p.heading || []).length ? p.heading.join(" > ") + ": " : "", highlighted(h, p.highlight))))));
      } catch (e) { ctx.showError(e); }
    }
    sq.addEventListener("keydown", (e) => { if (e.key === "Enter") doSearch(); });
    el.append(ctx.card(t("文档检索", "Library search"), h("div", {},
      h("div", { class: "row", style: { gap: "8px", flexWrap: "wrap" } }, sq, stag, stype, sfrom,
        h("button", { class: "btn", "data-testid": "kb-search", onclick: doSearch }, ctx.icon("search", 14), t("检索", "Search"))),
      results)));

    return () => { timers.forEach(clearInterval); if (abort) abort.abort(); };
  }

  Z.registerPage({ id: "knowledge", title: { zh: "知识库", en: "Knowledge" }, order: 30, icon: "book-open", group: "work", render });
})();
