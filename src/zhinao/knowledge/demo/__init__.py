"""The demo knowledge base: fictional Xinghe Telecom service documents (sample content).

``load_demo(service, principal_or_tenant)`` creates the ``telecom-demo`` collection and
ingests every file under ``corpus/`` in one job; ``eval_qa.jsonl`` holds the evaluation
questions with the source document and a verbatim gold snippet of the answering passage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CORPUS = Path(__file__).parent / "corpus"
EVAL_QA = Path(__file__).parent / "eval_qa.jsonl"
COLLECTION = "telecom-demo"

#: document metadata: tags and effective dates (what library search filters on)
META: dict[str, dict[str, Any]] = {
    "plans_and_tariffs.md": {"tags": ["plans", "tariffs", "sample"], "effective_date": "2026-01-01"},
    "plan_catalog.csv": {"tags": ["plans", "tariffs", "sample"], "effective_date": "2026-01-01"},
    "number_portability.md": {"tags": ["portability", "policy", "sample"], "effective_date": "2025-07-01"},
    "billing_disputes.md": {"tags": ["billing", "policy", "sample"], "effective_date": "2025-09-15"},
    "international_roaming.html": {"tags": ["roaming", "tariffs", "sample"], "effective_date": "2026-03-01"},
    "5g_new_calling.html": {"tags": ["5g", "products", "sample"], "effective_date": "2026-02-01"},
    "broadband_troubleshooting.txt": {"tags": ["broadband", "faults", "sample"], "effective_date": "2025-11-01"},
    "customer_data_privacy_policy.txt": {"tags": ["privacy", "policy", "sample"], "effective_date": "2025-05-20"},
    "enterprise_broadband_sla.md": {"tags": ["enterprise", "broadband", "sample"], "effective_date": "2026-01-15"},
    "customer_service_faq.jsonl": {"tags": ["faq", "sample"], "effective_date": "2026-01-01"},
}


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_file() and p.name in META)


def load_demo(service: Any, principal: Any = None, *, collection: str = COLLECTION, wait: bool = True) -> dict:
    """Create (or refresh) the demo collection; idempotent (unchanged files are skipped).

    ``principal`` may be a Principal-like object or a tenant id (then an admin of it acts).
    """
    from zhinao.knowledge.service import SystemPrincipal

    if principal is None or isinstance(principal, int):
        principal = SystemPrincipal(tenant_id=principal or 1)
    service.ensure_collection(principal, collection,
                              description="星河通信示例知识库 (sample content: fictional telecom service documents)")
    files = [(p.name, p.read_bytes(), META[p.name]) for p in corpus_files()]
    return {"collection": collection, **service.add_documents(principal, collection, files, wait=wait)}
