"""The real public demo data shipped with Zhinao, as pandas objects.

Every folder under ``analytics/data/`` keeps the ``SOURCE.md`` licence notice of the data
it holds (repository, commit, licence, counts). Loaders read the files as shipped and do
only the cleaning each function's docstring states, so a demo number can be traced back
to the public file. Nothing here downloads anything.

``DATASETS`` maps a key to ``Dataset(loader, description_zh, description_en, licence)``;
the catalogue's ``ModelInfo.dataset`` refers to these keys.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

DATA_DIR = Path(__file__).parent / "data"


def data_path(*parts: str) -> Path:
    """Path of a shipped data file (``data_path("telco", "Telco-Customer-Churn.csv")``)."""
    return DATA_DIR.joinpath(*parts)


# -- telco churn ------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _telco_cached() -> pd.DataFrame:
    df = pd.read_csv(data_path("telco", "Telco-Customer-Churn.csv"), dtype={"customerID": str})
    # TotalCharges is read as text because 11 customers with tenure 0 hold a single space:
    # they have not been billed yet, so their total charge is 0.0 (not missing). We set 0.0
    # and keep the fact visible in a flag column instead of dropping the rows.
    raw = df["TotalCharges"].astype(str).str.strip()
    blank = raw.eq("")
    df["TotalCharges"] = pd.to_numeric(raw.where(~blank, "0"), errors="raise").astype(float)
    df["TotalCharges_was_blank"] = blank.astype(int)
    return df


def load_telco() -> pd.DataFrame:
    """IBM Telco Customer Churn: 7,043 customers x 22 columns.

    Cleaning (the only change to the file): ``TotalCharges`` is blank (a single space) for
    the 11 customers with ``tenure == 0``; they were never billed, so it becomes ``0.0`` and
    ``TotalCharges_was_blank`` = 1 marks those rows. ``Churn`` stays "Yes"/"No".
    """
    return _telco_cached().copy()


# -- Milan CDR --------------------------------------------------------------------------

def load_milan_total() -> pd.DataFrame:
    """Hourly CDR activity summed over Milan's 211 complete grid cells: 1,488 rows.

    Columns ``hour_index``, ``timestamp`` (inferred: hour 0 = 2013-11-01 00:00 CET, see
    SOURCE.md), ``activity``. The timestamps are the data provider's inference, not source data.
    """
    df = pd.read_csv(data_path("milan", "milan_cdr_hourly_total_211cells.csv"))
    return pd.DataFrame({
        "hour_index": df["hour_index"].astype(int),
        "timestamp": pd.to_datetime(df["timestamp_inferred"], format="%Y-%m-%d %H:%M"),
        "activity": df["activity_total_211_cells"].astype(float),
    })


def load_milan_cells() -> pd.DataFrame:
    """Hourly CDR activity per grid cell (long format): ``cell_id, hour_index, timestamp, activity``.

    281 cells; 211 have all 1,488 hours, the other 70 are shorter (as in the source).
    """
    df = pd.read_csv(data_path("milan", "milan_cdr_hourly_long.csv"))
    df["timestamp"] = pd.to_datetime(df.pop("timestamp_inferred"), format="%Y-%m-%d %H:%M")
    return df[["cell_id", "hour_index", "timestamp", "activity"]]


# -- groceries baskets ------------------------------------------------------------------

def load_groceries() -> list[list[str]]:
    """9,835 real point-of-sale baskets over 169 product categories (arules ``Groceries``).

    The file has ragged rows and no header, so it is read with :mod:`csv`, not pandas.
    """
    with open(data_path("groceries", "groceries.csv"), newline="", encoding="utf-8") as f:
        return [[item.strip() for item in row if item.strip()] for row in csv.reader(f) if row]


def groceries_frame() -> pd.DataFrame:
    """The baskets in long format (``transaction_id``, ``item``) for SQL and DuckDB."""
    rows = [(i + 1, item) for i, basket in enumerate(load_groceries()) for item in basket]
    return pd.DataFrame(rows, columns=["transaction_id", "item"])


# -- MSNBC click sequences --------------------------------------------------------------

@dataclass
class Sequences:
    """Click sessions as lists of category ids, plus the id -> name map."""

    sequences: list[list[int]]
    categories: dict[int, str]

    def names(self, seq: list[int]) -> list[str]:
        return [self.categories.get(i, str(i)) for i in seq]

    def __len__(self) -> int:
        return len(self.sequences)


def load_msnbc(limit: int | None = None) -> Sequences:
    """MSNBC.com click sessions (UCI), first 100,000 of 989,818, in SPMF format.

    Each session is the ordered list of page categories (ids 1-17) a user clicked.
    ``limit`` keeps the first ``limit`` sessions.
    """
    cats = pd.read_csv(data_path("msnbc", "msnbc_categories.csv"))
    categories = {int(r.category_id): str(r.category) for r in cats.itertuples()}
    seqs: list[list[int]] = []
    with open(data_path("msnbc", "msnbc_first100k.spmf.txt"), encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("@"):
                continue
            seqs.append([int(t) for t in line.split() if t not in ("-1", "-2")])
            if limit is not None and len(seqs) >= limit:
                break
    return Sequences(seqs, categories)


# -- social graphs ----------------------------------------------------------------------

def load_email_eu() -> tuple[pd.DataFrame, pd.DataFrame]:
    """SNAP email-Eu-core: directed edges ``src,dst`` (25,571 incl. 642 self-loops) and
    ground-truth ``node,department`` labels (1,005 nodes, 42 departments)."""
    edges = pd.read_csv(data_path("social", "email_eu_core_edges.csv"))
    labels = pd.read_csv(data_path("social", "email_eu_core_department_labels.csv"))
    return edges, labels


def load_karate() -> pd.DataFrame:
    """Zachary's karate club: 78 undirected edges ``src,dst`` among 34 members (1-based ids)."""
    return pd.read_csv(data_path("social", "karate_edges.csv"))


