"""Child process for the kill -9 test: starts a slow ingestion job and waits to be killed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from kbutil import ADMIN, make_service

from zhinao.runtime.echo import HashEmbedder


class SlowEmbedder(HashEmbedder):
    """HashEmbedder's vectors, produced slowly, so the job is mid-way when it is killed."""

    def embed(self, texts, kind="passage"):
        time.sleep(0.04 * len(texts))
        return super().embed(texts, kind)


def corpus(n_docs: int = 10, n_paras: int = 12) -> list[tuple[str, bytes]]:
    return [(f"doc{i:02d}.md", "\n\n".join(
        [f"# 文档 {i}"] + [f"## 第 {j} 节\n\n文档 {i} 第 {j} 节：套餐编号 {i * 100 + j} 的月租为 {j + 10} 元。" for j in range(n_paras)]
    ).encode()) for i in range(n_docs)]


if __name__ == "__main__":
    svc = make_service(Path(sys.argv[1]), embedder=SlowEmbedder(), embed_batch=2)
    svc.create_collection(ADMIN, "crash")
    out = svc.add_documents(ADMIN, "crash", corpus())
    print("JOB", out["job_id"], flush=True)
    time.sleep(600)
