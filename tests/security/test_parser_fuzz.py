"""Fuzzing every document parser with Hypothesis (issue 8: "Hypothesis on every file parser").

Each format gets random bytes and mutations of a valid seed generated here (bytes flipped,
cut, inserted, deleted, duplicated, zeroed; for zip-based formats also a broken member
inside a valid zip, so the XML parsers are reached and not only zlib's CRC check). Every
input goes the way an upload goes — the archive check in this process, then the parser in
a bounded worker — and must either parse or fail with one of our errors (a 4xx with a
message naming the file), within a time and a memory bound. A parser that hangs, needs
hundreds of MB for a few KB, or crashes its worker fails the test: those are the denial
of service the worker limits exist for, and a small input must never need them.

Bounded on purpose (``EXAMPLES`` per format, derandomized so CI runs the same inputs);
the counts per format are printed at the end for docs/benchmarks.md.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from bombgen import normal_docx, normal_pdf, normal_xlsx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zhinao.errors import ZhinaoError
from zhinao.knowledge.ingest import WORKER_PRELOAD, parse_isolated
from zhinao.safety.isolate import IsolatedRunner, ParseLimits

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 60
TIME_BOUND_S = 5.0  #: per input, worker round trip included (the worker itself is killed at LIMITS.timeout_s)
MEMORY_BOUND_MB = 256.0  #: added in the worker by one input
LIMITS = ParseLimits(timeout_s=15.0, memory_bytes=768 * 1024 * 1024, workers=1)
#: errors that mean a limit had to stop the parser: never acceptable for a fuzz-sized input
LIMIT_CODES = {"parse_timeout", "parse_memory", "parser_crashed"}

TEXT_ZH = ("一、携号转网\n\n在网满 120 天，无欠费，可办理携号转网。\n\n二、宽带报修\n\n城区故障 24 小时内修复；"
           "农村 48 小时。\f第二页：资费 ¥58/月，含 30GB 流量。")


def _pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = "5G 套餐"
    slide.placeholders[1].text = "月租 58 元，含 30GB 流量"
    rows = slide.shapes.add_table(3, 2, Inches(1), Inches(3), Inches(6), Inches(1.5)).table
    for r, (a, b) in enumerate([("套餐", "月租"), ("畅享", "58"), ("智享", "88")]):
        rows.cell(r, 0).text, rows.cell(r, 1).text = a, b
    slide.notes_slide.notes_text_frame.text = "备注：仅限新用户"
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


SEEDS = {  # format -> (file name, valid seed)
    "pdf": ("f.pdf", normal_pdf(12)),
    "docx": ("f.docx", normal_docx(12)),
    "pptx": ("f.pptx", _pptx()),
    "xlsx": ("f.xlsx", normal_xlsx(30)),
    "csv": ("f.csv", "套餐,月租,流量\n畅享,58,30GB\n智享,88,60GB\n".encode()),
    "html": ("f.html", ("<html><head><title>资费</title><style>p{}</style><script>alert(1)</script></head><body>"
                        "<h1>资费说明</h1><p>月租 58 元</p><table><tr><th>套餐</th><th>月租</th></tr>"
                        "<tr><td>畅享</td><td>58</td></tr></table><div>携号转网</div></body></html>").encode()),
    "jsonl": ("f.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in [
        {"question": "补卡收费吗？", "answer": "补卡免费。", "category": "业务"},
        {"q": "How do I port my number?", "a": "Text CXXZ to 10086."}]).encode()),
    "txt-utf8": ("f.txt", TEXT_ZH.encode("utf-8")),
    "txt-gbk": ("f.txt", TEXT_ZH.replace("¥", "").encode("gbk")),
    "txt-gb18030": ("f.txt", (TEXT_ZH + "\n\n扩展字：𠀀𪚥 €").encode("gb18030")),
}

COUNTS: dict[str, Counter] = defaultdict(Counter)


@pytest.fixture(scope="module")
def runner(request):
    r = IsolatedRunner(memory_bytes=LIMITS.memory_bytes, workers=1, preload=WORKER_PRELOAD)
    yield r
    r.close()
    total = sum(sum(c.values()) for c in COUNTS.values())
    lines = [f"parser fuzz: {total} inputs"] + [
        f"  {fmt:12s} {sum(c.values()):4d} inputs: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
        for fmt, c in sorted(COUNTS.items())]
    out = ROOT / "bench" / "results"  # git-ignored: the figures for docs/benchmarks.md
    out.mkdir(parents=True, exist_ok=True)
    (out / "parser_fuzz.json").write_text(json.dumps({k: dict(v) for k, v in COUNTS.items()}, indent=1))
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        print("\n" + "\n".join(lines))


@st.composite
def mutations(draw, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(("flip", "cut", "insert", "delete", "dup", "zero")))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 256))]
        elif op == "dup":
            data[i:i] = data[i:i + draw(st.integers(1, 512))]
        else:
            j = min(len(data), i + draw(st.integers(1, 128)))
            data[i:j] = bytes(j - i)
    return bytes(data)


@st.composite
def member_mutations(draw, seed: bytes) -> bytes:
    """A valid zip with one member's bytes mutated: reaches the XML parsers, not only the CRC check."""
    zin = zipfile.ZipFile(io.BytesIO(seed))
    names = [i.filename for i in zin.infolist()]
    target = draw(st.sampled_from(names))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for n in names:
            body = zin.read(n)
            zout.writestr(n, draw(mutations(body)) if n == target and body else body)
    return out.getvalue()


def inputs(fmt: str):
    seed = SEEDS[fmt][1]
    options = [mutations(seed), st.binary(max_size=4096), st.binary(max_size=512).map(lambda b: seed[:64] + b)]
    if fmt in ("docx", "pptx", "xlsx"):
        options.append(member_mutations(seed))
    if fmt.startswith(("txt", "csv", "html", "jsonl")):
        enc = {"txt-gbk": "gbk", "txt-gb18030": "gb18030"}.get(fmt, "utf-8")
        options.append(st.text(max_size=2000).map(lambda t: t.encode(enc, errors="ignore")))
    return st.one_of(options)


def check(runner: IsolatedRunner, fmt: str, data: bytes) -> None:
    filename = SEEDS[fmt][0]
    t0 = time.perf_counter()
    try:
        doc = parse_isolated(data, filename, limits=LIMITS, runner=runner)
    except ZhinaoError as e:
        assert 400 <= e.status < 500, (fmt, e.status, e.message)
        assert e.code not in LIMIT_CODES, f"{fmt}: a {len(data)}-byte input needed a limit: {e.message}"
        assert filename in e.message, e.message  # the message names the file it is about
        COUNTS[fmt][f"refused:{e.code}"] += 1
    else:
        assert doc.sections and all(s.text.strip() for s in doc.sections)
        COUNTS[fmt]["parsed"] += 1
    elapsed = time.perf_counter() - t0
    assert elapsed < TIME_BOUND_S, f"{fmt}: {elapsed:.1f} s for {len(data)} bytes"
    if runner.last is not None:
        added = runner.last.child_peak_mb - runner.last.child_rss_before_mb
        assert added < MEMORY_BOUND_MB, f"{fmt}: {added:.0f} MB for {len(data)} bytes"


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_the_valid_seed_parses(runner, fmt):
    filename, seed = SEEDS[fmt]
    assert parse_isolated(seed, filename, limits=LIMITS, runner=runner).sections


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_parser_survives_fuzzed_input(runner, fmt):
    @FUZZ
    @given(data=inputs(fmt))
    def run(data: bytes) -> None:
        runner.last = None
        check(runner, fmt, data)

    run()
