"""Metering: one row per request, aggregated per tenant / key / model / day on read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from zhinao.errors import InvalidRequest
from zhinao.store.db import Database
from zhinao.store.models import ApiKey, Tenant, UsageRecord

#: ``endpoint`` names the capability for model calls made by one (``kb.chat``, ``kb.condense``)
GROUPS = ("day", "model", "tenant", "key", "endpoint")


@dataclass
class UsageEvent:
    tenant_id: int
    key_id: int | None
    user_id: int | None
    model: str
    endpoint: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    ttft_ms: float | None = None
    status: int = 200


def today() -> date:
    return datetime.now(timezone.utc).date()


class UsageService:
    def __init__(self, db: Database):
        self.db = db

    def record(self, ev: UsageEvent) -> None:
        with self.db.session() as s:
            s.add(UsageRecord(tenant_id=ev.tenant_id, key_id=ev.key_id, user_id=ev.user_id, model=ev.model,
                              endpoint=ev.endpoint, day=today(), prompt_tokens=ev.prompt_tokens,
                              completion_tokens=ev.completion_tokens, latency_ms=ev.latency_ms,
                              ttft_ms=ev.ttft_ms, status=ev.status))

    def used_today(self, scope: str, scope_id: int) -> int:
        """Tokens used today by a tenant (``scope='t'``) or a key (``'k'``)."""
        col = UsageRecord.tenant_id if scope == "t" else UsageRecord.key_id
        with self.db.session() as s:
            v = s.scalar(select(func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0))
                         .where(col == scope_id, UsageRecord.day == today()))
            return int(v or 0)

    def query(self, *, tenant_id: int | None, days: int = 30, group_by: str = "day",
              key_id: int | None = None) -> dict[str, Any]:
        groups = [g.strip() for g in group_by.split(",") if g.strip()]
        bad = [g for g in groups if g not in GROUPS]
        if bad or not groups:
            raise InvalidRequest(f"group_by must be a comma-separated subset of {', '.join(GROUPS)}", param="group_by")
        if not 1 <= days <= 3660:
            raise InvalidRequest("days must be between 1 and 3660", param="days")
        since = today() - timedelta(days=days - 1)
        cols = {"day": UsageRecord.day, "model": UsageRecord.model, "tenant": Tenant.name, "key": ApiKey.name,
                "endpoint": UsageRecord.endpoint}
        sel = [cols[g].label(g) for g in groups]
        metrics = [func.count().label("requests"),
                   func.coalesce(func.sum(UsageRecord.prompt_tokens), 0).label("prompt_tokens"),
                   func.coalesce(func.sum(UsageRecord.completion_tokens), 0).label("completion_tokens"),
                   func.coalesce(func.avg(UsageRecord.latency_ms), 0).label("avg_latency_ms")]
        q = (select(*sel, *metrics).select_from(UsageRecord)
             .join(Tenant, Tenant.id == UsageRecord.tenant_id)
             .outerjoin(ApiKey, ApiKey.id == UsageRecord.key_id)
             .where(UsageRecord.day >= since))
        if tenant_id is not None:
            q = q.where(UsageRecord.tenant_id == tenant_id)
        if key_id is not None:
            q = q.where(UsageRecord.key_id == key_id)
        q = q.group_by(*[cols[g] for g in groups]).order_by(*[cols[g] for g in groups])
        rows = []
        tot = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        with self.db.session() as s:
            for r in s.execute(q):
                d = dict(r._mapping)
                if "day" in d and d["day"] is not None:
                    d["day"] = d["day"].isoformat() if hasattr(d["day"], "isoformat") else str(d["day"])
                for k in ("requests", "prompt_tokens", "completion_tokens"):
                    d[k] = int(d[k])
                d["total_tokens"] = d["prompt_tokens"] + d["completion_tokens"]
                d["avg_latency_ms"] = round(float(d["avg_latency_ms"]), 1)
                for k in tot:
                    tot[k] += d[k]
                rows.append(d)
        lat_weight = sum(r["avg_latency_ms"] * r["requests"] for r in rows)
        tot["avg_latency_ms"] = round(lat_weight / tot["requests"], 1) if tot["requests"] else 0.0
        return {"rows": rows, "totals": tot, "since": since.isoformat(), "group_by": groups}
