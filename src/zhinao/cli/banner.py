"""The few lines ``zhinao serve`` prints when it starts: where to go, who to sign in as, how to stop.

A newcomer's first ``make run`` used to end in ~15,000 lines of build output and gRPC noise
with the one-time admin password somewhere in the middle. The build now goes to
``build/logs/`` and the server's own start lines are turned down, so this banner is the last
thing on the terminal before request logs begin.
"""

from __future__ import annotations

from pathlib import Path


def startup_banner(url: str, *, secrets: str | None, home: Path, default_model: str,
                   logs: list[str]) -> str:
    """The start banner.

    Args:
        url: the base URL clients use (console at ``/``, OpenAI-compatible API at ``/v1``).
        secrets: ``Platform.take_bootstrap_secrets()`` — the generated password and key, which
            exist in clear only now; None when the store existed already (or they were preset).
        home: the data directory.
        default_model: what a new chat and ``model="default"`` use.
        logs: where the logs are, one entry each.

    Returns:
        The text, lines of at most ~100 characters, no markup.
    """
    rule = "─" * 72
    url = url.rstrip("/")
    lines = [rule, f"  Zhinao 智脑 is running / 已启动    {url}/", "",
             f"  Console / 控制台       {url}/",
             f"  API (OpenAI) / 接口    {url}/v1      default model / 默认模型: {default_model}",
             f"  Data / 数据目录        {home}", ""]
    if secrets:
        lines += [f"  {line.strip()}" if i == 0 else f"    {line.strip()}"
                  for i, line in enumerate(secrets.splitlines())]
    else:
        lines.append("  Sign in / 登录          user admin, with the password shown at the first start "
                     "(or ZHINAO_ADMIN_PASSWORD)")
    lines += ["",
              "  Stop / 停止            Ctrl-C (or SIGTERM); running jobs resume at the next start",
              *[f"  Logs / 日志            {entry}" if i == 0 else f"                         {entry}"
                for i, entry in enumerate(logs)],
              rule]
    return "\n".join(lines)


def log_locations(cwd: Path, level: str) -> list[str]:
    """Where a newcomer finds logs: this terminal, and the build log when started by ``make run``."""
    out = [f"this terminal (JSON lines, level {level})"]
    build = cwd / "build" / "logs"
    if (build / "setup.log").is_file():
        out.append(f"build: {build}/setup.log")
    return out
