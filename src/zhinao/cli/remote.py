"""The CLI beside a running server: the discovery file, and the platform over HTTP.

Milvus Lite (the knowledge index) and the workspaces' DuckDB files are single-process, so
while ``zhinao serve`` runs on a home a second process cannot open them ("the file has been
opened by another program"). The server therefore leaves a small discovery file,
``ZHINAO_HOME/run/server.json`` (mode 0600: it holds a token), with its URL, pid and a
local token: an operator key of tenant ``default`` named ``cli-local``, created through
TenancyService at start (audited) and revoked at stop (and at the next start, should the
process have died without stopping). CLI commands that need the platform find the file
and talk to the server over the same HTTP API the console uses (:class:`Remote`), so their
work is admitted, metered (under the ``cli-local`` key) and audited like any client's. A
file whose pid is dead or whose port does not answer is stale and ignored.

:class:`RemoteKnowledge` and :class:`RemoteAnalytics` are the HTTP halves of the CLI's two
backends (the in-process halves are in :mod:`zhinao.cli.backend`); both return the same
dicts the services return, so each command has one code path for its output.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from zhinao.errors import ZhinaoError

KEY_NAME = "cli-local"


def discovery_path(home: Path) -> Path:
    return Path(home) / "run" / "server.json"


@dataclass(frozen=True)
class ServerInfo:
    url: str
    pid: int
    token: str
    key_id: int | None = None


# -- the discovery file ------------------------------------------------------------------------

def write_discovery(home: Path, url: str, token: str, key_id: int | None) -> Path:
    """Write the file atomically with mode 0600 (the folder 0700): only the home's owner reads the token."""
    path = discovery_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".server.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"url": url, "pid": os.getpid(), "token": token, "key_id": key_id,
                   "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, f)
    os.replace(tmp, path)
    return path


def remove_discovery(home: Path, pid: int | None = None) -> None:
    """Remove the file if it is ours (``pid``), so a stopping server never removes a newer one's."""
    path = discovery_path(home)
    with contextlib.suppress(OSError, ValueError):
        if pid is None or json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


def _port_open(url: str) -> bool:
    u = urlsplit(url)
    host = u.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    try:
        with socket.create_connection((host, u.port or 80), timeout=1.0):
            return True
    except OSError:
        return False


def discover(home: Path) -> ServerInfo | None:
    """The live server on this home, or None (no file, unreadable, pid dead, port closed)."""
    path = discovery_path(home)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        info = ServerInfo(url=str(d["url"]).rstrip("/"), pid=int(d["pid"]), token=str(d["token"]),
                          key_id=d.get("key_id"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _pid_alive(info.pid) or not _port_open(info.url):
        return None
    return info


class ServerHoldsHome(ZhinaoError):
    """``--local`` (or a local-only command) while a server holds the home's single-process files."""

    status = 409
    type = "conflict"
    code = "server_running"


# -- HTTP --------------------------------------------------------------------------------------

class RemoteError(ZhinaoError):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message, code=code)
        self.status = status


class Remote:
    """The running server's API with the local token; errors come back as :class:`ZhinaoError`."""

    def __init__(self, info: ServerInfo, timeout: float = 300.0):
        import httpx

        self.info = info
        self.url = info.url
        self.client = httpx.Client(base_url=info.url, timeout=timeout,
                                   headers={"Authorization": f"Bearer {info.token}", "User-Agent": "zhinao-cli"})

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            r = self.client.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise RemoteError(503, f"the server at {self.url} did not answer ({e}); "
                                   "is it still running? (`--local` works without it)") from None
        if r.status_code >= 400:
            try:
                err = r.json().get("error") or {}
                msg, code = err.get("message") or r.text, err.get("code")
            except ValueError:
                msg, code = r.text[:300], None
            raise RemoteError(r.status_code, msg, code)
        ctype = r.headers.get("content-type", "")
        return r.json() if ctype.startswith("application/json") else r.content

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=body, **kw) if body is not None or not kw else \
            self.request("POST", path, **kw)

    def wait_job(self, job_id: int, progress: Callable[[dict], None] | None = None) -> dict:
        while True:
            job = self.get(f"/api/jobs/{job_id}")
            if progress:
                progress(job)
            if job["status"] not in ("queued", "running"):
                return job
            time.sleep(0.3)


