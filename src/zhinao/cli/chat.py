"""``zhinao chat``: interactive, streaming, multi-turn chat in the terminal.

With ``--url`` it uses the official ``openai`` client against any running server. Without
it, a ``zhinao serve`` running on this home (its discovery file, see :mod:`zhinao.cli.remote`)
is used the same way with the server's local token, so the chat shares the server's loaded
model (no second llama-server, no 35-second start) and is metered under the ``cli-local``
key. With ``--local``, or when no server runs, the model runs in this process (same
admission, metering and turn log as the API).
"""

from __future__ import annotations

import asyncio
import sys

import typer

from zhinao.cli.common import cli_principal, console, err_console, handle_errors, platform
from zhinao.errors import ZhinaoError


@handle_errors
def chat(model: str = typer.Option("default", "--model", "-m", help="Model name or alias"),
         system: str = typer.Option(None, "--system", "-s", help="System prompt"),
         temperature: float = typer.Option(0.7, "--temperature"),
         max_tokens: int = typer.Option(512, "--max-tokens"),
         url: str = typer.Option(None, "--url", help="Talk to a running server (e.g. http://127.0.0.1:8000/v1)"),
         key: str = typer.Option(None, "--key", envvar="ZHINAO_API_KEY", help="API key for --url"),
         once: str = typer.Option(None, "--once", "--message", help="Ask one question and exit (no prompt loop)"),
         local: bool = typer.Option(False, "--local", help="Run the model in this process even if a server runs "
                                                           "on this home")) -> None:
    """Chat with a model; empty line or /exit quits, /reset starts over. 终端对话。"""
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    if not url and not local:
        from zhinao.cli.backend import server

        info = server()
        if info is not None:  # the server's model, metered under its cli-local key
            url, key = info.url + "/v1", info.token
    if url:
        from openai import OpenAI

        client = OpenAI(base_url=url, api_key=key or "none")

        def reply(msgs: list[dict]) -> str:
            import openai

            out = []
            try:
                for chunk in client.chat.completions.create(model=model, messages=msgs, stream=True,
                                                            temperature=temperature, max_tokens=max_tokens):
                    if chunk.choices and chunk.choices[0].delta.content:
                        piece = chunk.choices[0].delta.content
                        out.append(piece)
                        console.print(piece, end="", markup=False, highlight=False)
            except openai.APIError as e:  # one clear line (handle_errors), not a traceback
                body = getattr(e, "body", None)
                msg = (body.get("message") if isinstance(body, dict) else None) or e.message
                raise ZhinaoError(f"{url}: {msg}") from None
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
