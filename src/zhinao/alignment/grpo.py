"""GRPO with an execution reward: the SQL skill trained on a workspace's accepted examples (issue 13, item 10).

Why no reward model: an accepted question -> SQL pair is *verifiable*. A sampled query that
runs in the workspace's sandbox and returns the accepted query's result is right, whatever
its text (Arctic-Text2SQL-R1 trains on exactly this signal). So the reward is computed, not
learned, and cannot be gamed the way a 135M reward model can:

* **1.0** the query runs and its rows equal the accepted query's rows (compared as
  :func:`zhinao.agent.evaluate.same_result` does: values normalised, rows a multiset);
* ``wrong_reward`` (**0.1** by default, Arctic-Text2SQL-R1's choice) it runs but returns
  something else — a valid query is a step closer than an error, and GRPO only needs the
  ordering within a group;
* **0.0** no SQL in the reply, anything but one read-only SELECT over the workspace's tables
  (refused by :func:`zhinao.analytics.sandbox.check_sql` *before* anything executes), or an
  engine error, timeout or row cap.

Every scored query goes through ``Workspace.run_sql`` — the sandbox (read-only connection,
timeout, memory and row caps, a worker process) — never a plain DuckDB connection.

Prompts are the agent's *plain* baseline prompt (:data:`zhinao.agent.sqlgen.PLAIN_SYSTEM`:
the workspace's CREATE TABLE statements, then the question), so :func:`evaluate_sql_skill`
before and after training measures the model on the prompt it was trained on, comparable
with ``bench/agent.py``'s plain figures. The training data is the agent store's examples of
the workspace with SQL; any whose question or SQL is also in the shipped evaluation set
(``agent/demo/eval_questions.jsonl``) is dropped and counted — the set measures, it never trains.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from zhinao.alignment import base_models
from zhinao.alignment.config import GrpoStage
from zhinao.errors import InvalidRequest, RateLimited

#: reward classes, in the order reports show them
CLASSES = ("right", "wrong", "error", "refused", "no_sql")


@dataclass(frozen=True)
class SqlTask:
    """One training prompt: a question, its accepted SQL and that SQL's result in the sandbox."""

    question: str
    sql: str
    gold: list[list[Any]]
    ordered: bool = False


_SQLISH = re.compile(r"\b(select|with|from|insert|update|delete|drop|create|alter|copy|attach|pragma|set|call|"
                     r"install|load|export|import)\b", re.IGNORECASE)


