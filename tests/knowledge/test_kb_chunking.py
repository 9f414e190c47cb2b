from zhinao.knowledge.chunking import chunk_sections, count_tokens, split_sentences
from zhinao.knowledge.ingest import Section


def test_chinese_sentence_ends_split_and_keep_punctuation():
    s = split_sentences("携号转网免费。需要身份证！可以跨省吗？不可以；仅限本省")
    assert s == ["携号转网免费。", "需要身份证！", "可以跨省吗？", "不可以；", "仅限本省"]


def test_chunks_are_token_bounded_with_overlap_and_cut_at_sentence_ends():
    text = "".join(f"第{i}条规定说明用户在营业厅办理业务时需要携带本人有效身份证件。" for i in range(40))
    chunks = chunk_sections([Section(text, page=3, heading=["办理", "证件"])], max_tokens=100, overlap=35)
    assert len(chunks) > 5
    for c in chunks:
        assert count_tokens(c.text) <= 100
        assert c.text.endswith("。")  # cut at a sentence end, never mid-sentence
        assert c.page == 3 and c.heading == ["办理", "证件"]
    # consecutive chunks share their boundary sentence (overlap)
    for a, b in zip(chunks, chunks[1:]):
        last = split_sentences(a.text)[-1]
        assert b.text.startswith(last)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_chunks_never_cross_pages_or_headings():
    secs = [Section("一页。", page=1), Section("二页。", page=2), Section("A节。", heading=["A"]),
            Section("B节。", heading=["B"])]
    chunks = chunk_sections(secs, max_tokens=200)
    assert [c.text for c in chunks] == ["一页。", "二页。", "A节。", "B节。"]
    assert [c.page for c in chunks] == [1, 2, None, None]


def test_rows_are_atomic_and_grouped():
    rows = [Section(f"套餐: 套餐{i}; 月租: {i * 10}元", kind="row") for i in range(30)]
    chunks = chunk_sections(rows, max_tokens=40, overlap=10)
    assert len(chunks) > 1
    joined = [line for c in chunks for line in c.text.split("\n")]
    assert joined == [r.text for r in rows]  # every row whole, once, in order (no overlap for rows)
    assert all(c.kind == "row" for c in chunks)


def test_run_on_text_without_punctuation_is_still_bounded():
    text = "流量" * 500
    chunks = chunk_sections([Section(text)], max_tokens=50, overlap=0)
    assert all(count_tokens(c.text) <= 50 for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_english_sentences():
    chunks = chunk_sections([Section("Roaming is on by default. Day passes cost 25 yuan. " * 20)], max_tokens=30,
                            overlap=8)
    assert all(count_tokens(c.text) <= 30 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)
