"""The agent's short answer, in the question's language, written from the result itself.

Template narration, not model narration: every number in the text is read from the result
table or the run's metrics, so it cannot be invented — and it costs nothing on the embedded
0.5B model, whose free-text summaries of tables were the least reliable part of a turn.
The templates cover the shapes answers take: one value, one row, a labelled series (the
largest and the smallest named), a model run (metric against its baseline, main factors),
a chart, a schema listing, a definition, generated code, and a refusal or failure.
"""

from __future__ import annotations

import math
import re
from typing import Any

#: labelled values read out in a narrative (the table holds the rest)
READ_OUT = 5


def fmt(v: Any) -> str:
    """A value as the table shows it, floats shortened (2 decimals, or 4 significant if small)."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v == int(v) and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.2f}" if abs(v) >= 1 else f"{v:.4g}"
    return str(v)


def _isnum(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _hashable(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)


def table_text(columns: list[str], rows: list[list[Any]], zh: bool, truncated: bool = False) -> str:
    """One or two sentences that read the table out."""
    if not rows:
        return "没有符合条件的数据。" if zh else "No rows match."
    more = ("（只显示了前 %d 行）" % len(rows)) if truncated and zh else \
        (f" (first {len(rows)} rows shown)" if truncated else "")
    if len(rows) == 1 and len(columns) == 1:
        return (f"结果是 {fmt(rows[0][0])}（{columns[0]}）。" if zh else f"The result is {fmt(rows[0][0])} ({columns[0]}).")
    if len(rows) == 1:
        pairs = ", ".join(f"{c} = {fmt(v)}" for c, v in zip(columns, rows[0]))
        return f"结果：{pairs}。" if zh else f"Result: {pairs}."
    nums = [i for i in range(len(columns)) if all(_isnum(r[i]) or r[i] is None for r in rows)
            and any(_isnum(r[i]) for r in rows)]
    labels = [i for i in range(len(columns)) if i not in nums]
    if labels and nums:
        li, vi = labels[0], nums[-1]
        keys = [i for i in range(len(columns)) if i != vi]
        if len({_hashable(r[li]) for r in rows}) < len(rows) and len(keys) > 1:
            # the first label repeats (city x sentiment): name each row by all of its key columns
            rows = [[" / ".join(fmt(r[i]) for i in keys), r[vi]] for r in rows]
            columns = [" / ".join(columns[i] for i in keys), columns[vi]]
            li, vi = 0, 1
        shown = "; ".join(f"{fmt(r[li])}: {fmt(r[vi])}" for r in rows[:READ_OUT])
        vals = [(r[vi], r[li]) for r in rows if _isnum(r[vi])]
        hi = max(vals, key=lambda t: t[0]) if vals else None
        lo = min(vals, key=lambda t: t[0]) if vals else None
        if zh:
            s = f"共 {len(rows)} 组（按 {columns[li]}），{columns[vi]}：{shown}"
            s += "……" if len(rows) > READ_OUT else "。"
            if hi and lo and hi != lo:
                s += f"最高的是 {fmt(hi[1])}（{fmt(hi[0])}），最低的是 {fmt(lo[1])}（{fmt(lo[0])}）。"
            return s + more
        s = f"{len(rows)} groups by {columns[li]}, {columns[vi]}: {shown}" + ("…" if len(rows) > READ_OUT else ".")
        if hi and lo and hi != lo:
            s += f" Highest: {fmt(hi[1])} ({fmt(hi[0])}); lowest: {fmt(lo[1])} ({fmt(lo[0])})."
        return s + more
    if len(columns) == 1:  # one column, no labels (a GROUP BY without its key): read the values out
        vals = ", ".join(fmt(r[0]) for r in rows[:READ_OUT])
        cut = len(rows) > READ_OUT
        return (f"共 {len(rows)} 行，{columns[0]}：{vals}{'……' if cut else '。'}" if zh else
                f"{len(rows)} rows of {columns[0]}: {vals}{'…' if cut else '.'}") + more
    first = ", ".join(f"{c} = {fmt(v)}" for c, v in zip(columns, rows[0]))
    return (f"共 {len(rows)} 行，第一行：{first}。" if zh else f"{len(rows)} rows; the first: {first}.") + more


def model_text(data: dict[str, Any], zh: bool) -> str:
    """A catalogue run: what ran on which table, its metric against the baseline, the factors."""
    name = (data.get("name_zh") if zh else data.get("name_en")) or data.get("key")
    metric = data.get("metric")
    m = (data.get("metrics") or {}).get(metric) if metric else None
    b = (data.get("baseline") or {}).get(metric) if metric else None
    bname = data.get("baseline_name") or ("基线" if zh else "baseline")
    beats = data.get("beats_baseline")
    if zh:
        s = f"在表 {data.get('table')} 上运行了{name}（{data.get('key')}）"
        if _isnum(m):
            s += f"，留出集 {metric} = {fmt(m)}"
            if _isnum(b):
                s += f"，基线（{bname}）为 {fmt(b)}"
        s += "。"
        if beats is not None:
            s += "模型优于基线。" if beats else "模型没有超过基线，结论需谨慎。"
        if data.get("factors"):
            s += ("各类：" if data.get("task") == "clustering" else "主要因素：") + "；".join(_factors(data)) + "。"
        return s
    s = f"Ran {name} ({data.get('key')}) on table {data.get('table')}"
    if _isnum(m):
        s += f": hold-out {metric} = {fmt(m)}"
        if _isnum(b):
            s += f" against {fmt(b)} for the baseline ({bname})"
    s += "."
    if beats is not None:
        s += " The model beats the baseline." if beats else " The model does not beat the baseline; treat it with care."
    if data.get("factors"):
        s += (" Segments: " if data.get("task") == "clustering" else " Main factors: ") + "; ".join(_factors(data)) + "."
    return s


def _factors(data: dict[str, Any]) -> list[str]:
    return list(data.get("factors") or [])[:6 if data.get("task") == "clustering" else 3]


_CJK = re.compile(r"[\u4e00-\u9fff]")
_Q = r"[\"'“”`]?"
#: (pattern over an English error of the sandbox, DuckDB, sqlglot or a tool, Chinese explanation);
#: the first that matches wins; ``{1}``… are the pattern's groups
_ZH_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.I | re.S), z) for p, z in (
    (r"column '([^']+)' does not exist; (\S+) has columns ([^;]+)", "查询用到了不存在的列 “{1}”（表 {2} 的列有：{3}）"),
    (r"column '([^']+)' does not exist", "查询用到了不存在的列 “{1}”"),
    (r"Referenced column " + _Q + r"([^\"'”`]+?)" + _Q + r" not found", "查询用到了不存在的列 “{1}”"),
    (r"Table with name " + _Q + r"([^\"'”`\s]+?)" + _Q + r" does not exist", "查询用到了不存在的表 “{1}”"),
    (r"table " + _Q + r"([^\"'”`]+?)" + _Q + r" is not in this workspace", "工作区里没有表 “{1}”"),
    (r"^table function (\w+)\(\) is not available", "SQL 沙箱里不能使用表函数 {1}()，只能读取工作区自己的表"),
    (r"^function (\w+)\(\) is not available", "SQL 沙箱里不能使用函数 {1}()（读文件、改设置的函数都被禁止）"),
    (r"looks like a file path", "查询想读取文件；沙箱只读取工作区自己的表"),
    (r"cannot read from|database .* is not this workspace|schema .* is not available",
     "查询想读取工作区以外的数据；沙箱只读取工作区自己的表"),
    (r"send exactly one statement", "一次只能执行一条 SELECT 语句"),
    (r"only a read-only SELECT|is not allowed inside a query|SELECT \.\.\. INTO|change or lock data",
     "只允许只读的 SELECT 查询，不能修改数据"),
    (r"does not parse|Parser Error|syntax error", "SQL 有语法错误，无法解析"),
    (r"Conversion Error|Could not convert|Mismatch Type|No function matches",
     "查询里的数据类型不匹配（例如把文本当数字比较）"),
    (r"Binder Error|Catalog Error", "查询引用的表、列或函数与工作区的表结构不符"),
    (r"ran longer than the ([\d.]+) s limit", "查询超过了 {1} 秒的时间限制，已被停止；请先筛选或聚合，或加 LIMIT"),
    (r"memory limit|sql_memory_limit", "查询超出了内存限制，已被停止；请先筛选或聚合"),
    (r"result is larger than", "查询结果太大；请加 LIMIT 或先聚合"),
    (r"workspace is busy", "工作区正忙（另一个进程在写入），请稍后再试"),
    (r"running \d+ queries already", "SQL 沙箱正忙，请稍后再试"),
    (r"reply contained no SQL|no SQL could answer", "模型没有写出能回答这个问题的 SQL"),
    (r"no model is available", "平台上没有可用的模型来完成这一步"),
    (r"model " + _Q + r"([^\"'”`]+?)" + _Q + r" could not start", "模型 {1} 无法启动，这是平台的配置问题，请联系管理员"),
    (r"rate limit|quota|too many requests", "模型调用超出了配额或频率限制，请稍后再试"),
    (r"could not use the model's reply|malformed", "模型的回复格式不对，无法使用"),
    (r"cannot tell which column is the '(\w+)': (.+?) all fit", "无法确定哪一列是模型需要的“{1}”列（候选：{2}）；请在问题里写明列名"),
    (r"bind the 'time' role to a datetime column.*?; columns: (.+)$",
     "工作区的表里没有日期或时间列，所以无法做时间序列预测（现有的列：{1}）；请导入带时间列的数据"),
    (r"bind the '(\w+)' role to .*?; columns: (.+)$", "模型需要一个“{1}”列，但从问题和数据里确定不了是哪一列（现有的列：{2}）；请在问题里写明列名"),
    (r"has classes '([^']+)' and '([^']+)': which one is the positive", "目标列有“{1}”和“{2}”两类，请在问题里说明要预测的是哪一类"),
    (r"no table of this workspace fits model " + _Q + r"(\w+)", "工作区里没有适合模型 {1} 的表（缺少它需要的列）"),
    (r"no catalogue model does (\w+)", "模型目录里没有做 {1} 的模型"),
    (r"model " + _Q + r"(\w+)" + _Q + r" on .* failed", "模型 {1} 运行失败"),
    (r"no result to chart", "还没有可以画图的结果：请先问一个数据问题"),
    (r"no numeric column to chart", "结果里没有可以画图的数值列"),
    (r"tool is not installed", "平台上没有安装这一步需要的工具"),
    (r"the code did not pass its check|the reply held no code", "生成的代码没有通过检查"),
))


def zh_error(error: str) -> str:
    """A Chinese explanation of an English error message (the raw message stays in the tool
    call's ``error``): a Chinese answer that quotes "Binder Error: Referenced column …" reads as
    a crash to a user who asked in Chinese. Text that is already Chinese is kept as it is."""
    error = (error or "").strip()
    if not error:
        return error
    for pat, zh in _ZH_ERRORS:
        m = pat.search(error)
        if m:
            return zh.format(None, *m.groups())
    if _CJK.search(error):
        return error
    return "执行时出错（原始错误信息见工具调用记录）"


def failure_text(error: str, zh: bool) -> str:
    if zh:
        return f"无法用这个工作区的数据回答：{zh_error(error).rstrip('。.')}。"
    return f"I could not answer this from the workspace's data: {error}"


def sql_failure_text(error: str, zh: bool) -> str:
    """The SQL the model wrote did not run (after repair): say that, not that the data lacks the
    answer — a column the model misspelt ("order金额" for 订单金额) is the model's error."""
    if zh:
        return (f"没能写出能正确运行的 SQL：{zh_error(error).rstrip('。.')}。数据里可能有答案：可以换个说法"
                "（写出列名）再问，或直接发一条 SELECT 查询。")
    return (f"I could not write a SQL query that runs for this: {error.rstrip('.')}. The data may still hold the "
            "answer: rephrase the question with the column names, or send a SELECT yourself.")


def refusal_text(zh: bool) -> str:
    return ("我只能读取和分析数据，不能删除、修改或写入数据；没有执行任何操作。可以换成查询，例如“有多少客户……”。" if zh else
            "I can only read and analyse data: I do not delete, update or write anything, and nothing was changed. "
            "Ask a question about the data instead, e.g. \"how many customers …\".")


def file_refusal_text(zh: bool) -> str:
    return ("我只能读取这个工作区里的数据表，不能读取服务器上的文件、网址或其他数据库；没有执行任何操作。"
            "如需分析某个文件，请先把它导入工作区（zhinao data import）。" if zh else
            "I can only read this workspace's tables, not files, URLs or other databases on the server; nothing "
            "was run. To analyse a file, import it into the workspace first (zhinao data import).")


def lacking_column_text(column: str, zh: bool) -> str:
    """The question asks for a column no table of the workspace has: say so, invent nothing."""
    return (f"工作区的表里没有“{column}”这样的数据，所以无法回答；可以先用“有哪些表？”查看现有字段，或导入含这一列的表。"
            if zh else f"No table of this workspace has data like '{column}', so I cannot answer this; ask "
            "\"what tables are there?\" to see the columns, or import a table that has it.")


def empty_text(zh: bool, workspace: str | None = None) -> str:
    """No tables yet: say how to import one into *this* workspace (the command needs ``-w``)."""
    cmd = f"zhinao data import FILE -w {workspace}" if workspace else "zhinao data import FILE -w WORKSPACE"
    return (f"这个工作区还没有数据表，请先导入数据（{cmd}，或在控制台的“数据分析”页面上传文件）。" if zh else
            f"This workspace has no tables yet: import data first ({cmd}, or upload a file on the console's "
            "Analytics page).")


def missing_table_text(names: list[str], tables: list[str], zh: bool) -> str:
    n = ", ".join(names)
    t = ", ".join(tables)
    return (f"工作区里没有表 {n}；现有的表：{t}。" if zh else f"The workspace has no table {n}; its tables are: {t}.")


def lacking_text(lacking: list[tuple[str, list[str]]], zh: bool) -> str:
    """The workspace lacks the data a term needs: say which, invent nothing."""
    parts = [f"{t}（需要 {', '.join(m)}）" if zh else f"{t} (needs {', '.join(m)})" for t, m in lacking]
    return ("工作区里没有计算 " + "、".join(parts) + " 所需的数据，所以无法回答；可以导入含这些字段的表，或在术语表里改写公式。" if zh else
            "The workspace has no data to compute " + ", ".join(parts) + ", so I cannot answer this; import a "
            "table with such columns or edit the term's formula in the glossary.")


def narrate(route: str, result: Any, zh: bool) -> str:
    """The answer text for a tool result (``ToolResult``) of ``route``."""
    if result is None:
        return ""
    if not result.ok:
        if route in ("sql", "chart") and "candidates" in (result.data or {}):  # the model's SQL failed, not the data
            return sql_failure_text(result.error or "", zh)
        return failure_text(result.error or "", zh)
    if route in ("model", "forecast") and result.data.get("key"):
        text = model_text(result.data, zh)
        if result.rows:
            text += (f"评分最高的 {len(result.rows)} 行见下表。" if zh else
                     f" The {len(result.rows)} highest-scored rows are in the table.")
        return text
    if route == "code" and result.code:
        return code_text(result, zh)
    if route == "sql" or (result.columns and result.rows is not None and route not in ("schema", "explain")):
        text = table_text(result.columns or [], result.rows or [], zh, bool(result.data.get("truncated")))
        if result.data.get("repaired"):
            text += "（第一次生成的 SQL 有错误，已自动修正。）" if zh else " (The first SQL had an error and was repaired.)"
        return text
    if route == "chart" and result.chart:
        return (f"已生成{result.chart.get('type')}图：{result.chart.get('title')}。" if zh else
                f"Here is a {result.chart.get('type')} chart: {result.chart.get('title')}.")
    return result.summary


def code_text(result: Any, zh: bool) -> str:
    """Generated code: what it is, whether it ran (said once), and its output table read out —
    a request for code is answered as code first; the numbers come second, from the run."""
    ran = result.code.get("executed")
    lang = result.code.get("language")
    parts = [(result.summary or "").strip()]
    if not parts[0]:
        parts = [f"{lang} 代码如下（见代码面板）。" if zh else f"Here is the {lang} code (in the code panel)."]
    if not re.search(r"sandbox|沙箱|executed|未执行|未运行", parts[0], re.I):  # not said already
        parts.append(("已在沙箱中运行验证。" if ran else "未运行（只检查了结构）。") if zh else
                     ("It was run in the sandbox." if ran else "It was not executed (its structure was checked)."))
    if result.columns and result.rows:
        out = table_text(list(result.columns), [list(r) for r in result.rows], zh)
        parts.append(("运行结果：" if zh else "Its output: ") + out)
    return ("" if zh else " ").join(parts)


__all__ = ["empty_text", "failure_text", "file_refusal_text", "lacking_column_text", "zh_error", "fmt", "lacking_text", "missing_table_text", "code_text", "model_text", "narrate", "refusal_text", "sql_failure_text",
           "table_text"]
