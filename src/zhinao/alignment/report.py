"""One evaluation report per trained model: did alignment make it better, by how much, and how sure are we.

Why these numbers (issue 13 item 7): a reward model's loss says little; what a reviewer needs is

- **reward-model pair accuracy** on held-out pairs (chosen scored above rejected), with a 95% Wilson interval;
- **win rate judged by the reward model**: greedy answers of the aligned model and of a comparator
  (the SFT model, the base model) to held-out prompts, both scored by the RM; a win is a higher
  reward, a tie counts half (so a model against itself reads exactly 50%);
- **win rate judged by the held-out preference split**: for every held-out pair the log-prob margin
  ``log p(chosen) - log p(rejected)`` under each policy; the aligned model wins a pair when its margin
  is larger than the comparator's — DPO's implicit reward ``(log π/ref)(chosen) - (log π/ref)(rejected)``
  is exactly that difference, so this needs no reward model at all;
- **KL from the reference** (the SFT model, which DPO and PPO regularise towards) on the aligned model's
  own greedy answers to held-out prompts: the exact per-token KL over the vocabulary, summed per answer;
- **behaviour rates** on the false-premise and refusal sets (the demo's keyword checks) for base, SFT
  and the aligned model — before and after.

Everything is greedy and one torch thread, with a ``limit`` on prompts and short answers, so a report on
the 135M model costs a minute or two. Generations and margins are cached per model folder inside one
:class:`Evaluator`, so the DPO and PPO reports share the base and SFT answers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zhinao.alignment import datasets as ds
from zhinao.alignment.evaluate import load_reward_model, pair_accuracy, score, wilson
from zhinao.errors import InvalidRequest

Messages = list[dict[str, str]]


def _key(msgs: Messages) -> str:
    return json.dumps(msgs, ensure_ascii=False, sort_keys=True)


def win_rate(a: list[float], b: list[float]) -> dict[str, Any]:
    """Share of items where ``a`` beats ``b`` (ties count half), with a 95% Wilson interval."""
    if len(a) != len(b):
        raise InvalidRequest("win rate needs paired scores of equal length")
    n = len(a)
    wins = sum(1 for x, y in zip(a, b) if x > y)
    ties = sum(1 for x, y in zip(a, b) if x == y)
    k = wins + 0.5 * ties
    lo, hi = wilson(k, n)
    return {"win_rate": round(k / n, 4) if n else 0.0, "n": n, "wins": wins, "ties": ties,
            "losses": n - wins - ties, "ci95": [round(lo, 4), round(hi, 4)]}


@dataclass
class Policy:
    """A causal LM loaded once, with its tokenizer, and the caches of what was computed with it."""

    name: str
    folder: Path
    model: Any
    tok: Any
    answers: dict[str, str] = field(default_factory=dict)
    logps: dict[tuple[str, str], float] = field(default_factory=dict)


class Evaluator:
    """Loads policies and the reward model once; generates and scores with caches.

    Args:
        max_new_tokens: length of each greedy answer (short keeps the report cheap).
        max_length: tokens scored per prompt + answer.
    """

    def __init__(self, *, max_new_tokens: int = 64, max_length: int = 512, threads: int = 1):
        import torch

        torch.set_num_threads(threads)
        self.max_new_tokens, self.max_length = max_new_tokens, max_length
        self._policies: dict[str, Policy] = {}
        self._rms: dict[str, tuple[Any, Any]] = {}
        self._rewards: dict[tuple[str, str, str], float] = {}

    def policy(self, name: str, folder: Path | str) -> Policy:
        from zhinao.alignment.base_models import check_causal_lm, load_causal_lm, load_tokenizer

        folder = Path(folder)
        k = str(folder.resolve())
        if k not in self._policies:
            check_causal_lm(folder)
            model = load_causal_lm(folder)
            model.eval()
            self._policies[k] = Policy(name, folder, model, load_tokenizer(folder))
        return self._policies[k]

    def reward_model(self, folder: Path | str) -> tuple[Any, Any]:
        k = str(Path(folder).resolve())
        if k not in self._rms:
            self._rms[k] = load_reward_model(folder)
        return self._rms[k]

    # -- generation and scoring ----------------------------------------------------------------
    def answer(self, pol: Policy, msgs: Messages) -> str:
        """The greedy answer of ``pol`` to ``msgs`` (cached)."""
        import torch

        k = _key(msgs)
        if k not in pol.answers:
            enc = pol.tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            with torch.no_grad():
                out = pol.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                         pad_token_id=pol.tok.pad_token_id or pol.tok.eos_token_id)
            pol.answers[k] = pol.tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        return pol.answers[k]

    def reward(self, rm_folder: Path | str, msgs: Messages, answer: str) -> float:
        k = (str(rm_folder), _key(msgs), answer)
        if k not in self._rewards:
            model, tok = self.reward_model(rm_folder)
            self._rewards[k] = score(model, tok, msgs, answer, self.max_length)
        return self._rewards[k]

    def _ids(self, pol: Policy, msgs: Messages, answer: str) -> tuple[Any, int]:
        """Token ids of prompt + answer (chat template) and where the answer starts."""
        prompt_ids = pol.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"]
        full_ids = pol.tok.apply_chat_template([*msgs, {"role": "assistant", "content": answer}], tokenize=True,
                                               return_dict=True)["input_ids"]
        import torch

        return torch.tensor([full_ids[: self.max_length]]), min(len(prompt_ids), self.max_length - 1)

    def logp(self, pol: Policy, msgs: Messages, answer: str) -> float:
        """Sum of log-probabilities of ``answer``'s tokens after ``msgs`` under ``pol`` (cached)."""
        import torch

        k = (_key(msgs), answer)
        if k not in pol.logps:
            ids, start = self._ids(pol, msgs, answer)
            with torch.no_grad():
                lp = torch.log_softmax(pol.model(input_ids=ids).logits[0, :-1].float(), -1)
            tgt = ids[0, 1:]
            pol.logps[k] = float(lp[start - 1:].gather(-1, tgt[start - 1:, None]).sum())
        return pol.logps[k]

    def kl(self, pol: Policy, ref: Policy, msgs: Messages) -> tuple[float, int]:
        """KL(pol || ref) summed over the tokens of ``pol``'s greedy answer, and the number of tokens.

        Exact over the vocabulary at each answer position (not a sampled estimate), so it is 0
        for identical models and never negative.
        """
        import torch

        ids, start = self._ids(pol, msgs, self.answer(pol, msgs))
        n = ids.shape[1] - start
        if n <= 0:
            return 0.0, 0
        with torch.no_grad():
            lp = torch.log_softmax(pol.model(input_ids=ids).logits[0, start - 1:-1].float(), -1)
            lq = torch.log_softmax(ref.model(input_ids=ids).logits[0, start - 1:-1].float(), -1)
        return float((lp.exp() * (lp - lq)).sum()), n


