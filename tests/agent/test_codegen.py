"""write_code: SQL and Python checked by running them in their sandboxes, SAS by its structure,
one repair from the error, personal columns masked in the copy the code runs on. The model is a
real ModelFn that replays given replies; the slow test uses the embedded 0.5B model."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from zhinao.agent.base import ToolContext, tools
from zhinao.agent.codegen import WriteCode, check_sas, language_of, split_reply
from zhinao.runtime.base import GenerationParams, Message

TENANT = 1


class Replay:
    """Replies in order (the last one repeats); records every prompt and purpose."""

    def __init__(self, *replies: str):
        self.replies, self.calls = list(replies), []

    async def __call__(self, messages: Sequence[Message], params: GenerationParams, *, purpose: str = "agent") -> str:
        self.calls.append((list(messages), params, purpose))
        return self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]


@pytest.fixture(scope="module")
def analytics(tmp_path_factory):
    from zhinao.analytics.service import AnalyticsService
    from zhinao.capability import migration_dirs
    from zhinao.settings import Settings
    from zhinao.store.db import Database
    from zhinao.store.jobs import JobRunner

    tmp = tmp_path_factory.mktemp("codegen")
    db = Database(f"sqlite:///{tmp / 'meta.db'}")
    db.migrate(migration_dirs())
    jobs = JobRunner(db)
    svc = AnalyticsService(settings=Settings(home=tmp / "home"), db=db, jobs=jobs)
    svc.workspaces.create(TENANT, "demo")
    svc.workspaces.import_demo(TENANT, "demo", "telco")
    import pandas as pd

    svc.workspaces.save_frame(TENANT, "demo", "contacts", pd.DataFrame({
        "客户姓名": ["张三", "李四", "王芳"], "手机号码": ["13812345678", "13900001111", "15987654321"],
        "月费": [58, 88, 128]}), source="test")
    yield svc
    jobs.shutdown()
    db.dispose()


def ctx_for(analytics, model, allow_personal=False) -> ToolContext:
    return ToolContext(tenant_id=TENANT, workspace="demo", ws=analytics.workspaces.workspace(TENANT, "demo"),
                       analytics=analytics, model=model, allow_personal=allow_personal)


def run(tool, ctx, args):
    return asyncio.run(tool.run(ctx, args))


def test_registered_and_language_from_the_request():
    assert isinstance(tools()["write_code"], WriteCode)
    assert language_of("写一段 SAS 代码统计平均月费") == "sas"
    assert language_of("Write pandas code for churn by contract") == "python"
    assert language_of("用SQL查询每种合约的客户数") == "sql"
    assert language_of("写一段代码计算离网率") == "python"
    code, expl = split_reply("Here:\n```python\nresult = df.x.mean()\n```\nIt averages x.", "python")
    assert code == "result = df.x.mean()" and "averages" in expl


def test_python_is_run_on_a_copy_of_the_table(analytics):
    model = Replay("```python\nresult = df.groupby('Contract')['MonthlyCharges'].mean().round(2)\n```\n"
                   "按合约类型计算平均月费。")
    res = run(WriteCode(), ctx_for(analytics, model), {"question": "写一段 pandas 代码：telco 表按合约类型的平均月费"})
    assert res.ok, res.error
    gold = analytics.workspaces.workspace(TENANT, "demo").run_sql(
        'SELECT Contract, ROUND(AVG(MonthlyCharges), 2) FROM telco GROUP BY Contract ORDER BY Contract').rows()
    assert [tuple(r) for r in res.rows] == [tuple(r) for r in gold]
    assert res.code["language"] == "python" and res.code["executed"] and "Month-to-month" in res.code["output"]
    assert res.code["explanation"].startswith("按合约") and not res.code["repaired"]
    system = model.calls[0][0][0]["content"]
    assert "telco(" in system and "MonthlyCharges" in system and "`df`" in system
    assert "Fiber optic" in system  # the values of short text columns, from the dataset profile
    assert model.calls[0][2] == "agent.code"


def test_a_line_that_reads_the_table_from_a_file_is_dropped(analytics):
    model = Replay("```python\nimport pandas as pd\ndata = pd.read_csv('telco.csv')\nresult = len(data)\n```")
    res = run(WriteCode(), ctx_for(analytics, model), {"question": "python: how many rows in telco"})
    assert res.ok and res.rows == [[7043]] and "read_csv" not in res.code["source"] and not res.code["repaired"]
    assert res.code["checks"][0]["check"] == "fixed" and "pd.read_csv('telco.csv')" in res.code["checks"][0]["detail"]


def test_an_empty_workspace_is_said_plainly(analytics, tmp_path):
    from zhinao.analytics.workspace import Workspace

    ctx = ToolContext(tenant_id=TENANT, workspace="empty", ws=Workspace(tmp_path / "empty.duckdb"),
                      model=Replay("```sql\nSELECT 1\n```"))
    res = run(WriteCode(), ctx, {"question": "SQL for the churn rate"})
    assert not res.ok and "no tables" in res.error and res.data["found"] is False
    bad = run(WriteCode(), ctx_for(analytics, Replay("x")), {"question": "code", "language": "cobol"})
    assert not bad.ok and "cobol" in bad.error


def test_python_refusal_gets_one_repair(analytics):
    model = Replay("```python\nimport os\nresult = os.listdir('/')\n```",
                   "```python\nresult = len(df)\n```", "```python\nresult = 0\n```")
    res = run(WriteCode(), ctx_for(analytics, model), {"question": "count the telco rows in python"})
    assert res.ok and res.code["repaired"] and res.rows == [[7043]]
    repair_prompt = model.calls[1][0][-1]["content"]
    assert "import of 'os' is not allowed" in repair_prompt and model.calls[1][2] == "agent.repair"
    assert len(model.calls) == 2  # bounded: one repair


def test_sql_is_checked_and_run_and_a_failure_is_repaired_once(analytics):
    model = Replay("```sql\nSELECT Contrct, COUNT(*) FROM telco GROUP BY 1\n```",
                   "```sql\nSELECT Contract, COUNT(*) AS n FROM telco GROUP BY Contract ORDER BY Contract\n```")
    res = run(WriteCode(), ctx_for(analytics, model), {"question": "写一段 SQL：每种合约的客户数"})
    assert res.ok and res.code["repaired"] and res.sql.startswith("SELECT Contract")
    assert sum(r[1] for r in res.rows) == 7043 and res.code["executed"]
    assert "Contrct" in model.calls[1][0][-1]["content"]
    bad = Replay("```sql\nDELETE FROM telco\n```")
    res2 = run(WriteCode(), ctx_for(analytics, bad), {"question": "SQL to delete everything", "language": "sql"})
    assert not res2.ok and not res2.code["executed"] and res2.error
    assert analytics.workspaces.workspace(TENANT, "demo").run_sql("SELECT COUNT(*) FROM telco").rows()[0][0] == 7043


def test_personal_columns_are_masked_in_results_unless_allowed(analytics):
    sql = "```sql\nSELECT 客户姓名, 手机号码, 月费 FROM contacts ORDER BY 月费\n```"
    masked = run(WriteCode(), ctx_for(analytics, Replay(sql)), {"question": "SQL listing contacts"})
    assert masked.ok and masked.rows[0] == ["张*", "138****5678", 58]
    assert set(masked.data["masked_columns"]) == {"客户姓名", "手机号码"} and "13812345678" not in masked.code["output"]
    renamed = run(WriteCode(), ctx_for(analytics, Replay("```sql\nSELECT 手机号码 AS p FROM contacts\n```")),
                  {"question": "SQL listing phones"})
    assert renamed.ok and all(r[0].count("*") == 4 for r in renamed.rows)
    shown = run(WriteCode(), ctx_for(analytics, Replay(sql), allow_personal=True), {"question": "SQL listing contacts"})
    assert shown.rows[0] == ["张三", "13812345678", 58]
    py = Replay("```python\nresult = contacts[['手机号码', '月费']]\n```")
    out = run(WriteCode(), ctx_for(analytics, py), {"question": "pandas code listing contacts phones"})
    assert out.ok and out.rows[0] == ["138****5678", 58]


GOOD_SAS = """/* average monthly charges by contract for fiber customers */
data work.fiber;
  set telco;
  where InternetService = 'Fiber optic';
