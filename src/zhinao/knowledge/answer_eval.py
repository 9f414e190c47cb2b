"""Answer evaluation: correctness, faithfulness, refusal of the unanswerable, answer rate, latency.

Retrieval metrics say whether the right passage was found; these say whether the user got
a right, grounded answer or an honest refusal (issue 11), through the same
``KnowledgeService.chat`` a client uses (condensation, retrieval, the answerability check,
generation or quoting, grounding):

* **correctness** (answerable questions): the answer contains the gold fact. Text is
  compared folded (NFKC, lower case, no spaces or punctuation); a gold snippet that holds
  numbers also counts as contained when all its numbers (with units) and most of its
  content words are in the answer (a paraphrase that keeps the facts).
* **answer rate** (answerable) and **refusal rate** (unanswerable): ``found`` true / false.
* **faithfulness** (every answered question): every number, unit and name of the answer
  appears in a passage the answer cites (:func:`zhinao.knowledge.grounding.verify` over
  the cited passages' full text); an answer with no cited passage is unfaithful.
* **citation accuracy** (answerable): a cited passage contains the gold snippet.
* latency p50 / p95 over all questions, and the mean time of each step.

An unanswerable QA line is ``{"question", "lang"?}`` (``answerable: false``); an answerable one
is the retrieval set's ``{"question", "source", "gold"}``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

from zhinao.errors import InvalidRequest
from zhinao.knowledge.answerability import key_terms
from zhinao.knowledge.grounding import cn_digits, facts, fold, numbers_in, supported, verify
from zhinao.runtime.base import GenerationParams


def load_questions(path: str | Path) -> list[dict[str, Any]]:
    """Questions without gold (unanswerable sets): one JSON object with ``question`` per line."""
    rows = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidRequest(f"{path}: cannot read the question file ({e.__class__.__name__}); give a UTF-8 "
                             "JSONL file with one {\"question\": ...} per line") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidRequest(f"{path}: line {n} is not JSON: {e.msg}") from e
        if not isinstance(r, dict) or not str(r.get("question") or "").strip():
            raise InvalidRequest(f"{path}: line {n} needs a 'question'")
        rows.append(r)
    if not rows:
        raise InvalidRequest(f"{path}: no questions")
    return rows


def _squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", cn_digits(fold(text)))


def contains_gold(answer: str, gold: str) -> bool:
    """Whether ``answer`` states the gold fact (see the module docstring)."""
    a, g = _squash(answer), _squash(gold)
    if g and g in a:
        return True
    gold_facts = [f for f in facts(gold) if f.kind == "number"]
    if not gold_facts:
        return False
    ans_text = fold(answer)
    ans_text += "\n" + cn_digits(ans_text)
    nums = numbers_in(ans_text)
    if not all(supported(f, ans_text, nums) for f in gold_facts):
        return False
    words = [w for w in key_terms(gold) if not re.fullmatch(r"[\d.]+", w)]
    return not words or sum(w in ans_text for w in words) / len(words) >= 0.6


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


async def _ask(service: Any, principal: Any, collection: str, q: str, model: str | None,
               max_tokens: int) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    res = await service.chat(principal, collection, [{"role": "user", "content": q}],
                             GenerationParams(temperature=0.0, max_tokens=max_tokens), model=model)
    return res, time.perf_counter() - t0


def _cited_texts(service: Any, principal: Any, collection: str, res: dict[str, Any]) -> list[str]:
    out = []
    for c in res.get("citations") or []:
        if not c.get("cited"):
            continue
        try:
            p = service.passage(principal, collection, c["passage_id"])
            text = p.get("text", "")
        except Exception:
            text = c.get("snippet", "")
        out.append(f"{c.get('title', '')}\n{' '.join(c.get('heading') or [])}\n{text}")
    return out


async def answer_metrics(service: Any, principal: Any, collection: str, answerable: list[dict[str, Any]],
                         unanswerable: list[dict[str, Any]], *, model: str | None = None,
                         max_tokens: int = 160, keep: bool = True) -> dict[str, Any]:
    """Ask every question once (answerable first); the metrics, and each answer when ``keep``."""
    lat: list[float] = []
    steps: dict[str, list[float]] = {}
    rows: list[dict[str, Any]] = []
    correct = answered = refused = faithful = cites_gold = 0
    for kind, qs in (("answerable", answerable), ("unanswerable", unanswerable)):
        for r in qs:
            res, secs = await _ask(service, principal, collection, r["question"], model, max_tokens)
            lat.append(secs)
            for k, v in ((res.get("checks") or {}).get("timings") or {}).items():
                steps.setdefault(k, []).append(v)
            found = bool(res.get("found"))
            row = {"kind": kind, "question": r["question"], "lang": r.get("lang"), "found": found,
                   "answer": res.get("answer", ""), "seconds": round(secs, 2)}
            cited = _cited_texts(service, principal, collection, res) if found else []
            if found:
                g = verify(res.get("answer", ""), cited)
                row["faithful"], row["unsupported"] = g.ok, g.unsupported
                faithful += g.ok
            if kind == "answerable":
                answered += found
                ok = found and contains_gold(res.get("answer", ""), r.get("gold", ""))
                row["correct"], row["gold"] = ok, r.get("gold")
                correct += ok
                row["cites_gold"] = any(r.get("gold", "\0") in t for t in cited)
                cites_gold += row["cites_gold"]
            else:
                refused += not found
            rows.append(row)
    n_a, n_u = len(answerable), len(unanswerable)
    n_found = sum(1 for x in rows if x["found"])
    out: dict[str, Any] = {
        "model": model or "default", "answerable": n_a, "unanswerable": n_u,
        "correctness": round(correct / n_a, 3) if n_a else None,
        "answer_rate": round(answered / n_a, 3) if n_a else None,
        "refusal_rate": round(refused / n_u, 3) if n_u else None,
        "faithfulness": round(faithful / n_found, 3) if n_found else None,
        "citation_accuracy": round(cites_gold / n_a, 3) if n_a else None,
        "p50_s": round(pct(lat, 0.5), 2), "p95_s": round(pct(lat, 0.95), 2),
        "mean_step_s": {k: round(sum(v) / len(v), 3) for k, v in sorted(steps.items())},
    }
    if keep:
        out["rows"] = rows
    return out


def evaluate_answers(service: Any, principal: Any, collection: str, answerable: list[dict[str, Any]],
                     unanswerable: list[dict[str, Any]], *, models: list[str | None] | None = None,
                     max_tokens: int = 160, keep: bool = False) -> dict[str, Any]:
    """:func:`answer_metrics` per model (None: the default model)."""
    out = {}
    for m in models or [None]:
        out[m or "default"] = asyncio.run(answer_metrics(service, principal, collection, answerable, unanswerable,
                                                         model=m, max_tokens=max_tokens, keep=keep))
    return out


def markdown_answers(per_model: dict[str, Any]) -> str:
    lines = ["| model | correct | answered (answerable) | refused (unanswerable) | faithful | p50 s | p95 s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]

    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.0%}"

    for name, m in per_model.items():
        lines.append(f"| {name} | {f(m['correctness'])} of {m['answerable']} | {f(m['answer_rate'])} | "
                     f"{f(m['refusal_rate'])} of {m['unanswerable']} | {f(m['faithfulness'])} | "
                     f"{m['p50_s']:.1f} | {m['p95_s']:.1f} |")
    return "\n".join(lines)
