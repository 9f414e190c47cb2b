"""Foreign tables for the classifiers (the tabular ones meet Orange in part (a) of the benchmark).

The text entries were written for THUCNews topics; here they classify hotel reviews
(ChnSentiCorp, two classes written positive/negative, the review column renamed 评论).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def hotel_reviews() -> pd.DataFrame:
    d = pd.read_csv(SHARED / "zh-review-sentiment" / "chnsenticorp_htl.csv")
    return pd.DataFrame({"评论": d["text"].astype(str), "评价": d["label"]})


CASES = [
    dict(key="text_naive_bayes", table="ChnSentiCorp hotel reviews (7,765), review column 评论, label 评价 "
         "positive/negative", load=hotel_reviews, params={"text": "评论", "target": "评价"}),
    dict(key="text_knn", table="ChnSentiCorp hotel reviews (7,765), text column inferred, label 评价 positive/negative",
         load=hotel_reviews, params={"target": "评价"}),
]
