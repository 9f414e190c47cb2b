from __future__ import annotations

import numpy as np
import pandas as pd

from zhinao.analytics.profile import profile_frame


def test_profile_types_nulls_histograms_and_warnings():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "arpu": rng.normal(60, 10, 200),
        "plan": rng.choice(["畅享", "智享", "尊享"], 200),
        "empty": [None] * 200,
        "same": ["x"] * 200,
        "day": pd.date_range("2024-01-01", periods=200, freq="D"),
        "mostly_null": [1.0] * 50 + [None] * 150,
    })
    p = profile_frame(df)
    cols = {c["name"]: c for c in p["columns"]}
    assert p["rows"] == 200 and len(p["sample"]) == 5
    assert cols["arpu"]["kind"] == "number" and sum(cols["arpu"]["histogram"]["counts"]) == 200
    assert abs(cols["arpu"]["stats"]["mean"] - df["arpu"].mean()) < 1e-9
    assert {v["value"] for v in cols["plan"]["top_values"]} == {"畅享", "智享", "尊享"}
    assert cols["empty"]["null_rate"] == 1.0 and "all_null" in cols["empty"]["warnings"]
    assert "constant" in cols["same"]["warnings"]
    assert "mostly_null" in cols["mostly_null"]["warnings"]
    assert cols["day"]["kind"] == "datetime" and cols["day"]["stats"]["min"].startswith("2024-01-01")
    assert "empty: all_null" in p["warnings"] and "same: constant" in p["warnings"]
    import json

    json.dumps(p)  # stored as JSON: must be strict JSON-serialisable