_FENCED = re.compile(r"```(?:sql|duckdb)?\s*\n?(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)
_WRITE_AFTER = re.compile(r";\s*(insert|update|delete|drop|create|alter|copy|attach|detach|pragma|set|install|load|"
                          r"merge|truncate|export|import|call|vacuum|checkpoint|use|begin|commit)\b", re.IGNORECASE)


def _sql_in(reply: str) -> str:
    """The reply's SQL (:func:`zhinao.agent.sqlgen.extract_sql`), or "" for a reply with no statement in it."""
    from zhinao.agent.sqlgen import extract_sql

    sql = extract_sql(reply)
    return sql if sql and _SQLISH.search(sql) else ""


def _smuggles_a_write(reply: str) -> bool:
    """A write statement after the query (``SELECT 1; DROP TABLE t``): the agent's extraction would keep
    only the SELECT, but a reward must not pay for a reply that asks for a write at all."""
    m = _FENCED.search(reply or "")
    return bool(_WRITE_AFTER.search(m.group(1) if m else (reply or "")))


def _norm_text(s: str) -> str:
    return re.sub(r"\s+", " ", (s or "").strip().lower()).rstrip("?？。. ")


def _norm_sql(s: str) -> str:
    return re.sub(r"\s+", " ", (s or "").strip().rstrip(";").lower())


# -- the workspace and its prompt ---------------------------------------------------------------
def workspace_for(service: Any, tenant_id: int, name: str) -> Any:
    """The tenant's analytics workspace ``name`` (404 for another tenant's or a missing one).

    Through the platform's analytics service where the alignment service was built by the
    platform (its SQL limits come from settings), else an :class:`AnalyticsService` on the
    same store and home (tests, scripts)."""
    services = getattr(service, "services", None)
    analytics = None
    if callable(services):
        try:
            analytics = services("analytics")
        except Exception:  # noqa: BLE001 - no analytics capability installed: build one below
            analytics = None
    if analytics is None:
        from zhinao.analytics.service import AnalyticsService

        analytics = AnalyticsService(settings=service.settings, db=service.db)
    return analytics.workspaces.workspace(tenant_id, name)


def plain_ddl(ws: Any) -> str:
    """The workspace's CREATE TABLE statements, exactly as the agent's plain baseline builds them."""
    from zhinao.agent.linking import SchemaIndex

    return SchemaIndex.from_workspace(ws).ddl()


def plain_messages(ddl: str, question: str) -> list[dict[str, str]]:
    """The plain baseline's two messages (:func:`zhinao.agent.sqlgen.plain_sql`)."""
    from zhinao.agent.sqlgen import PLAIN_SYSTEM

    return [{"role": "system", "content": PLAIN_SYSTEM.format(ddl=ddl)}, {"role": "user", "content": question}]


# -- scoring ------------------------------------------------------------------------------------
class ExecutionReward:
    """TRL reward function: each completion's SQL executed in the sandbox and compared to its task's gold.

    TRL calls it with the batch's prompts and completions and every other dataset column as a
    keyword (here ``task``: the index into ``tasks``). ``counts`` keeps the classes seen, for
    the run's metrics; ``__name__`` is what TRL logs the reward under (``rewards/execution``).
    """

    __name__ = "execution"

    def __init__(self, ws: Any, tables: Sequence[str], tasks: Sequence[SqlTask], *, wrong_reward: float = 0.1,
                 timeout_s: float = 5.0, max_rows: int = 1000):
        self.ws, self.tables, self.tasks = ws, list(tables), list(tasks)
        self.wrong_reward, self.timeout_s, self.max_rows = wrong_reward, timeout_s, max_rows
        self.counts: Counter[str] = Counter()

    def score(self, reply: str, task: SqlTask) -> tuple[float, str]:
        """(reward, class) of one reply; a refused statement never reaches the engine."""
        from zhinao.agent.evaluate import same_result
        from zhinao.analytics.sandbox import SqlRejected, check_sql

        sql = _sql_in(reply)
        if not sql:
            return 0.0, "no_sql"
        if _smuggles_a_write(reply):
            return 0.0, "refused"
        try:
            check_sql(sql, self.tables)
        except SqlRejected:  # a write, several statements, a file function, another table
            return 0.0, "refused"
        except InvalidRequest:  # does not parse
            return 0.0, "error"
        try:
            res = self.ws.run_sql(sql, max_rows=self.max_rows, timeout_s=self.timeout_s)
        except RateLimited:
            raise
        except InvalidRequest:  # engine error, timeout, memory or byte cap
            return 0.0, "error"
        if res.truncated:  # more rows than any accepted answer has (those are left out): wrong
            return self.wrong_reward, "wrong"
        if same_result(task.gold, res.json_rows(), task.ordered):
            return 1.0, "right"
        return self.wrong_reward, "wrong"

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], task: Sequence[int] | None = None,
                 **kw: Any) -> list[float]:
        if task is None:
            raise InvalidRequest("the GRPO dataset has no 'task' column: the reward cannot find the gold result")
        out, here = [], Counter()
        for c, i in zip(completions, task):
            text = c[-1]["content"] if isinstance(c, list) and c else str(c)
            r, kind = self.score(text, self.tasks[int(i)])
            here[kind] += 1
            out.append(r)
        self.counts.update(here)
        log_metric = kw.get("log_metric")
        if callable(log_metric) and out:  # TRL averages these per logging step: sql/right, sql/error, ...
            for k in CLASSES:
                log_metric(f"sql/{k}", here[k] / len(out))
        return out