# -- the report ----------------------------------------------------------------------------------
def held_out_pairs(pairs: Path | str | None = None, limit: int | None = None) -> list[ds.Comparison]:
    """Held-out comparisons: a preference JSONL file, or the demo's ``eval`` split."""
    if pairs is not None:
        recs = [r for r in ds.read_jsonl(pairs, "preference") if isinstance(r, ds.Comparison)]
    else:
        from zhinao.alignment import demo

        recs = [ds.parse_record(r, f"demo comparisons {r['id']}") for r in demo.comparisons(split="eval")]
    return recs[:limit] if limit else recs


def _spread(items: list[Any], limit: int | None) -> list[Any]:
    """``limit`` items spread over the list (both languages and every topic, not the first block)."""
    if not limit or limit >= len(items):
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def behaviour_sets(limit: int | None = None) -> dict[str, list[dict[str, Any]]]:
    from zhinao.alignment import demo

    return {"false_premise": _spread(demo.false_premise(), limit), "refusal": _spread(demo.refusal(), limit)}


def _behaviour(ev: Evaluator, pol: Policy, sets: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    from zhinao.alignment import demo

    out: dict[str, Any] = {}
    for name, recs in sets.items():
        check = demo.corrects_premise if name == "false_premise" else demo.refuses
        k = sum(1 for r in recs if check(ev.answer(pol, r["prompt"]), r))
        lo, hi = wilson(k, len(recs))
        out[name] = {"rate": round(k / len(recs), 4) if recs else 0.0, "k": k, "n": len(recs),
                     "ci95": [round(lo, 4), round(hi, 4)]}
    return out


def evaluate(ev: Evaluator, aligned: Policy, comparators: dict[str, Policy], reference: Policy,
             rm_folder: Path | str | None, pairs: list[ds.Comparison], prompts: list[Messages],
             sets: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The report's figures for ``aligned`` against each comparator (the core, on loaded policies)."""
    t0 = time.monotonic()
    rep: dict[str, Any] = {"n_pairs": len(pairs), "n_prompts": len(prompts), "max_new_tokens": ev.max_new_tokens}
    if rm_folder is not None:
        model, tok = ev.reward_model(rm_folder)
        rep["reward_model"] = {"folder": str(rm_folder), **pair_accuracy(model, tok, pairs, ev.max_length)}
    pair_msgs = [(ds._msgs(p.prompt), p.chosen, p.rejected) for p in pairs]
    margins = {}
    for pol in (aligned, *comparators.values()):
        margins[pol.name] = [ev.logp(pol, m, c) - ev.logp(pol, m, r) for m, c, r in pair_msgs]
    rep["preference_margin"] = {
        name: {"mean": round(sum(v) / len(v), 4) if v else 0.0,
               "prefers_chosen": win_rate(v, [0.0] * len(v))["win_rate"]} for name, v in margins.items()}
    rep["win_rate"] = {}
    for label, comp in comparators.items():
        w: dict[str, Any] = {"preference_split": win_rate(margins[aligned.name], margins[comp.name])}
        if rm_folder is not None:
            ra = [ev.reward(rm_folder, m, ev.answer(aligned, m)) for m in prompts]
            rb = [ev.reward(rm_folder, m, ev.answer(comp, m)) for m in prompts]
            w["reward_model"] = {**win_rate(ra, rb), "mean_reward": round(sum(ra) / len(ra), 4) if ra else 0.0,
                                 "mean_reward_other": round(sum(rb) / len(rb), 4) if rb else 0.0}
        rep["win_rate"][f"over_{label}"] = w
    kls = [ev.kl(aligned, reference, m) for m in prompts]
    tokens = sum(n for _, n in kls)
    rep["kl"] = {"reference": reference.name, "per_answer": round(sum(k for k, _ in kls) / len(kls), 4) if kls else 0.0,
                 "per_token": round(sum(k for k, _ in kls) / tokens, 5) if tokens else 0.0, "tokens": tokens}
    rep["behaviour"] = {pol.name: _behaviour(ev, pol, sets) for pol in (*comparators.values(), aligned)}
    rep["examples"] = [{"prompt": m[-1]["content"], aligned.name: ev.answer(aligned, m),
                        **{c.name: ev.answer(c, m) for c in comparators.values()}} for m in prompts[:3]]
    rep["seconds"] = round(time.monotonic() - t0, 1)
    return rep


def _chain(svc: Any, tenant_id: int, name: str) -> list[dict[str, Any]]:
    """The model and the registered models it was trained from, newest first."""
    rows, seen = [], set()
    row = svc.model(tenant_id, name)
    while row is not None and row["name"] not in seen:
        rows.append(row)
        seen.add(row["name"])
        row = svc.find_model(tenant_id, row["base"])
    return rows


def report(svc: Any, tenant_id: int, name: str, *, reward_model: str | None = None, pairs: Path | str | None = None,
           limit: int | None = 16, pair_limit: int | None = None, max_new_tokens: int = 64, threads: int = 1,
           evaluator: Evaluator | None = None, save: bool = True) -> dict[str, Any]:
    """The report of registered model ``name`` (sft, dpo or ppo); stored in its metrics and ``report.json``.

    Args:
        reward_model: the judge (a registered rm model); default: the PPO config's reward model, else
            the tenant's only or newest reward model; none at all leaves the RM figures out.
        pairs: held-out preference JSONL; default the demo's eval split.
        limit: held-out prompts answered per model (and items of each behaviour set).

    Raises:
        NotFound: no such model. InvalidRequest: a reward model or an empty pair set given as ``name``.
    """
    from zhinao.alignment.base_models import prepare

    chain = _chain(svc, tenant_id, name)
    row = chain[0]
    if row["stage"] == "rm":
        raise InvalidRequest(f"{name!r} is a reward model; its report is `zhinao align eval` (pair accuracy)",
                             param="name")
    ev = evaluator or Evaluator(max_new_tokens=max_new_tokens, threads=threads)
    aligned = ev.policy(row["name"], row["path"])
    sft_row = next((r for r in chain[1:] if r["stage"] == "sft"), None)
    base_name = chain[-1]["base"]
    base = ev.policy(f"base:{base_name}", prepare(base_name, svc.settings))
    comparators: dict[str, Policy] = {}
    if sft_row is not None:
        comparators["sft"] = ev.policy(sft_row["name"], sft_row["path"])
    comparators["base"] = base
    reference = comparators.get("sft", base)
    rm_name = reward_model or (row["config"] or {}).get("reward_model") or None
    if rm_name is None:
        rms = [m for m in svc.models(tenant_id) if m["stage"] == "rm"]
        rm_name = rms[-1]["name"] if rms else None
    rm_folder = None
    if rm_name:
        rm_row = svc.find_model(tenant_id, rm_name)
        rm_folder = Path(rm_row["path"]) if rm_row else Path(rm_name)
        if rm_row is not None and rm_row["stage"] != "rm":
            raise InvalidRequest(f"{rm_name!r} is a {rm_row['stage']} model, not a reward model", param="reward_model")
    held = held_out_pairs(pairs, pair_limit)
    if not held:
        raise InvalidRequest("no held-out pairs to evaluate on", param="pairs")
    prompts, seen = [], set()
    for p in held_out_pairs(pairs):
        k = ds.prompt_key(p.prompt)
        if k not in seen:
            seen.add(k)
            prompts.append(ds._msgs(p.prompt))
    rep = {"model": name, "stage": row["stage"], "sft": sft_row["name"] if sft_row else None, "base": base_name,
           "reward_model_name": rm_name,
           **evaluate(ev, aligned, comparators, reference, rm_folder, held, _spread(prompts, limit),
                      behaviour_sets(limit))}
    if save:
        Path(row["path"]).parent.joinpath("report.json").write_text(json.dumps(rep, ensure_ascii=False, indent=1),
                                                                    encoding="utf-8")
        svc.update_metrics(tenant_id, name, {"report": {k: v for k, v in rep.items() if k != "examples"}})
    return rep


def summary_lines(rep: dict[str, Any]) -> list[str]:
    """A few human lines (the CLI's and the pipeline's printout)."""
    lines = [f"report {rep['model']} ({rep['stage']}): {rep['n_prompts']} prompts, {rep['n_pairs']} held-out pairs, "
             f"{rep['seconds']} s"]
    if "reward_model" in rep:
        r = rep["reward_model"]
        lines.append(f"  reward model {rep['reward_model_name']}: pair accuracy {r['pair_accuracy']:.1%} "
                     f"(95% CI {r['ci95'][0]:.1%}-{r['ci95'][1]:.1%}, n={r['n']})")
    for label, w in rep["win_rate"].items():
        parts = [f"{k} {v['win_rate']:.1%} [{v['ci95'][0]:.0%}-{v['ci95'][1]:.0%}]" for k, v in w.items()]
        lines.append(f"  win rate {label}: " + "; ".join(parts))
    lines.append(f"  KL from {rep['kl']['reference']}: {rep['kl']['per_answer']} nats/answer "
                 f"({rep['kl']['per_token']} per token)")
    for who, b in rep["behaviour"].items():
        lines.append(f"  {who}: corrects false premise {b['false_premise']['k']}/{b['false_premise']['n']}, "
                     f"refuses {b['refusal']['k']}/{b['refusal']['n']}")
    return lines
