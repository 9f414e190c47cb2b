"""`zhinao serve` with one job that ignores every stop request (for the shutdown-deadline test).

A real handler is registered under kind ``test.stubborn`` and a queued job of that kind is put
in the store before the server starts; the server's own resume at startup runs it. The
handler sleeps without ever calling ``ctx.check()``, as a parser stuck in C code would.

usage: python stubborn_serve.py PORT   (settings from ZHINAO_* in the environment)
"""

from __future__ import annotations

import sys
import time

from zhinao.store.jobs import job_handler


@job_handler("test.stubborn")
def stubborn(ctx, params):
    time.sleep(600)  # never looks at ctx.check()
    return {"done": True}


def main() -> None:
    from zhinao.cli import app
    from zhinao.platform import Platform
    from zhinao.store.models import Job

    p = Platform()
    p.bootstrap()
    with p.db.session() as s:
        s.add(Job(kind="test.stubborn", params={}, status="queued", tenant_id=1))  # tenant default
    p.db.dispose()
    sys.argv = ["zhinao", "serve", "--host", "127.0.0.1", "--port", sys.argv[1], "--no-warm"]
    app()


if __name__ == "__main__":
    main()