def load_tasks(ws: Any, examples: Sequence[dict[str, Any]], *, max_rows: int = 1000, timeout_s: float = 10.0,
               exclude: Sequence[dict[str, Any]] = ()) -> tuple[list[SqlTask], dict[str, int]]:
    """The examples with SQL whose accepted query runs in the sandbox now, with its result.

    Args:
        examples: agent-store examples (``question``, ``sql``; tool-call examples are skipped).
        exclude: questions never to train on (the shipped evaluation set): an example with the
            same question text or the same SQL is dropped.

    Returns:
        The tasks and what was left out: ``no_sql`` (tool-call examples), ``eval_overlap``,
        ``gold_fails`` (the accepted SQL errors today: the schema changed), ``gold_too_big``.
    """
    from zhinao.analytics.sandbox import check_sql

    banned_q = {_norm_text(q.get("q", "")) for q in exclude}
    banned_sql = {_norm_sql(q["sql"]) for q in exclude if q.get("sql")}
    tables = ws.tables()
    report = Counter()
    tasks: list[SqlTask] = []
    seen: set[str] = set()
    for ex in examples:
        q, sql = (ex.get("question") or "").strip(), (ex.get("sql") or "").strip()
        if not q or not sql:
            report["no_sql"] += 1
            continue
        if _norm_text(q) in banned_q or _norm_sql(sql) in banned_sql:
            report["eval_overlap"] += 1
            continue
        if _norm_text(q) in seen:
            report["duplicate"] += 1
            continue
        try:
            check_sql(sql, tables)
            res = ws.run_sql(sql, max_rows=max_rows, timeout_s=timeout_s)
        except RateLimited:
            raise
        except InvalidRequest:
            report["gold_fails"] += 1
            continue
        if res.truncated:
            report["gold_too_big"] += 1
            continue
        seen.add(_norm_text(q))
        tasks.append(SqlTask(q, sql, res.json_rows()))
    return tasks, dict(report)


