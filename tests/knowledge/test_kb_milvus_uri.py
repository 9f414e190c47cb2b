"""The knowledge base against a Milvus server given by URI (``kb_milvus_uri``), not the local file.

No Milvus standalone server runs on this machine, so the server is the Milvus engine that the
milvus-lite package ships, started as a gRPC server on a TCP port (``milvus_lite.server.Server``
with an address). The client side is then exactly what a Milvus server sees: pymilvus over
``http://host:port`` with a token, none of the Lite file handling.
"""

from __future__ import annotations

import socket
import time

import pytest
from kbutil import ADMIN, close_service, make_service

from zhinao.errors import EngineUnavailable
from zhinao.runtime.llama_server import free_port


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    from milvus_lite.server import Server

    port = free_port()
    server = Server(str(tmp_path_factory.mktemp("milvus-server") / "server.db"), address=f"127.0.0.1:{port}")
    assert server.init() and server.start(), "the Milvus engine did not start"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_same_service_code_runs_against_a_server_uri(milvus_server, tmp_path):
    svc = make_service(tmp_path, milvus_uri=milvus_server, milvus_token="root:Milvus", milvus_prefix="same_code_")
    try:
        assert svc.index.uri == milvus_server and not (tmp_path / "kb" / "milvus.db").exists()
        svc.create_collection(ADMIN, "remote")
        out = svc.add_documents(ADMIN, "remote", [
            ("mnp.md", "# 携号转网\n\n## 条件\n\n号码在网满 120 天且没有欠费。".encode()),
            ("roam.md", "# Roaming\n\nThe Asia day pass costs 25 yuan per day.".encode())], wait=True)
        assert out["job"]["status"] == "succeeded", out
        for mode in ("dense", "bm25", "hybrid"):
            hits = svc.retrieve(ADMIN, "remote", "携号转网需要在网多久", mode=mode)
            assert hits and hits[0].doc["source"] == "mnp.md", mode
        doc = next(d for d in svc.list_documents(ADMIN, "remote") if d["source"] == "mnp.md")
        svc.replace_document(ADMIN, "remote", doc["id"], "mnp.md", "# 携号转网\n\n## 条件\n\n在网满 90 天即可。".encode(),
                             wait=True)
        bodies = [h.body for h in svc.retrieve(ADMIN, "remote", "携号转网 在网", k=10)]
        assert any("90 天" in b for b in bodies) and not any("120 天" in b for b in bodies)
        svc.delete_document(ADMIN, "remote", doc["id"])
        assert all(h.doc_id != doc["id"] for h in svc.retrieve(ADMIN, "remote", "携号转网", k=10))
    finally:
        close_service(svc)


def test_reindex_moves_a_library_from_milvus_lite_to_a_server(milvus_server, tmp_path):
    files = [("mnp.md", "# 携号转网\n\n## 条件\n\n号码在网满 120 天且没有欠费。".encode()),
             ("roam.md", "# Roaming\n\nThe Asia day pass costs 25 yuan per day.".encode()),
             ("bb.txt", "宽带故障报修：城区 24 小时内修复。".encode())]
    lite = make_service(tmp_path)  # the default: a Milvus Lite file under home
    try:
        lite.create_collection(ADMIN, "lib")
        lite.add_documents(ADMIN, "lib", files, wait=True)
        before = {q: lite.retrieve(ADMIN, "lib", q, k=1)[0].doc["source"] for q in ("携号转网条件", "Asia day pass")}
    finally:
        close_service(lite)
    assert (tmp_path / "kb" / "milvus.db").exists()

    # same home (metadata store and stored originals), the index now on the server
    srv = make_service(tmp_path, milvus_uri=milvus_server, milvus_prefix="moved_")
    try:
        assert srv.retrieve(ADMIN, "lib", "携号转网条件") == []  # the server's index starts empty
        out = srv.reindex(ADMIN, "lib", wait=True)
        assert out["documents"] == 3 and out["job"]["result"]["counts"] == {"reindexed": 3}, out
        after = {q: srv.retrieve(ADMIN, "lib", q, k=1)[0].doc["source"] for q in before}
        assert after == before == {"携号转网条件": "mnp.md", "Asia day pass": "roam.md"}
        docs = srv.list_documents(ADMIN, "lib")
        assert {d["status"] for d in docs} == {"ready"} and all(d["version"] == 2 for d in docs)
        srv.reindex(ADMIN, "lib", wait=True)  # again: new versions replace the old, nothing doubles
        name = srv.index.name(srv.get_collection(ADMIN, "lib")["id"])
        assert name.startswith("moved_")
        assert srv.index.count(name) == sum(d["chunks"] for d in srv.list_documents(ADMIN, "lib"))
    finally:
        close_service(srv)


def test_an_unreachable_server_is_a_clear_error(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    t0 = time.time()
    with pytest.raises(EngineUnavailable, match="Milvus server is running"):
        svc = make_service(tmp_path, milvus_uri=uri)
        svc.index  # noqa: B018  (the index may be opened lazily)
    assert time.time() - t0 < 60


def test_a_lite_file_held_by_another_process_is_a_clear_error(tmp_path):
    """Milvus Lite serves one process per file (e.g. `zhinao serve` running while the CLI starts)."""
    import subprocess
    import sys

    from zhinao.knowledge.index import MilvusIndex

    db = tmp_path / "held.db"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from zhinao.knowledge.index import MilvusIndex\n"
        f"ix = MilvusIndex({str(db)!r}); ix.ensure(1, 8)\n"
        "print('ready', flush=True); time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(EngineUnavailable, match="open in another process"):
            MilvusIndex(str(db))
    finally:
        holder.kill()
        holder.wait()
    ix = MilvusIndex(str(db))  # the holder's death released the file: it opens, and the data is there
    try:
        assert ix.client.has_collection(ix.name(1))
    finally:
        ix.close()
