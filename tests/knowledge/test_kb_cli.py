"""`zhinao kb` commands against a real installation under tmp_path (hash embedder, echo model)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from zhinao.cli.kb import app

runner = CliRunner()


def test_add_docs_search_sync_eval(settings, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "mnp.md").write_text("# 携号转网\n\n## 条件\n\n在网满 120 天，无欠费。", encoding="utf-8")
    (folder / "broadband.txt").write_bytes("宽带报修\n\n城区故障 24 小时内修复。".encode("gbk"))
    (folder / "junk.exe").write_bytes(b"MZ")
    r = runner.invoke(app, ["add", str(folder), "-c", "cs", "--tags", "policy"])
    assert r.exit_code == 0, r.output
    assert "added" in r.output and "junk.exe" in r.output  # the bad file is reported, the rest ingested
    assert "indexing" in r.output and "100%" in r.output  # the Rich progress bar, finished
    r = runner.invoke(app, ["add", str(folder / "mnp.md"), "-c", "cs"])
    assert "unchanged" in r.output
    r = runner.invoke(app, ["docs", "-c", "cs"])
    assert "mnp.md" in r.output and "ready" in r.output
    r = runner.invoke(app, ["search", "宽带 报修 修复", "-c", "cs"])
    assert r.exit_code == 0 and "broadband.txt" in r.output
    (folder / "junk.exe").unlink()
    (folder / "mnp.md").unlink()
    r = runner.invoke(app, ["sync", str(folder), "-c", "cs"])
    assert r.exit_code == 0 and "deleted" in r.output
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "宽带故障多久修复", "source": "broadband.txt", "gold": "24 小时"},
                             ensure_ascii=False) + "\n", encoding="utf-8")
    r = runner.invoke(app, ["eval", str(qa), "-c", "cs", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)  # stdout only: library log lines (jieba) go to stderr
    assert set(rep["modes"]) == {"bm25", "dense", "hybrid"} and rep["modes"]["bm25"]["recall@1"] == 1.0
    r = runner.invoke(app, ["eval", str(qa), "-c", "cs", "--json", "--modes", "hybrid+overlap,dense+embedding"])
    assert r.exit_code == 0 and set(json.loads(r.stdout)["modes"]) == {"hybrid+overlap", "dense+embedding"}
    r = runner.invoke(app, ["eval", str(qa), "-c", "cs", "--modes", "hybrid+cross"])
    assert r.exit_code != 0 and "unknown reranker 'cross'" in r.output
    r = runner.invoke(app, ["reindex", "-c", "cs"])
    assert r.exit_code == 0 and "reindexed" in r.output and "100%" in r.output, r.output
    r = runner.invoke(app, ["rm", "999", "-c", "cs"])
    assert r.exit_code == 2 and "not found" in r.output


def test_sync_every_keeps_watching_the_folder(settings, tmp_path):
    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "a.md").write_text("# 停机保号\n\n每月 5 元。", encoding="utf-8")
    r = runner.invoke(app, ["sync", str(folder), "-c", "w", "--every", "0.1", "--rounds", "3"])
    assert r.exit_code == 0, r.output
    assert r.output.count("up to date: nothing changed") == 2  # round 1 indexed a.md; rounds 2-3 found no change
    assert "a.md" in r.output and "added" in r.output