# -- training -------------------------------------------------------------------------------------
def train_grpo(cfg: GrpoStage, base: Path, tasks: Sequence[SqlTask], ddl: str, reward: ExecutionReward, out: Path,
               callbacks: list[Any]) -> tuple[Any, Any, dict[str, Any]]:
    """GRPO on ``tasks`` (TRL ``GRPOTrainer``): sample groups, score them by execution, update.

    Returns the trained model (LoRA merged), its tokenizer and extras for the metrics."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from zhinao.alignment.trainers import _common_args, _last_checkpoint, _lora, _merged, _quiet

    tok = base_models.load_tokenizer(base)
    tok.padding_side = "left"  # generation pads on the left
    rows = [{"prompt": plain_messages(ddl, t.question), "task": i} for i, t in enumerate(tasks)]
    args = GRPOConfig(**_common_args(cfg, out), num_generations=cfg.num_generations,
                      max_completion_length=cfg.max_completion_length, temperature=cfg.temperature, top_p=cfg.top_p,
                      beta=cfg.beta, epsilon=cfg.epsilon, log_completions=False)
    trainer = GRPOTrainer(model=base_models.load_causal_lm(base), reward_funcs=[reward], args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tok,
                          peft_config=_lora(cfg, "CAUSAL_LM"), callbacks=callbacks)
    _quiet(trainer)
    trainer.train(resume_from_checkpoint=_last_checkpoint(out))
    return _merged(trainer.model), tok, {"reward_classes": {k: reward.counts.get(k, 0) for k in CLASSES}}


def _series(history: list[dict[str, Any]], key: str) -> list[float]:
    return [round(h[key], 4) for h in history if key in h]


def _halves(xs: list[float]) -> dict[str, float]:
    """Mean reward of the first and the second half of the steps: one step's mean over a few
    completions is noisy, halves show a trend (or none) honestly."""
    if len(xs) < 2:
        return {}
    h = len(xs) // 2
    return {"reward_first_half": round(sum(xs[:h]) / h, 4), "reward_second_half": round(sum(xs[h:]) / (len(xs) - h), 4)}


def run_grpo(service: Any, tenant_id: int, cfg: GrpoStage, *, job_id: int | None = None,
             progress: Callable | None = None, check: Callable | None = None) -> dict[str, Any]:
    """Train ``cfg`` on the workspace's accepted examples and register the result (stage ``grpo``).

    Raises:
        NotFound: no such workspace or base model.
        InvalidRequest: no usable accepted example (none stored, none with SQL, none that runs),
            fewer distinct prompts than one step needs, a prompt over ``max_length``.
    """
    import torch

    from zhinao.agent.evaluate import DEMO_QUESTIONS, load_questions
    from zhinao.agent.store import AgentStore
    from zhinao.alignment.trainers import _callback_class, _save, peak_rss_mb

    torch.set_num_threads(cfg.threads)
    ws = workspace_for(service, tenant_id, cfg.workspace)
    examples = AgentStore(service.db).examples(tenant_id, cfg.workspace)
    if not examples:
        raise InvalidRequest(f"workspace {cfg.workspace!r} has no accepted examples to train on: accept some agent "
                             "answers (or add examples) first", param="workspace")
    exclude = load_questions(DEMO_QUESTIONS) if DEMO_QUESTIONS.is_file() else []
    tasks, left_out = load_tasks(ws, examples, max_rows=cfg.max_rows, exclude=exclude)
    if not tasks:
        raise InvalidRequest(f"none of workspace {cfg.workspace!r}'s {len(examples)} examples is usable for GRPO "
                             f"(left out: {left_out}); it needs accepted SQL that runs", param="workspace")
    per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps // cfg.num_generations
    if len(tasks) < per_step:
        raise InvalidRequest(f"grpo needs at least {per_step} usable examples per step (batch / num_generations); "
                             f"workspace {cfg.workspace!r} has {len(tasks)}", param="per_device_train_batch_size")
    base = _base(service, tenant_id, cfg.base_model)
    ddl = plain_ddl(ws)
    tok = base_models.load_tokenizer(base)
    longest = max(len(tok.apply_chat_template(plain_messages(ddl, t.question), add_generation_prompt=True,
                                              tokenize=True, return_dict=True)["input_ids"]) for t in tasks)
    if longest > cfg.max_length:
        raise InvalidRequest(f"a GRPO prompt (schema + question) is {longest} tokens, over max_length "
                             f"{cfg.max_length}: raise max_length or train on a smaller workspace", param="max_length")

    name = cfg.output_name or f"{cfg.workspace}-grpo".lower()
    key = f"job{job_id}" if job_id is not None else f"{name}-" + hashlib.sha256(
        json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    run = service.run_dir(tenant_id, key)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({"stage": cfg.stage, **cfg.to_dict()}, indent=1), encoding="utf-8")
    cb = _callback_class()(run / "progress.jsonl", cfg.max_steps if cfg.max_steps > 0 else 0, progress, check)
    reward = ExecutionReward(ws, ws.tables(), tasks, wrong_reward=cfg.wrong_reward, timeout_s=cfg.sql_timeout_s,
                             max_rows=cfg.max_rows)
    t0 = time.monotonic()
    ckpt = run / "checkpoints"
    model, tok, extra = train_grpo(cfg, base, tasks, ddl, reward, ckpt, [cb])
    wall = time.monotonic() - t0
    if check is not None:
        check()  # cancelled during the last step: register nothing
    dest = _save(model, tok, run / "model")
    rewards = _series(cb.history, "reward")
    metrics = {"stage": "grpo", "steps": max([h["step"] for h in cb.history] or [0]), "wall_s": round(wall, 1),
               "s_per_step": cb.seconds_per_step(), "peak_rss_mb": peak_rss_mb(), "n_train": len(tasks),
               "n_examples": len(examples), "left_out": left_out, "lora": cfg.lora, "workspace": cfg.workspace,
               "reward_curve": rewards, "first_reward": rewards[0] if rewards else None,
               "last_reward": rewards[-1] if rewards else None, **_halves(rewards), **extra}
    (run / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    row = service.register_model(tenant_id, name, stage="grpo", base=cfg.base_model, path=str(dest), dataset_id=None,
                                 job_id=job_id, config=cfg.to_dict(), metrics=metrics)
    shutil.rmtree(ckpt, ignore_errors=True)
    return {"model": row["name"], "path": str(dest), "metrics": metrics, "history": cb.history[-50:]}


def _base(service: Any, tenant_id: int, name: str) -> Path:
    from zhinao.alignment.trainers import _base_folder

    return _base_folder(service, tenant_id, name)


# -- execution accuracy -------------------------------------------------------------------------
def shipped_sql_questions(limit: int = 0, seed: int = 0, path: Path | str | None = None) -> list[dict[str, Any]]:
    """The shipped set's SQL questions, or the seeded sample ``bench/agent.py --set shipped --limit N
    --seed S`` scores (``random.Random(seed).sample``), so figures line up."""
    from zhinao.agent.evaluate import DEMO_QUESTIONS, load_questions

    qs = [q for q in load_questions(path or DEMO_QUESTIONS) if q.get("sql")]
    if limit and limit < len(qs):
        qs = random.Random(seed).sample(qs, limit)
    return qs


def _fence_closed(tok: Any, start: int) -> Any:
    """Stop a greedy answer once its ```sql block is closed: the SQL scored is the first fenced
    block (:func:`~zhinao.agent.sqlgen.extract_sql`), so the prose a coder model adds after it
    changes nothing but costs most of the tokens on CPU."""
    import torch
    from transformers import StoppingCriteria

    class FenceClosed(StoppingCriteria):
        def __call__(self, input_ids, scores, **kw):  # noqa: ANN001
            texts = tok.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            return torch.tensor([t.count("```") >= 2 for t in texts], dtype=torch.bool, device=input_ids.device)

    return FenceClosed()


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    n = min(len(x) for x in seqs)
    first = seqs[0]
    for i in range(n):
        if any(x[i] != first[i] for x in seqs):
            return i
    return n


