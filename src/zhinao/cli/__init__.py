"""``zhinao``: the command line (Typer + Rich).

Admin commands work on the local store directly (the same services the API uses);
``serve`` runs the platform; ``chat`` talks to a model in-process or, with ``--url``,
to any running Zhinao (or OpenAI-compatible) server. Capability commands (``kb``,
``data``) are sub-apps in their own modules, mounted below.
"""

from __future__ import annotations

import importlib

import typer

from zhinao.cli import admin, chat, models, serve

app = typer.Typer(help="Zhinao 智脑 — enterprise large-model platform / 企业大模型平台", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.command("serve")(serve.serve)
app.command("chat")(chat.chat)
app.add_typer(models.app, name="models", help="Declare, install, test models / 模型管理")
app.add_typer(admin.tenants, name="tenants", help="Tenants / 租户")
app.add_typer(admin.users, name="users", help="Users / 用户")
app.add_typer(admin.keys, name="keys", help="API keys / 密钥")
app.command("usage")(admin.usage)

#: capability sub-apps: (module, command name, help)
SUBAPPS = [
    ("zhinao.cli.kb", "kb", "Knowledge base / 知识库"),
    ("zhinao.cli.data", "data", "Analytics workspaces and mining models / 数据分析"),
    ("zhinao.cli.audit", "audit", "Audit log: export, verify / 审计日志"),
]
for _mod, _name, _help in SUBAPPS:
    try:
        _m = importlib.import_module(_mod)
    except ModuleNotFoundError as _e:
        if _e.name != _mod:
            raise
        continue
    app.add_typer(_m.app, name=_name, help=_help)
    if _name == "data":  # the issue's `zhinao models run KEY`: the same command under models
        models.app.command("run", help="Run a catalogue mining model (same as `zhinao data run`)")(_m.run)


def main() -> None:
    app()
