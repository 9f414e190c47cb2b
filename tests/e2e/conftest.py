"""End-to-end fixtures: the real platform in a subprocess and a real browser (Debian chromium).

``live_server`` starts ``zhinao serve`` once per session with its own ZHINAO_HOME and the
deterministic ``echo`` model (0.02 s per token, so streaming and stopping can be observed).
``browser``/``page`` drive /usr/bin/chromium through Playwright. Without chromium (or
Playwright) the browser tests skip with the reason, except under ``CI=true`` where they fail:
CI must not silently lose them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from zhinao.runtime.llama_server import free_port

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ADMIN_KEY = "zk-e2e-admin-key-0123456789abcdef"
ADMIN_PASSWORD = "e2e-admin-password"
MODELS_TOML = """
[[models]]
name = "echo"
backend = "echo"
slots = 4
options = { delay_s = 0.02 }
"""


def _zhinao_exe() -> str:
    """The `zhinao` script next to the interpreter running the tests (the project's venv)."""
    exe = Path(sys.executable).with_name("zhinao")
    found = str(exe) if exe.exists() else shutil.which("zhinao")
    if not found:
        pytest.fail("the `zhinao` command is not installed in this environment (pip install -e .)")
    return found


@dataclass
class LiveServer:
    """A running platform. ``api`` calls it with the admin key unless another token is given."""

    base_url: str
    admin_key: str
    admin_password: str
    home: Path
    log_path: Path
    admin_username: str = "admin"
    _client: httpx.Client = field(default=None, repr=False)  # type: ignore[assignment]

    def api(self, method: str, path: str, *, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin_key}", **kw.pop("headers", {})}
        return self._client.request(method, self.base_url + path, headers=headers, **kw)

    def login(self, username: str | None = None, password: str | None = None) -> str:
        """A console session token, as the sign-in screen gets it."""
        r = self._client.post(self.base_url + "/api/auth/login",
                              json={"username": username or self.admin_username, "password": password or self.admin_password})
        assert r.status_code == 200, r.text
        return r.json()["token"]

    def chat(self, conversation_id: int, content: str, token: str | None = None, **extra: Any) -> list[dict]:
        """Send one message through the streaming endpoint; return the parsed SSE events."""
        events = []
        headers = {"Authorization": f"Bearer {token or self.admin_key}", "Accept": "text/event-stream"}
        with self._client.stream("POST", f"{self.base_url}/api/conversations/{conversation_id}/messages",
                                 json={"content": content, **extra}, headers=headers) as r:
            assert r.status_code == 200, r.read().decode()
            for line in r.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:].strip()))
        return events

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return ""


@contextlib.contextmanager
def start_server(home: Path, env_extra: dict[str, str], args: tuple[str, ...] = (),
                 ready: str = "/readyz") -> Iterator[LiveServer]:
    """Run `zhinao serve` on a free port with home ``home`` (admin key and password preset);
    yield once ``ready`` answers 200 (/readyz: the default model is up; /healthz with
    --no-warm), stop it at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHINAO_")}
    env.update({
        "ZHINAO_HOME": str(home), "ZHINAO_ADMIN_KEY": ADMIN_KEY, "ZHINAO_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ZHINAO_EMBEDDING_MODEL": "hash", "ZHINAO_ENV": "test",
        "ZHINAO_LOG_LEVEL": "WARNING", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **env_extra,
    })
    log_path = home / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([_zhinao_exe(), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(home))
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(timeout=30)
    server = LiveServer(base, ADMIN_KEY, ADMIN_PASSWORD, home, log_path, _client=client)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"zhinao serve exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if client.get(base + ready, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"zhinao serve did not become ready in 90 s:\n{server.log_tail()}")
            time.sleep(0.25)
        yield server
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> Iterator[LiveServer]:
    """The real platform (`zhinao serve`) on a free port, with a throwaway home; stopped at the end."""
    home = tmp_path_factory.mktemp("zhinao-home")
    (home / "models.toml").write_text(MODELS_TOML, encoding="utf-8")
    with start_server(home, {"ZHINAO_DEFAULT_MODEL": "echo"}) as server:
        yield server


def _require_browser() -> None:
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium fonts-noto-cjk)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed"
    if problem:
        if IN_CI:
            pytest.fail(problem + " (CI=true: browser tests must run)")
        pytest.skip(problem)


@pytest.fixture(scope="session")
def browser():
    """One chromium for the session (Playwright, the Debian binary, no downloads)."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (empty localStorage) on the console; JS errors fail the test."""
    context = browser.new_context(viewport={"width": 1360, "height": 860}, locale="zh-CN")
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.console_errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert not errors, f"JavaScript errors in the console: {errors}"


@pytest.fixture
def admin_page(page, live_server):
    """The console, signed in as the bootstrap admin (token put where the sign-in screen puts it)."""
    token = live_server.login()
    page.add_init_script(f"localStorage.setItem('zhinao.token', {json.dumps(token)});")
    page.goto(live_server.base_url + "/")
    page.wait_for_selector("[data-testid=nav] a")
    page.console_token = token  # type: ignore[attr-defined]
    return page
