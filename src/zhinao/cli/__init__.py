"""``zhinao``: the command line (Typer + Rich).

Admin commands work on the local store directly (the same services the API uses);
``serve`` runs the platform; ``chat`` talks to a model in-process or, with ``--url``,
to any running Zhinao (or OpenAI-compatible) server. Each capability names its own
commands (``Capability.cli``, see :mod:`zhinao.capability`): a sub-app such as ``kb``, or a
command inside an existing group (``models run``); :func:`build_app` mounts them after the
core's, so the command line names no capability.
"""

from __future__ import annotations

import logging

import typer

from zhinao import capability as registry
from zhinao.cli import admin, audit, chat, models, serve

log = logging.getLogger(__name__)


def build_app() -> typer.Typer:
    """The ``zhinao`` command: the core's commands, then every registered capability's."""
    app = typer.Typer(help="Zhinao 智脑 — enterprise large-model platform / 企业大模型平台", no_args_is_help=True,
                      pretty_exceptions_enable=False)
    app.command("serve")(serve.serve)
    app.command("chat")(chat.chat)
    groups: dict[str, typer.Typer] = {"models": models.app, "tenants": admin.tenants, "users": admin.users,
                                      "keys": admin.keys, "audit": audit.app}
    app.add_typer(models.app, name="models", help="Declare, install, test models / 模型管理")
    app.add_typer(admin.tenants, name="tenants", help="Tenants / 租户")
    app.add_typer(admin.users, name="users", help="Users / 用户")
    app.add_typer(admin.keys, name="keys", help="API keys / 密钥")
    app.command("usage")(admin.usage)
    app.add_typer(audit.app, name="audit", help="Audit log: export, verify / 审计日志")
    nested = []
    for cap in registry.capabilities().values():
        for entry in cap.cli:
            parts = entry.path.split()
            if len(parts) == 2:
                nested.append((cap.name, entry, parts))
                continue
            target = registry.resolve(entry.target)
            if isinstance(target, typer.Typer):
                app.add_typer(target, name=entry.path, help=entry.help or None)
                groups[entry.path] = target
            else:
                app.command(entry.path, help=entry.help or None)(target)
    for cap_name, entry, (group_name, command) in nested:  # after every group exists
        group = groups.get(group_name)
        if group is None:
            log.warning("capability %s: no command group %r for %r", cap_name, group_name, entry.path)
            continue
        if not any(c.name == command for c in group.registered_commands):  # groups are shared: add once
            group.command(command, help=entry.help or None)(registry.resolve(entry.target))
    return app


app = build_app()


def main() -> None:
    app()
