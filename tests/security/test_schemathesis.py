"""Schemathesis over the whole OpenAPI surface (issue 8, "fuzzing in CI").

The schema is loaded from the in-process ASGI app (``schemathesis.openapi.from_asgi``) and
every operation is fuzzed with valid (positive) and invalid (negative) data, once as the
platform operator and once as a tenant member, with a bounded number of examples. Every
response must pass schemathesis' checks: no 5xx, a status code the operation declares
(``create_app`` declares each route's error codes with the error body model), a declared
content type, and a body matching the declared schema.

Requests go through one long-lived ``TestClient`` (the app's lifespan runs once): the
ASGI transport of schemathesis opens a client, and so the lifespan, per call, which would
close the platform after every request.

Failures are collected rather than raised at the first one, so a run reports every problem
and the figures (cases run, 5xx found) for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.conftest import require_module

schemathesis = require_module("schemathesis", "pip install -e '.[test]' (schemathesis is in the test extra)")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from fastapi.testclient import TestClient  # noqa: E402
from two_tenants import OP, make_platform, make_tenant  # noqa: E402
from world import isolated_env  # noqa: E402

from zhinao.gateway.app import create_app  # noqa: E402

#: examples per operation and generation mode; ZHINAO_FUZZ_EXAMPLES raises it for a longer local run
EXAMPLES = int(os.environ.get("ZHINAO_FUZZ_EXAMPLES", "5"))
#: wall-clock bound of one role's run (the run stops, and says so, rather than overrun)
BUDGET_S = float(os.environ.get("ZHINAO_FUZZ_BUDGET_S", "180"))
CHECKS = [content_type_conformance, status_code_conformance, response_schema_conformance]
#: a 5xx that is the operation's answer, not a failure: readiness before the default model has started
EXPECTED_5XX = {("GET", "/readyz", 503)}


@dataclass
class Report:
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    operations: int = 0
    out_of_time: bool = False
    seconds: Counter = field(default_factory=Counter)  #: time spent per operation
    kinds: Counter = field(default_factory=Counter)  #: failures by status and schemathesis failure type

    def summary(self, who: str) -> str:
        return (f"schemathesis as {who}: {self.operations} operations, {self.cases} cases, "
                f"{len(self.server_errors)} 5xx, {len(self.failures)} other check failures; "
                f"statuses {dict(sorted(self.statuses.items()))}" + (" (time budget reached)" if self.out_of_time else "")
                + (f"; failures by kind {dict(self.kinds.most_common())}" if self.kinds else ""))


def _httpx_kwargs(kw: dict) -> dict:
    """schemathesis serializes a case for ``requests``; the TestClient speaks httpx."""
    out = {"method": kw["method"], "url": kw["url"].replace("http://testserver", ""), "headers": kw.get("headers"),
           "params": kw.get("params") or None, "cookies": kw.get("cookies") or None}
    if "json" in kw:  # escaped as a JSON client sends it (lone surrogates too; httpx would fail to encode them)
        out["content"] = json.dumps(kw["json"], ensure_ascii=True).encode()
        out["headers"] = {**(out["headers"] or {}), "Content-Type": "application/json"}
    if kw.get("files"):
        out["files"] = [_file(f) for f in (kw["files"].items() if isinstance(kw["files"], dict) else kw["files"])]
        if isinstance(kw.get("data"), dict):
            out["data"] = kw["data"]
    elif isinstance(kw.get("data"), (bytes, str)):
        out["content"] = kw["data"]
    elif isinstance(kw.get("data"), dict):
        out["data"] = kw["data"]
    return out


def _file(item):
    """One multipart part as httpx wants it: (field, (filename, bytes[, type]))."""
    name, value = item
    if not isinstance(value, tuple):
        value = (None, value)
    filename, content, *rest = value
    if not isinstance(content, (bytes, str)):
        content = str(content)
    return name, (filename, content.encode() if isinstance(content, str) else content, *rest)


_CONSTRAINTS = ("minLength", "maxLength", "pattern", "enum", "format", "minimum", "maximum", "exclusiveMinimum",
                "exclusiveMaximum", "const")


def _can_be_invalid(op: dict) -> bool:
    """Whether negative generation can find anything: a body, or a parameter other than free text.

    (For an operation whose only inputs are unconstrained strings, hypothesis spends seconds
    before it gives up with Unsatisfiable.)
    """
    if "requestBody" in op:
        return True
    for p in op.get("parameters", []):
        sch = p.get("schema", {})
        for s in [sch, *sch.get("anyOf", [])]:
            if s.get("type") not in (None, "string", "null") or any(k in s for k in _CONSTRAINTS):
                return True
        if p.get("required") and p.get("in") == "query":
            return True  # leaving it out is invalid
    return False


def send_and_check(client, headers: dict[str, str], report: Report, case, mode: str) -> None:
    """Send one case through the app and run the checks; a problem is recorded, not raised."""
    op = case.operation
    kw = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    r = client.request(**_httpx_kwargs(kw))
    r.request.read()  # a multipart request is a stream; the checks read it for their report
    report.cases += 1
    report.statuses[r.status_code] += 1
    label = f"{op.method.upper()} {op.path} [{mode}] -> {r.status_code}"
    if r.status_code >= 500 and (op.method.upper(), op.path, r.status_code) not in EXPECTED_5XX:
        report.server_errors.append(f"{label}: {r.text[:300]}\n    {case.as_curl_command()[:500]}")
        return
    try:
        case.validate_response(r, checks=CHECKS, headers=headers)
    except BaseException as e:  # noqa: BLE001  (schemathesis raises an exception group of failures)
        parts = getattr(e, "exceptions", [e])
        report.kinds.update(f"{r.status_code} {type(x).__name__}" for x in parts)
        report.failures.append(f"{label}: " + "; ".join(
            f"{type(x).__name__}: {str(x).splitlines()[0][:200]}" for x in parts)
            + f"\n    {case.as_curl_command()[:400]}")


#: inputs that broke the platform before (issue 8, finding 11), sent to every principal as seeds:
#: (method, path, path parameters, query, JSON body). ``fuzzws`` is a workspace of the caller's tenant.
SEEDS = [
    ("POST", "/api/analytics/workspaces/{ws}/query", {"ws": "fuzzws"}, None, {"sql": "SELECT 'unterminated"}),
    ("POST", "/api/analytics/workspaces/{ws}/query", {"ws": "fuzzws"}, None, {"sql": "SELECT * FROM t WHERE"}),
    ("POST", "/api/analytics/workspaces/{ws}/query", {"ws": "fuzzws"}, None,
     {"sql": "SELECT content FROM read_text('/proc/self/environ')"}),
    ("GET", "/api/jobs/{job_id}", {"job_id": 2**64}, None, None),
    ("GET", "/api/jobs", {}, {"limit": 2**63}, None),
    ("GET", "/api/kb/{collection}/documents", {"collection": "9" * 30}, None, None),
    ("POST", "/api/tenants", {}, None, {"name": "big", "rpm": 2**70}),
    ("POST", "/v1/chat/completions", {}, None, {"model": "echo", "messages": [{"role": "user", "content": "\ud800"}]}),
    ("POST", "/api/conversations", {}, None, {"title": "nul \x00 inside"}),
]


def run_seeds(client, headers: dict[str, str], report: Report) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    for method, path, params, query, body in SEEDS:
        op = schema[path][method]
        kw = {"path_parameters": params, "query": query}
        if body is not None:
            kw.update(body=body, media_type="application/json")
        send_and_check(client, headers, report, op.Case(**kw), "seed")


def fuzz(client, headers: dict[str, str], report: Report, *, skip: set[tuple[str, str]] = frozenset()) -> Report:
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    schema.config.generation.update(max_examples=EXAMPLES, with_security_parameters=False, allow_x00=True)
    spec = client.app.openapi()
    deadline = time.monotonic() + BUDGET_S
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in skip:
            continue
        report.operations += 1
        t_op = time.monotonic()
        modes = [GenerationMode.POSITIVE]
        if _can_be_invalid(spec["paths"][op.path][op.method.lower()]):
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            if time.monotonic() > deadline:
                report.out_of_time = True
                return report

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(op.as_strategy(generation_mode=mode))
            def one(case):
                send_and_check(client, headers, report, case, mode.value)
            try:
                one()
            except Unsatisfiable:
                pass  # negative mode of an operation without parameters: nothing can be invalid
        report.seconds[f"{op.method.upper()} {op.path}"] += time.monotonic() - t_op
    return report


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory):
    with isolated_env(tmp_path_factory.mktemp("fuzz") / "home") as settings_:
        settings_.kb_sync_roots = [str(tmp_path_factory.mktemp("fuzz-sync"))]  # a real, empty sync root
        platform = make_platform(settings_)
        # a 500 must come back as a response to count, not as an exception in the test client
        with TestClient(create_app(platform, warm_default=False), raise_server_exceptions=False) as c:
            yield c


#: operations a fuzzer must not drive blind: sign-in is throttled per client address on purpose
#: (random passwords would lock the test client out; tests/security/test_roles.py covers it)
NOT_FUZZED: set[tuple[str, str]] = set()


@pytest.mark.slow
def test_fuzz_as_a_member_then_the_operator(fuzz_client, capsys):
    """No 5xx and responses as declared, for a tenant member and for the operator."""
    tenant = make_tenant(fuzz_client, "fuzzers")
    # an API key, not the console session: the fuzzer calls /api/auth/logout, which ends a session
    k = fuzz_client.post("/api/keys", headers=tenant.member, json={"name": "fuzzing member"})
    assert k.status_code == 201, k.text
    member = {"Authorization": f"Bearer {k.json()['key']}"}
    reports = {}
    for who, headers in (("member", member), ("operator", OP)):
        r = fuzz_client.post("/api/analytics/workspaces", headers=headers, json={"name": "fuzzws"})
        assert r.status_code == 201, r.text
        r = fuzz_client.post("/api/analytics/workspaces/fuzzws/datasets", headers=headers, data={"name": "t"},
                             files={"file": ("t.csv", b"x,y\n1,2\n", "text/csv")})
        assert r.status_code == 201, r.text
        reports[who] = report = Report()
        run_seeds(fuzz_client, dict(headers), report)
        fuzz(fuzz_client, dict(headers), report, skip=NOT_FUZZED)
    with capsys.disabled():
        for who, rep in reports.items():
            print("\n" + rep.summary(who))
            print("  slowest: " + ", ".join(f"{k} {v:.1f}s" for k, v in rep.seconds.most_common(8)))
            for e in rep.server_errors[:20]:
                print("  5xx: " + e)
    problems = [f"[{who}] {p}" for who, rep in reports.items() for p in rep.server_errors + rep.failures]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:60])
    assert all(rep.cases > 0 for rep in reports.values())


def test_every_operation_declares_its_errors_with_the_error_body():
    """Not one operation is left with FastAPI's 422 (this app answers 400) or no error codes."""
    import tempfile

    with tempfile.TemporaryDirectory() as home, isolated_env(home) as s:
        spec = create_app(make_platform(s), warm_default=False).openapi()
    bare = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            assert "422" not in codes, (method, path)
            errors = {c for c in codes if c[0] in "45"}
            if path not in ("/healthz", "/api/console/pages", "/api/analytics/demo-datasets") and not errors:
                bare.append(f"{method.upper()} {path}")
            for c in errors - ({"503"} if path == "/readyz" else set()):  # readiness names its problems
                ref = op["responses"][c]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorBody", (method, path, c)
    assert not bare, f"operations without declared error codes: {bare}"
    assert "request_id" in spec["components"]["schemas"]["ErrorDetail"]["properties"]