# -- THUCNews titles --------------------------------------------------------------------

def load_thucnews() -> pd.DataFrame:
    """THUCNews news titles, 20,000 rows, 10 balanced topics.

    Columns ``text, label, label_zh, label_id, split`` (``split`` is the source's own
    ``dev``/``test`` file; models train on dev and evaluate on test).
    """
    return pd.read_csv(data_path("thucnews", "thucnews_titles.csv"), dtype={"text": str})


# -- registry ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Dataset:
    loader: Callable[..., Any]
    description_zh: str
    description_en: str
    licence: str
    folder: str

    @property
    def source_md(self) -> str:
        """The shipped licence/provenance notice."""
        return data_path(self.folder, "SOURCE.md").read_text(encoding="utf-8")


DATASETS: dict[str, Dataset] = {
    "telco": Dataset(load_telco, "IBM 电信客户离网数据（7,043 名虚构客户）",
                     "IBM Telco Customer Churn (7,043 fictional customers)",
                     "Apache-2.0 (IBM code-pattern repository); IBM sample data", "telco"),
    "milan_total": Dataset(load_milan_total, "米兰电信小时级话务量（211 个小区合计，1,488 小时）",
                           "Telecom Italia Milan hourly CDR activity, total of 211 cells (1,488 hours)",
                           "ODbL 1.0 (Telecom Italia); subset from a GPL-3.0 repository", "milan"),
    "milan_cells": Dataset(load_milan_cells, "米兰电信逐小区小时级话务量（281 个小区）",
                           "Telecom Italia Milan hourly CDR activity per cell (281 cells)",
                           "ODbL 1.0 (Telecom Italia); subset from a GPL-3.0 repository", "milan"),
    "groceries": Dataset(load_groceries, "超市购物篮（9,835 笔交易，169 类商品）",
                         "Groceries market baskets (9,835 transactions, 169 items)",
                         "public domain per source repository; arules (GPL-3) origin, cite Hahsler et al.",
                         "groceries"),
    "msnbc": Dataset(load_msnbc, "MSNBC 网站点击序列（前 10 万个会话，17 个栏目）",
                     "MSNBC.com click sequences (first 100k sessions, 17 categories)",
                     "UCI Machine Learning Repository (CC BY 4.0); cite UCI", "msnbc"),
    "email_eu": Dataset(load_email_eu, "欧洲科研机构邮件通信网络（1,005 人，42 个部门）",
                        "SNAP email-Eu-core communication network (1,005 nodes, 42 departments)",
                        "SNAP: free for research, cite Leskovec et al.", "social"),
    "karate": Dataset(load_karate, "Zachary 空手道俱乐部社交网络（34 人）",
                      "Zachary's karate club network (34 members)",
                      "published 1977; shipped in networkx (BSD)", "social"),
    "thucnews": Dataset(load_thucnews, "THUCNews 新闻标题（2 万条，10 个主题）",
                        "THUCNews news titles (20,000, 10 topics)",
                        "MIT (source repository); THUCNews terms at thuctc.thunlp.org", "thucnews"),
}


def tabular(key: str) -> pd.DataFrame:
    """A dataset as one table, for importing into a workspace (baskets and graphs flattened)."""
    if key not in DATASETS:
        from zhinao.errors import NotFound

        raise NotFound(f"unknown demo dataset {key!r}; known: {', '.join(DATASETS)}")
    if key == "groceries":
        return groceries_frame()
    if key == "msnbc":
        s = load_msnbc(limit=20_000)
        rows = [(i + 1, pos, s.categories[c]) for i, seq in enumerate(s.sequences) for pos, c in enumerate(seq)]
        return pd.DataFrame(rows, columns=["session_id", "position", "category"])
    if key == "email_eu":
        edges, labels = load_email_eu()
        return edges
    return DATASETS[key].loader()