def evaluate_sql_skill(model_path: Path | str, ws: Any, questions: Sequence[dict[str, Any]], *,
                       ddl: str | None = None, max_new_tokens: int = 256, threads: int = 1,
                       max_rows: int = 1000, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Execution accuracy of a transformers model on ``questions`` with the plain prompt, greedy.

    Each question's gold SQL runs in the sandbox; the model's reply is scored like the reward
    (right only when its rows equal the gold's, ``ordered`` as the question says).

    Why one question at a time over a cached prefix: every prompt starts with the same schema
    (~300 tokens, the question ~20), so its KV cache is computed once and copied per question —
    on a shared 2-core CPU the prefill was most of the cost of a batched run. Greedy decoding
    stops when the ```sql block closes (:func:`_fence_closed`).

    Raises:
        InvalidRequest: no questions, or a question without gold SQL.
    """
    import copy

    import torch
    from transformers import DynamicCache

    from zhinao.agent.evaluate import same_result
    from zhinao.analytics.sandbox import SqlRejected, check_sql

    if not questions:
        raise InvalidRequest("no questions to evaluate", param="questions")
    for q in questions:
        if not q.get("sql"):
            raise InvalidRequest(f"question {q.get('id')!r} has no gold SQL", param="questions")
    torch.set_num_threads(threads)
    ddl = ddl if ddl is not None else plain_ddl(ws)
    tables = ws.tables()
    tok = base_models.load_tokenizer(model_path)
    model = base_models.load_causal_lm(model_path)
    model.eval()
    t0 = time.monotonic()
    ids = [tok.apply_chat_template(plain_messages(ddl, q["q"]), add_generation_prompt=True, tokenize=True,
                                   return_dict=True)["input_ids"] for q in questions]
    keep = max(0, min(_common_prefix(ids), min(len(x) for x in ids) - 1))  # >= 1 new token per question
    prefix = None
    if keep:
        with torch.no_grad():
            prefix = model(torch.tensor([ids[0][:keep]]), past_key_values=DynamicCache(config=model.config),
                           use_cache=True).past_key_values
    rows: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    for q, x in zip(questions, ids):
        inp = torch.tensor([x])
        with torch.no_grad():
            out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tok.pad_token_id or tok.eos_token_id,
                                 past_key_values=copy.deepcopy(prefix) if prefix is not None else None,
                                 stopping_criteria=[_fence_closed(tok, len(x))])
        reply = tok.decode(out[0, len(x):], skip_special_tokens=True)
        gold = ws.run_sql(q["sql"], max_rows=max_rows).json_rows()
        sql = _sql_in(reply)
        kind, err = "no_sql", None
        if sql:
            try:
                check_sql(sql, tables)
                res = ws.run_sql(sql, max_rows=max_rows)
                kind = "right" if same_result(gold, res.json_rows(), q.get("ordered", False)) else "wrong"
            except SqlRejected as e:
                kind, err = "refused", e.message
            except InvalidRequest as e:
                kind, err = "error", e.message
        counts[kind] += 1
        rows.append({"id": q["id"], "ok": kind == "right", "class": kind, "sql": sql or None, "error": err})
        if progress is not None:
            progress(f"{len(rows)}/{len(questions)} questions, {counts['right']} right")
    n, right = len(rows), counts["right"]
    wall = time.monotonic() - t0
    return {"model": str(model_path), "n": n, "correct": right, "execution_accuracy": round(right / n, 4),
            "classes": {k: counts.get(k, 0) for k in CLASSES}, "wall_s": round(wall, 1),
            "s_per_question": round(wall / n, 2), "max_new_tokens": max_new_tokens, "prefix_tokens": keep,
            "questions": rows}
