"""Job and run records never show a client the server's paths (finding 12: error text without internals).

A handler's exception text becomes the job's ``error``; exceptions from libraries often name files
under ZHINAO_HOME or the install prefix. The record a client reads is scrubbed like a 4xx body.
"""

from __future__ import annotations

from two_tenants import OP

from zhinao.store.jobs import job_handler


_FILE: dict[str, str] = {}


@job_handler("test.leaky")
def _leaky(ctx, params):
    raise OSError(f"cannot open {_FILE['path']}: permission denied")  # as a library's exception would


def test_a_failed_jobs_error_does_not_show_server_paths(client, platform, tenants):
    a, _ = tenants
    secret = str(platform.settings.home / "kb" / "blobs" / "ab" / "other-tenants-file.pdf")
    _FILE["path"] = secret
    jid = platform.jobs.submit("test.leaky", {}, tenant_id=a.id)
    job = platform.jobs.wait(jid, timeout=20)
    assert job["status"] == "failed" and secret in job["error"]  # the store keeps the full text (the log too)
    for headers in (a.admin, OP):
        one = client.get(f"/api/jobs/{jid}", headers=headers)
        assert one.status_code == 200, one.text
        listed = client.get("/api/jobs", headers=headers).json()
        for body in (one.text, str(listed)):
            assert str(platform.settings.home) not in body and "other-tenants-file" not in body
        assert "cannot open <server path>" in one.json()["error"]