def _q(name: str) -> str:
    return quote(str(name), safe="")


def _files(paths: list[Path]) -> tuple[list[tuple[str, bytes]], list[dict]]:
    """Files and folders as (relative name, bytes), the way KnowledgeService.add_paths reads them."""
    from zhinao.knowledge.paths import read_paths

    return read_paths(paths)


class RemoteKnowledge:
    """The knowledge base over /api/kb (see :class:`zhinao.cli.backend.LocalKnowledge`)."""

    remote = True

    def __init__(self, r: Remote):
        self.r = r

    def where(self) -> str:
        return f"server {self.r.url}"

    def create_collection(self, name: str, description: str, visibility: str) -> dict:
        return self.r.post("/api/kb/collections", {"name": name, "description": description, "visibility": visibility})

    def ensure_collection(self, name: str, description: str = "") -> None:
        try:
            self.r.get(f"/api/kb/collections/{_q(name)}")
        except RemoteError as e:
            if e.status != 404:
                raise
            self.create_collection(name, description, "tenant")

    def list_collections(self) -> list[dict]:
        return self.r.get("/api/kb/collections")

    def add_paths(self, collection: str, paths: list[Path], *, tags, access_tags, title, effective_date) -> dict:
        files, skipped = _files(paths)
        if not files:
            raise RemoteError(404, "; ".join(x["error"] for x in skipped) or "no files found")
        data = {k: v for k, v in {"tags": ",".join(tags or []) or None, "access_tags": ",".join(access_tags or []) or None,
                                  "title": title if len(files) == 1 else None,
                                  "effective_date": effective_date}.items() if v}
        out = self.r.request("POST", f"/api/kb/{_q(collection)}/documents", data=data,
                             files=[("files", (n, b)) for n, b in files])
        out["rejected"] = skipped + out.get("rejected", [])
        return out

    def wait_job(self, job_id: int, progress=None) -> dict:
        return self.r.wait_job(job_id, progress)

    def reindex(self, collection: str) -> dict:
        return self.r.post(f"/api/kb/{_q(collection)}/reindex")

    def list_documents(self, collection: str) -> list[dict]:
        return self.r.get(f"/api/kb/{_q(collection)}/documents")

    def delete_document(self, collection: str, doc_id: int) -> None:
        self.r.request("DELETE", f"/api/kb/{_q(collection)}/documents/{int(doc_id)}")

    def search(self, query: str, *, collection, k, tags, doc_types, mode) -> dict:
        return self.r.request("GET", "/api/kb/search", params=[(n, v) for n, v in
                              [("q", query), ("collection", collection), ("k", k), ("mode", mode)]
                              + [("tag", t) for t in tags or []] + [("type", t) for t in doc_types or []]
                              if v is not None])

    def ask(self, collection: str, question: str, model: str | None) -> dict:
        return self.r.post(f"/api/kb/{_q(collection)}/chat",
                           {"messages": [{"role": "user", "content": question}], "model": model,
                            "temperature": 0.2, "max_tokens": 400})

    def demo(self, collection: str) -> dict:
        """The sample corpus, one upload per file so each keeps its own tags and date."""
        from zhinao.knowledge.demo import META, corpus_files

        self.ensure_collection(collection, "星河通信示例知识库 (sample content: fictional telecom service documents)")
        results, jobs = [], []
        for p in corpus_files():
            meta = META[p.name]
            out = self.r.request("POST", f"/api/kb/{_q(collection)}/documents", files=[("files", (p.name, p.read_bytes()))],
                                 data={"tags": ",".join(meta["tags"]), "effective_date": meta["effective_date"],
                                       "wait": "true"})
            job = out.get("job") or (self.r.get(f"/api/jobs/{out['job_id']}") if out.get("job_id") else None)
            if job:
                job = self.r.wait_job(job["id"])
                jobs.append(job)
                results += (job.get("result") or {}).get("results", [])
        failed = next((j for j in jobs if j["status"] != "succeeded"), None)
        last = failed or (jobs[-1] if jobs else {"id": None, "status": "succeeded"})
        return {**last, "result": {"results": results}}


