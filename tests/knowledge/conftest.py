"""Knowledge fixtures: a real KnowledgeService over real SQLite + real Milvus Lite in tmp_path."""

from __future__ import annotations

import pytest
from kbutil import close_service, make_service


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    svc = make_service(tmp_path_factory.mktemp("kb"))
    yield svc
    close_service(svc)
