"""`zhinao data …` and `zhinao models run …` against a real installation under tmp_path."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import require_module

from zhinao.cli import app as root
from zhinao.cli.data import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich wraps tables at 80 columns under CliRunner; keys and figures must stay on one line."""
    from zhinao.cli.common import console

    monkeypatch.setattr(console, "width", 220)


def test_import_profile_describe_run_score_export(settings, tmp_path):
    src = tmp_path / "客户.csv"
    pd.DataFrame({"用户ID": [f"u{i}" for i in range(60)], "ARPU": [10.5 + i for i in range(60)],
                  "套餐": ["A", "B", "C"] * 20}).to_csv(src, index=False, encoding="gbk")
    r = runner.invoke(app, ["import", str(src), "--name", "cust"])
    assert r.exit_code == 0, r.output
    assert "60 rows x 3 columns" in r.output and "gb" in r.output.lower()  # GBK detected
    r = runner.invoke(app, ["profile", "cust"])
    assert r.exit_code == 0 and "ARPU" in r.output and "10.5" in r.output
    r = runner.invoke(app, ["describe", "cust", "ARPU", "每用户平均收入"])
    assert r.exit_code == 0 and "每用户平均收入" in r.output
    r = runner.invoke(app, ["catalog"])
    assert r.exit_code == 0 and "churn_logistic" in r.output and "traffic_arima" in r.output
    # train, evaluate against the baseline and score into a table, with the live progress bar
    r = runner.invoke(app, ["run", "churn_logistic", "-w", "demo", "--dataset", "telco", "--score-table", "risk"])
    assert r.exit_code == 0, r.output
    assert "beats the baseline" in r.output and "100%" in r.output and "engine local" in r.output
    assert "scores written to table risk" in r.output
    out = tmp_path / "risk.csv"
    r = runner.invoke(app, ["export", "risk", str(out)])
    assert r.exit_code == 0 and pd.read_csv(out, encoding="utf-8-sig")["score"].is_monotonic_decreasing
    r = runner.invoke(app, ["runs"])
    assert r.exit_code == 0 and "churn_logistic" in r.output and "succeeded" in r.output


def test_bad_input_is_a_clear_message_not_a_traceback(settings, tmp_path):
    r = runner.invoke(app, ["run", "no_such_model"])
    assert r.exit_code != 0 and "no catalogue model" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["run", "hmm_word_tagger", "--engine", "spark"])
    assert r.exit_code != 0 and "no Spark implementation" in r.output
    r = runner.invoke(app, ["run", "churn_logistic", "--param", "depth=3"])
    assert r.exit_code != 0 and "'depth'" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,4,5\n")
    r = runner.invoke(app, ["import", str(bad)])
    assert r.exit_code != 0 and "line 3" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_models_run_with_the_spark_engine(settings):
    require_module("pyspark", "engine 'spark' needs pyspark (pip install 'zhinao[spark]')")
    r = runner.invoke(root, ["models", "run", "plan_tree", "--engine", "spark", "-p", "max_depth=4"])
    assert r.exit_code == 0, r.output
    assert "engine spark" in r.output and "beats the baseline" in r.output and "model.zip" in r.output
