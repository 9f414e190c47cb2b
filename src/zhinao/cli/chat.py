"""``zhinao chat``: interactive, streaming, multi-turn chat in the terminal.

In-process by default (same admission, metering and turn log as the API); with
``--url`` it uses the official ``openai`` client against a running server.
"""

from __future__ import annotations

import asyncio
import sys

import typer

from zhinao.cli.common import cli_principal, console, err_console, handle_errors, platform


@handle_errors
def chat(model: str = typer.Option("default", "--model", "-m", help="Model name or alias"),
         system: str = typer.Option(None, "--system", "-s", help="System prompt"),
         temperature: float = typer.Option(0.7, "--temperature", "-t"),
         max_tokens: int = typer.Option(512, "--max-tokens"),
         url: str = typer.Option(None, "--url", help="Talk to a running server (e.g. http://127.0.0.1:8000/v1)"),
         key: str = typer.Option(None, "--key", envvar="ZHINAO_API_KEY", help="API key for --url"),
         once: str = typer.Option(None, "--once", help="Ask one question and exit (no prompt loop)")) -> None:
    """Chat with a model; empty line or /exit quits, /reset starts over. 终端对话。"""
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    if url:
        from openai import OpenAI

        client = OpenAI(base_url=url, api_key=key or "none")

        def reply(msgs: list[dict]) -> str:
            out = []
            for chunk in client.chat.completions.create(model=model, messages=msgs, stream=True,
                                                        temperature=temperature, max_tokens=max_tokens):
                if chunk.choices and chunk.choices[0].delta.content:
                    piece = chunk.choices[0].delta.content
                    out.append(piece)
                    console.print(piece, end="", markup=False, highlight=False)
            console.print()
            return "".join(out)

        _loop(history, reply, once)
        return

    with platform() as p:
        from zhinao.maas.generation import GenerationService
        from zhinao.runtime.base import GenerationParams

        principal = cli_principal(p)
        svc = GenerationService(p)
        loop = asyncio.new_event_loop()

        async def _reply(msgs: list[dict]) -> str:
            gen = svc.start(principal, model, msgs, GenerationParams(temperature=temperature, max_tokens=max_tokens),
                            endpoint="cli")
            async for d in gen:
                if d.content:
                    console.print(d.content, end="", markup=False, highlight=False)
            console.print()
            return gen.content

        try:
            _loop(history, lambda m: loop.run_until_complete(_reply(m)), once)
        finally:
            loop.run_until_complete(p.models.close())
            loop.close()


def _loop(history: list[dict], reply, once: str | None) -> None:
    if once is not None:
        history.append({"role": "user", "content": once})
        reply(history)
        return
    console.print("[dim]Zhinao chat — empty line or /exit to quit, /reset to clear / 空行退出[/dim]")
    while True:
        try:
            text = console.input("[bold cyan]> [/bold cyan]") if sys.stdin.isatty() else sys.stdin.readline()
        except (EOFError, KeyboardInterrupt):
            break
        if text is None:
            break
        text = text.strip()
        if not text or text == "/exit":
            break
        if text == "/reset":
            history[:] = [m for m in history if m["role"] == "system"]
            continue
        history.append({"role": "user", "content": text})
        try:
            answer = reply(history)
        except Exception as e:  # keep the session alive on a bad turn
            err_console.print(f"[red]error:[/red] {getattr(e, 'message', e)}")
            history.pop()
            continue
        history.append({"role": "assistant", "content": answer})
