"""The demo workspace's seeded example library: worked question → SQL pairs shipped as sample data.

The issue's "retrieved worked examples from a per-workspace library that grows when users accept
or correct" only helps once the library holds something; a fresh demo workspace holds nothing, so
the first questions a visitor asks meet a small model with no examples at all (Vanna reports
~3% → ~80% from the right context). ``demo/accepted_examples.jsonl`` is that starting library for
the ``demo`` workspace (telco, milan_total, groceries, thucnews): written for this project, in
Chinese and English, over the same *kinds* of question the evaluation set has (aggregation,
filter, group by, time window, top-k, ratio, join) but never the same question or SQL — a test
(``tests/agent/test_demo_examples.py``) keeps it so, and checks every statement runs.

The same file is the alignment loop's sample training data (question → accepted SQL), which is why
it keeps the ``{"id", "lang", "q", "sql", "category", "sample"}`` shape of the evaluation set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zhinao.errors import InvalidRequest

EXAMPLES = Path(__file__).parent / "demo" / "accepted_examples.jsonl"
#: the fields every line has
FIELDS = ("id", "lang", "q", "sql", "category", "sample")
CATEGORIES = ("aggregation", "filter", "group_by", "time_window", "topk", "ratio", "join")


def load_examples(path: str | Path = EXAMPLES) -> list[dict[str, Any]]:
    """The examples of a JSONL file, checked: every field present, a known category, unique ids.

    Raises:
        InvalidRequest: a line that is not a JSON object with those fields (says which line).
    """
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            ex = json.loads(line)
        except ValueError as e:
            raise InvalidRequest(f"{Path(path).name} line {n}: not JSON ({e})") from None
        missing = [f for f in FIELDS if not isinstance(ex, dict) or f not in ex]
        if missing:
            raise InvalidRequest(f"{Path(path).name} line {n}: missing {', '.join(missing)}")
        if ex["category"] not in CATEGORIES:
            raise InvalidRequest(f"{Path(path).name} line {n}: unknown category {ex['category']!r}")
        if ex["id"] in seen:
            raise InvalidRequest(f"{Path(path).name} line {n}: duplicate id {ex['id']!r}")
        if not str(ex["q"]).strip() or not str(ex["sql"]).strip():
            raise InvalidRequest(f"{Path(path).name} line {n}: empty question or SQL")
        seen.add(ex["id"])
        out.append(ex)
    return out


def _key(question: str) -> str:
    # the store's own notion of "the same question" (case, spacing, final punctuation aside)
    return " ".join(str(question).lower().split()).rstrip("?？。.!！ ")


def seed_demo_examples(store: Any, tenant_id: int, workspace: str = "demo", path: str | Path = EXAMPLES) -> int:
    """Add the shipped sample examples to ``workspace``'s library; returns how many were added.

    Idempotent, and it never overrides a user: a question already in the library (seeded earlier,
    or accepted / corrected by a user since) is left as it is. The examples go in with source
    ``manual`` (written by people, not accepted from an answer).

    Args:
        store: an :class:`~zhinao.agent.store.AgentStore`.
        tenant_id: the tenant whose workspace it is.
        workspace: the demo workspace's name.
        path: the JSONL file (default: the shipped ``demo/accepted_examples.jsonl``).
    """
    have = {_key(e["question"]) for e in store.examples(tenant_id, workspace)}
    added = 0
    for ex in load_examples(path):
        if _key(ex["q"]) in have:
            continue
        store.add_example(tenant_id, workspace, ex["q"], sql=ex["sql"], source="manual")
        have.add(_key(ex["q"]))
        added += 1
    return added
