"""``zhinao serve``: run the platform (API, console) with uvicorn."""

from __future__ import annotations

import typer

from zhinao.cli.common import console


def serve(host: str = typer.Option(None, help="Bind address (default ZHINAO_HOST or 127.0.0.1)"),
          port: int = typer.Option(None, help="Port (default ZHINAO_PORT or 8000)"),
          demo: bool = typer.Option(False, help="Load the demo data (sample knowledge base, analytics workspace)"),
          no_warm: bool = typer.Option(False, "--no-warm", help="Do not start the default model at boot")) -> None:
    """Start Zhinao: OpenAI-compatible /v1, console at /, /metrics. 启动平台。"""
    import uvicorn

    from zhinao.gateway.app import create_app
    from zhinao.platform import Platform
    from zhinao.settings import get_settings

    s = get_settings()
    host, port = host or s.host, port or s.port
    platform = Platform(s)
    platform.bootstrap()  # before the demo loader, which needs the default tenant
    if demo or s.demo:
        from zhinao.demo import load_demo

        load_demo(platform)
    app = create_app(platform, warm_default=not no_warm)
    console.print(f"Zhinao 智脑 on http://{host}:{port}  (home {s.home}, default model {s.default_model})")
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=10)
