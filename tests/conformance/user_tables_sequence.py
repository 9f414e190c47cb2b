"""User tables for the sequence family (issue 10): other names, other order, the user's own labels.

- ``next_content_prefixspan`` was written for the MSNBC sessions as lists of category ids; here
  it meets a click log as an analyst exports it: one row per click, Chinese column names
  (访问会话 / 栏目 / 点击时间), category names instead of ids, rows shuffled so only the time
  column orders a session — MSNBC sessions 60,001–72,000, which the demo (the first 50,000)
  never reads.
- ``hmm_word_tagger`` was written for a text column; here it meets a tagged table: one row per
  character of a THUCNews title with its BMES label (句子编号 / 字 / 标注), so it learns and is
  judged on the table's labels, not on jieba run by the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from zhinao.analytics import datasets


def click_log():
    s = datasets.load_msnbc(limit=72_000)
    rng = np.random.default_rng(7)
    start = pd.Timestamp("2026-03-01 08:00")
    rows = []
    for n, seq in enumerate(s.sequences[60_000:72_000]):
        t0 = start + pd.Timedelta(minutes=int(rng.integers(0, 60 * 24 * 7)))
        for j, c in enumerate(seq):
            rows.append((f"S{n:05d}", s.categories[c], t0 + pd.Timedelta(seconds=30 * j)))
    df = pd.DataFrame(rows, columns=["访问会话", "栏目", "点击时间"]).sample(frac=1.0, random_state=3)
    df["点击时间"] = df["点击时间"].dt.strftime("%Y-%m-%d %H:%M:%S")  # as text, the way a CSV export has it
    return df.reset_index(drop=True), {"session": "访问会话", "item": "栏目", "time": "点击时间"}


def tagged_titles():
    from zhinao.analytics.catalog.hmm import jieba_words

    t = datasets.load_thucnews()
    t = t[t["split"] == "dev"].head(2500)
    rows = []
    for n, title in enumerate(t["text"].astype(str)):
        for w in jieba_words("".join(title.split())):
            tags = "S" if len(w) == 1 else "B" + "M" * (len(w) - 2) + "E"
            rows.extend((f"句{n}", ch, tag) for ch, tag in zip(w, tags))
    return pd.DataFrame(rows, columns=["句子编号", "字", "标注"]), {"token": "字", "label": "标注", "sentence": "句子编号"}


CASES = {"next_content_prefixspan": click_log, "hmm_word_tagger": tagged_titles}
