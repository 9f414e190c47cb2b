"""``zhinao audit``: export the audit log as JSON lines and verify its hash chain.

``zhinao audit export [--since DATE] [--tenant NAME] > audit.jsonl`` writes rows in chain
order (nothing else goes to stdout, so the file is clean JSONL). ``zhinao audit verify``
walks the chain in the store (or, with ``--file``, an exported file) and exits 1 at the
first broken row; it prints the head ``SEQ:HASH`` — keep it elsewhere and pass it later as
``--anchor`` to prove nothing up to that row was rewritten since.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from zhinao.cli.common import console, err_console, handle_errors, platform

app = typer.Typer(no_args_is_help=True)


def _since(value: str | None):
    from zhinao.maas.audit import parse_time

    return parse_time(value, "--since")


@app.command("export")
@handle_errors
def export(since: str = typer.Option(None, "--since", help="ISO date or date-time (UTC), e.g. 2026-12-01"),
           tenant: str = typer.Option(None, "--tenant", "-t", help="only rows by or about this tenant (name)"),
           output: Path = typer.Option(None, "--output", "-o", help="file to write (default: stdout)")) -> None:
    """Write the audit log as JSON lines (one row per line, chain order)."""
    t_since = _since(since)
    with platform() as p:
        tenant_id = p.tenancy.tenant_by_name(tenant)["id"] if tenant else None
        if output is None:
            n = p.audit.export_jsonl(sys.stdout, since=t_since, tenant_id=tenant_id)
            sys.stdout.flush()
        else:
            with output.open("w", encoding="utf-8") as f:
                n = p.audit.export_jsonl(f, since=t_since, tenant_id=tenant_id)
    err_console.print(f"exported {n} audit rows")


@app.command("verify")
@handle_errors
def verify(file: Path = typer.Option(None, "--file", "-f", help="verify an exported JSONL file instead"),
           anchor: str = typer.Option(None, "--anchor", help="SEQ:HASH printed by an earlier verify"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Check the hash chain; exit 1 and name the first broken row when it does not hold."""
    from zhinao.maas.audit import parse_anchor, verify_rows

    a = parse_anchor(anchor) if anchor else None
    if file is not None:
        rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows.sort(key=lambda r: r.get("seq", 0))
        seqs = [r.get("seq") for r in rows]
        # an export --since is one unbroken stretch; an export --tenant has gaps: check rows alone
        contiguous = seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True
        res = verify_rows(rows, contiguous=contiguous, anchor=a)
        res["checked"] = "each row and the links between them" if contiguous else "each row's own hash (a filtered export)"
    else:
        with platform() as p:
            res = p.audit.verify(anchor=a)
    if as_json:
        console.print_json(json.dumps(res))
    elif res["ok"]:
        head = res["head"]
        typer.echo(f"ok: {res['rows']} rows, chain intact"  # plain echo: the head must not be wrapped
                   + (f"; head {head['seq']}:{head['hash']}" if head else " (empty log)"))
    else:
        b = res["first_broken"]
        err_console.print(f"[red]broken[/red] at row {b['seq']}: {b['reason']} ({res['rows']} rows verified before it)")
    if not res["ok"]:
        raise typer.Exit(1)
