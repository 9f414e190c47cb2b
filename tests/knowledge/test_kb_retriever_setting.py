"""ZHINAO_KB_RETRIEVER picks the retriever backend the knowledge service searches with."""

from __future__ import annotations

import pytest
from kbutil import ADMIN, close_service, make_service

from zhinao.errors import InvalidRequest
from zhinao.knowledge.retrieve import MilvusRetriever, _extra, register_retriever
from zhinao.settings import Settings


class ReversedRetriever(MilvusRetriever):
    """A real plug-in: Milvus search, worst of the pool first, and one mode only."""

    name = "test-reversed"
    modes = ("dense",)

    def retrieve(self, query, *, scope, k, mode=None):
        self.check_mode(mode)
        return list(reversed(super().retrieve(query, scope=scope, k=k, mode="dense")))


@pytest.fixture()
def files():
    return [(f"doc{i}.md", f"# 文档 {i}\n\n第 {i} 号资费说明：漫游资费与宽带资费的条款 {i}。".encode()) for i in range(6)]


def test_the_setting_exists_with_milvus_as_default():
    assert Settings.model_fields["kb_retriever"].default == "milvus"


def test_a_registered_retriever_named_by_the_setting_is_used(tmp_path, files):
    register_retriever(ReversedRetriever)
    plain = make_service(tmp_path / "a")
    plug = make_service(tmp_path / "b", retriever="test-reversed")
    try:
        for svc in (plain, plug):
            svc.create_collection(ADMIN, "lib")
            svc.add_documents(ADMIN, "lib", files, wait=True)
        want = [h.pk for h in plain.retrieve(ADMIN, "lib", "漫游资费", k=4, mode="dense")]
        got = [h.pk for h in plug.retrieve(ADMIN, "lib", "漫游资费", k=4)]  # no mode: the plug-in's default
        assert got == list(reversed(want)) and len(got) == 4
        with pytest.raises(InvalidRequest, match="mode 'hybrid'.*dense"):  # its modes, not milvus's
            plug.retrieve(ADMIN, "lib", "漫游资费", k=4, mode="hybrid")
    finally:
        _extra.pop("test-reversed", None)
        close_service(plain)
        close_service(plug)


def test_an_unknown_retriever_setting_is_a_clear_400(tmp_path, files):
    svc = make_service(tmp_path, retriever="elastic")
    try:
        svc.create_collection(ADMIN, "lib")
        with pytest.raises(InvalidRequest, match="unknown retriever 'elastic'.*kb_retriever.*milvus"):
            svc.retrieve(ADMIN, "lib", "漫游资费")
    finally:
        close_service(svc)
