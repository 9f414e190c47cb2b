"""``zhinao tenants|users|keys|usage``: tenancy and metering from the terminal."""

from __future__ import annotations

import json

import typer

from zhinao.cli import output
from zhinao.cli.common import console, handle_errors, platform
from zhinao.cli.output import JSON

tenants = typer.Typer(no_args_is_help=True)
users = typer.Typer(no_args_is_help=True)
keys = typer.Typer(no_args_is_help=True)


def _show(rows: list[dict], cols: list[str], as_json: bool) -> None:
    if as_json:
        output.print_json(rows)
    else:
        output.records(rows, cols)


def _tenant_id(p, tenant: str) -> int:
    return p.tenancy.tenant_by_name(tenant)["id"]


@tenants.command("list")
@handle_errors
def tenants_list(as_json: bool = JSON) -> None:
    with platform() as p:
        _show(p.tenancy.list_tenants(), ["id", "name", "display_name", "rpm", "tpm", "tokens_per_day", "disabled"],
              as_json)


@tenants.command("create")
@handle_errors
def tenants_create(name: str, display_name: str = typer.Option(""), rpm: int = typer.Option(None),
                   tpm: int = typer.Option(None), tokens_per_day: int = typer.Option(None)) -> None:
    with platform() as p:
        t = p.tenancy.create_tenant(name, display_name, rpm, tpm, tokens_per_day)
        console.print(f"created tenant {t['name']} (id {t['id']})")


@tenants.command("update")
@handle_errors
def tenants_update(name: str, rpm: int = typer.Option(None), tpm: int = typer.Option(None),
                   tokens_per_day: int = typer.Option(None), disabled: bool = typer.Option(None),
                   models: str = typer.Option(None, help="Models granted to the tenant, comma-separated; "
                                                         "'all' = every platform model")) -> None:
    fields = {k: v for k, v in {"rpm": rpm, "tpm": tpm, "tokens_per_day": tokens_per_day,
                                "disabled": disabled}.items() if v is not None}
    with platform() as p:
        if models is not None:
            fields["models"] = None if models.strip() == "all" else sorted(
                {p.models.canonical(m.strip()) for m in models.split(",") if m.strip()})
        t = p.tenancy.update_tenant(_tenant_id(p, name), **fields)
        console.print_json(json.dumps(t))


@tenants.command("delete")
@handle_errors
def tenants_delete(name: str, yes: bool = typer.Option(False, "--yes")) -> None:
    if not yes:
        typer.confirm(f"delete tenant {name} and all its users, keys and conversations?", abort=True)
    with platform() as p:
        p.tenancy.delete_tenant(_tenant_id(p, name))
        console.print(f"deleted tenant {name}")


@users.command("list")
@handle_errors
def users_list(tenant: str = typer.Option(None, "--tenant", "-t"), as_json: bool = JSON) -> None:
    """Users (their role: operator, admin or member)."""
    with platform() as p:
        tid = _tenant_id(p, tenant) if tenant else None
        _show(p.tenancy.list_users(tid), ["id", "username", "role", "tenant_id", "disabled"], as_json)


@users.command("create")
@handle_errors
def users_create(username: str, password: str = typer.Option(..., prompt=True, hide_input=True),
                 role: str = typer.Option("member", help="member | admin (of the tenant) | operator (tenant "
                                                         "default only: the platform operator)"),
                 tenant: str = typer.Option("default", "--tenant", "-t")) -> None:
    """Create a user. The CLI is run by the machine's own user, so it may create operators."""
    with platform() as p:
        u = p.tenancy.create_user(_tenant_id(p, tenant), username, password, role)
        console.print(f"created user {u['username']} ({u['role']}) in tenant {tenant}")


@users.command("update")
@handle_errors
def users_update(username: str, tenant: str = typer.Option("default", "--tenant", "-t"),
                 role: str = typer.Option(None, help="member | admin | operator"),
                 disabled: bool = typer.Option(None, "--disabled/--enabled"),
                 password: bool = typer.Option(False, "--password", help="Prompt for a new password")) -> None:
    """Change a user's role, state or password (the last operator cannot be demoted or disabled)."""
    with platform() as p:
        tid = _tenant_id(p, tenant)
        u = next((u for u in p.tenancy.list_users(tid) if u["username"] == username), None)
        if u is None:
            from zhinao.errors import NotFound

            raise NotFound(f"user {username!r} not found in tenant {tenant!r}")
        new_pw = typer.prompt("new password", hide_input=True, confirmation_prompt=True) if password else None
        out = p.tenancy.update_user(u["id"], role=role, disabled=disabled, password=new_pw)
        console.print(f"user {out['username']}: {out['role']}{' (disabled)' if out['disabled'] else ''}")


@keys.command("list")
@handle_errors
def keys_list(tenant: str = typer.Option(None, "--tenant", "-t"), as_json: bool = JSON) -> None:
    with platform() as p:
        tid = _tenant_id(p, tenant) if tenant else None
        _show(p.tenancy.list_keys(tid), ["id", "name", "prefix", "tenant_id", "role", "models", "rpm", "tpm",
                                         "tokens_per_day", "revoked", "last_used_at"], as_json)


@keys.command("create")
@handle_errors
def keys_create(name: str = typer.Option("", "--name", "-n"), tenant: str = typer.Option("default", "--tenant", "-t"),
                model: list[str] = typer.Option([], "--model", "-m", help="Allowed model (repeatable); none = all"),
                role: str = typer.Option("member", help="member | admin | operator (tenant default only)"),
                rpm: int = typer.Option(None), tpm: int = typer.Option(None),
                tokens_per_day: int = typer.Option(None)) -> None:
    """Create a key; the secret is printed once and never stored."""
    with platform() as p:
        k = p.tenancy.create_key(_tenant_id(p, tenant), name=name, role=role, models=list(model) or None, rpm=rpm,
                                 tpm=tpm, tokens_per_day=tokens_per_day)
        console.print(f"key id {k['id']} — store it now, it is not shown again / 请立即保存：")
        console.print(k["key"], markup=False, highlight=False)


@keys.command("revoke")
@handle_errors
def keys_revoke(key_id: int) -> None:
    with platform() as p:
        p.tenancy.revoke_key(key_id)
        console.print(f"revoked key {key_id}")


@handle_errors
def usage(days: int = typer.Option(30), group_by: str = typer.Option("day", help="day,model,tenant,key (comma list)"),
          tenant: str = typer.Option(None, "--tenant", "-t", help="Only this tenant"),
          as_json: bool = JSON) -> None:
    """Metered usage per tenant / key / model / day. 用量统计。"""
    with platform() as p:
        tid = _tenant_id(p, tenant) if tenant else None
        res = p.usage.query(tenant_id=tid, days=days, group_by=group_by)
        if as_json:
            output.print_json(res)
            return
        cols = res["group_by"] + ["requests", "prompt_tokens", "completion_tokens", "total_tokens", "avg_latency_ms"]
        output.records(res["rows"], cols)
        console.print(f"total: {res['totals']['total_tokens']} tokens in {res['totals']['requests']} requests "
                      f"since {res['since']}")