class RemoteAnalytics:
    """Workspaces, catalogue and runs over /api/analytics and /api/datasources."""

    remote = True

    def __init__(self, r: Remote):
        self.r = r

    def where(self) -> str:
        return f"server {self.r.url}"

    def _ws(self, ws: str) -> str:
        return f"/api/analytics/workspaces/{_q(ws)}"

    def workspaces(self) -> list[dict]:
        return self.r.get("/api/analytics/workspaces")

    def create_workspace(self, name: str, description: str) -> dict:
        return self.r.post("/api/analytics/workspaces", {"name": name, "description": description})

    def ensure_demo(self) -> dict:
        return self.r.post("/api/analytics/demo")

    def import_path(self, ws: str, path: Path, **kw: Any) -> dict:
        data = {"name": kw.get("name"), "format": kw.get("fmt"), "encoding": kw.get("encoding"),
                "sheet": None if kw.get("sheet") is None else str(kw["sheet"]),
                "replace": "true" if kw.get("replace") else "false", "description": kw.get("description") or ""}
        return self.r.request("POST", f"{self._ws(ws)}/datasets", data={k: v for k, v in data.items() if v is not None},
                              files=[("file", (Path(path).name, Path(path).read_bytes()))])

    def import_sql(self, ws: str, source: str, query: str, name: str, replace: bool) -> dict:
        return self.r.post(f"{self._ws(ws)}/datasets/sql", {"source": source, "query": query, "name": name,
                                                            "replace": replace})

    def sources_register(self, name: str, url: str, tenants: list[str], description: str, replace: bool) -> dict:
        return self.r.post("/api/datasources", {"name": name, "url": url, "tenants": tenants,
                                                "description": description, "replace": replace})

    def sources_list(self) -> list[dict]:
        return self.r.get("/api/datasources")

    def sources_remove(self, name: str) -> None:
        self.r.request("DELETE", f"/api/datasources/{_q(name)}")

    def datasets(self, ws: str) -> list[dict]:
        return self.r.get(f"{self._ws(ws)}/datasets")

    def dataset(self, ws: str, name: str) -> dict:
        return self.r.get(f"{self._ws(ws)}/datasets/{_q(name)}")

    def describe(self, ws: str, name: str, columns: dict, description: str | None) -> dict:
        return self.r.request("PATCH", f"{self._ws(ws)}/datasets/{_q(name)}",
                              json={"columns": columns, "description": description})

    def glossary(self, ws: str) -> list[dict]:
        return self.r.get(f"{self._ws(ws)}/glossary")

    def set_term(self, ws: str, term: str, **fields: Any) -> dict:
        return self.r.request("PUT", f"{self._ws(ws)}/glossary/{_q(term)}", json=fields)

    def delete_term(self, ws: str, term: str) -> None:
        self.r.request("DELETE", f"{self._ws(ws)}/glossary/{_q(term)}")

    def query(self, ws: str, sql: str, limit: int) -> dict:
        return self.r.post(f"{self._ws(ws)}/query", {"sql": sql, "limit": limit})

    def catalogue(self, theme: str | None) -> list[dict]:
        return self.r.get("/api/analytics/catalogue", theme=theme)

    def start_run(self, key: str, **kw: Any) -> dict:
        return self.r.post("/api/analytics/runs", {"model": key, **kw})

    def get_run(self, run_id: int) -> dict:
        return self.r.get(f"/api/analytics/runs/{int(run_id)}")

    def runs(self, model: str | None) -> list[dict]:
        return self.r.get("/api/analytics/runs", model=model)

    def artifacts(self, run: dict) -> str:
        return f"{self.r.url}/api/analytics/runs/{run['id']}/model (and /evaluation)"

    def chart_files(self, run: dict) -> list[str]:
        return [f"{self.r.url}/api/analytics/runs/{int(run['id'])}/charts/{name}.png" for name in run.get("charts") or []]

    def score(self, run_id: int, ws: str, dataset: str, output: str | None) -> dict:
        return self.r.post(f"/api/analytics/runs/{int(run_id)}/score",
                           {"workspace": ws, "dataset": dataset, "output": output})

    def export_csv(self, ws: str, name: str) -> bytes:
        return self.r.request("GET", f"{self._ws(ws)}/datasets/{_q(name)}/csv")
