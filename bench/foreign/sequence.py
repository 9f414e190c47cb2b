"""Foreign tables for the sequence family (next_content_prefixspan, hmm_word_tagger).

Read from ../shared at run time (no copies shipped):

- STC-3 customer-service dialogues (benchmark; measured, never tuned on): the majority nugget
  label of each turn, one row per turn (stc3_nugget_events_long.csv: dialogue_id, position,
  sender, nugget_label; 3,700 dialogues). PrefixSpan predicts each dialogue's last dialogue act
  from the ones before it (also from stc3_nugget_sequences.csv, one row per dialogue with the
  sequence in one column: the ``sequence`` role); the HMM tags each turn's nugget label from the sender sequence
  (token = sender, label = nugget_label, sentence = dialogue_id) — dialogue-act tagging.
- Chinese customer reviews (zh-review-sentiment, food delivery waimai_10k.csv, 4,000 rows
  sampled with a fixed seed; the text column renamed 评论内容): the HMM word tagger learns
  from jieba's segmentation of half of them and is judged on the other half.
- The groceries baskets are not used for PrefixSpan: their items are listed in no purchase
  order, so there is no sequence to mine.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
STC3 = SHARED / "benchmarks" / "stc3-cn-dialogues" / "sequences" / "stc3_nugget_events_long.csv"
STC3_ROWS = SHARED / "benchmarks" / "stc3-cn-dialogues" / "sequences" / "stc3_nugget_sequences.csv"
WAIMAI = SHARED / "data" / "zh-review-sentiment" / "waimai_10k.csv"


def stc3() -> pd.DataFrame:
    return pd.read_csv(STC3)


def waimai() -> pd.DataFrame:
    df = pd.read_csv(WAIMAI).sample(n=4000, random_state=0).rename(columns={"text": "评论内容"})
    return df.reset_index(drop=True)


CASES = [
    dict(key="next_content_prefixspan", table="STC-3 helpdesk dialogues, nugget label per turn "
         "(stc3_nugget_events_long.csv, 3,700 dialogues)", load=stc3,
         params={"session": "dialogue_id", "item": "nugget_label", "time": "position", "min_support": 0.005}),
    dict(key="next_content_prefixspan", table="STC-3 helpdesk dialogues, one row per dialogue with its nugget "
         "sequence in one column (stc3_nugget_sequences.csv)", load=lambda: pd.read_csv(STC3_ROWS),
         params={"session": "dialogue_id", "sequence": "sequence", "min_support": 0.005}),
    dict(key="hmm_word_tagger", table="STC-3 helpdesk dialogues: nugget label of each turn tagged from the sender "
         "sequence (token=sender, label=nugget_label, sentence=dialogue_id)", load=stc3,
         params={"token": "sender", "label": "nugget_label", "sentence": "dialogue_id"}),
    dict(key="hmm_word_tagger", table="zh-review-sentiment waimai_10k.csv, 4,000 reviews (seeded sample), text "
         "column renamed 评论内容", load=waimai, params={"text": "评论内容"}),
]