run;

proc means data=fiber mean maxdec=2;
  class Contract;
  var MonthlyCharges;
run;

proc sql;
  create table by_contract as
  select Contract, avg(MonthlyCharges) as avg_fee from telco group by Contract;
quit;
"""


def test_sas_structure_check_finds_an_unclosed_data_step_and_unknown_tables():
    assert all(c.ok for c in check_sas(GOOD_SAS, ["telco"])), check_sas(GOOD_SAS, ["telco"])
    unclosed = "data fiber;\n  set telco;\n  if tenure > 12;\n\nproc freq data=fiber;\n  tables Churn;\nrun;\n"
    checks = {c.check: c for c in check_sas(unclosed, ["telco"])}
    assert not checks["steps closed"].ok and "DATA step at line 1 is not closed by RUN;" in checks["steps closed"].detail
    checks = {c.check: c for c in check_sas("proc sql;\n select * from nosuch;\n", ["telco"])}
    assert not checks["tables"].ok and "nosuch" in checks["tables"].detail
    assert "QUIT;" in checks["steps closed"].detail
    checks = {c.check: c for c in check_sas("data x; set telco; label a = \"it's; run;", ["telco"])}
    assert not checks["quotes"].ok
    opts = "data a(keep=Contract tenure);\n  set telco(keep=Contract tenure where=(tenure > 1));\nrun;\n"
    assert all(c.ok for c in check_sas(opts, ["telco"])), check_sas(opts, ["telco"])
    checks = {c.check: c for c in check_sas("proc frobnicate data=telco; run;", ["telco"])}
    assert not checks["procedures"].ok and "FROBNICATE" in checks["procedures"].detail


def test_sas_is_not_executed_and_the_answer_says_so(analytics):
    model = Replay("```sas\ndata fiber;\n  set telco;\n```", f"```sas\n{GOOD_SAS}```\n程序先筛选光纤用户再求均值。")
    res = run(WriteCode(), ctx_for(analytics, model), {"question": "写一段 SAS 代码，按合约类型统计光纤用户的平均月费"})
    assert res.ok and res.code["repaired"] and not res.code["executed"] and res.code["language"] == "sas"
    assert "未执行" in res.code["explanation"] and "SAS" in res.code["explanation"]
    assert "not closed by RUN;" in model.calls[1][0][-1]["content"]
    en = run(WriteCode(), ctx_for(analytics, Replay(f"```sas\n{GOOD_SAS}```")), {"question": "Write SAS code for it"})
    assert "Not executed" in en.code["explanation"] and en.rows is None


@pytest.mark.slow
def test_the_embedded_model_writes_python_that_runs_in_the_sandbox(analytics, default_pack_path):
    from zhinao.agent.sqlgen import EngineModel
    from zhinao.runtime.llamacpp import LlamaCppChatModel

    model = EngineModel(LlamaCppChatModel("qwen2.5-coder-0.5b", path=default_pack_path, threads=1))
    res = run(WriteCode(), ctx_for(analytics, model),
              {"question": "Write pandas code that computes the average MonthlyCharges for each Contract in the "
                           "telco table", "language": "python"})
    assert res.code["language"] == "python" and res.code["source"]
    assert res.ok, (res.error, res.code["source"])
    assert res.code["executed"] and res.rows
    gold = {r[0]: r[1] for r in analytics.workspaces.workspace(TENANT, "demo").run_sql(
        "SELECT Contract, AVG(MonthlyCharges) FROM telco GROUP BY Contract").rows()}
    flat = [v for r in res.rows for v in r if isinstance(v, float)]
    assert any(abs(v - g) < 0.01 for v in flat for g in gold.values()), res.rows
