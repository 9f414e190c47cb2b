"""The audit log: who did what, when, from where — append-only and hash-chained. No HTTP.

Every write through the API and every operator read across tenants becomes one row
(:class:`AuditEntry`, recorded by the gateway's middleware). Rows are chained: row *n*
stores ``hash = sha256(prev_hash + canonical(row))`` where ``prev_hash`` is row *n-1*'s
hash, so changing, deleting or reordering any row breaks the chain from that row on, and
:meth:`AuditService.verify` names the first broken one. The database refuses UPDATE and
DELETE on the table (triggers, migration ``0003_audit``); the chain is what catches someone
who can drop the triggers. Someone who can rewrite *every* later row and the head can hide a
change from the chain alone, so ``zhinao audit verify`` prints the head (``seq:hash``): kept
somewhere else, it is an anchor a later verify checks (``--anchor``).

Rows never carry request secrets: the middleware keeps only allow-listed body fields (and
never the value of a field whose name looks like a secret).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import IO, Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from zhinao.errors import InvalidRequest
from zhinao.store.db import Base, Database, utcnow

GENESIS = "0" * 64
#: the fields the hash covers, i.e. everything but the hash itself (JSON names)
CHAINED = ("seq", "created_at", "tenant_id", "tenant", "target_tenant_id", "user_id", "username", "key_id", "role",
           "action", "method", "route", "path", "resource", "detail", "status", "client_ip", "request_id",
           "prev_hash")
_LENGTHS = {"tenant": 100, "username": 100, "role": 20, "action": 20, "method": 10, "route": 300, "path": 500,
            "client_ip": 64, "request_id": 64}
ACTIONS = ("write", "read", "login")


class AuditRecord(Base):
    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    tenant_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    tenant: Mapped[str | None] = mapped_column(String(100), nullable=True)
    target_tenant_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    username: Mapped[str | None] = mapped_column(String(100), nullable=True)
    key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    role: Mapped[str | None] = mapped_column(String(20), nullable=True)
    action: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(10))
    route: Mapped[str] = mapped_column(String(300))
    path: Mapped[str] = mapped_column(String(500))
    resource: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row (id 1): the last sequence number and hash; every append updates it first."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


@dataclass
class AuditEntry:
    """One audited request, as the gateway saw it."""

    action: str  #: write | read | login
    method: str
    route: str  #: the route template (``/api/users/{user_id}``)
    path: str
    status: int
    tenant_id: int | None = None
    tenant: str | None = None
    target_tenant_id: int | None = None  #: the tenant acted on (defaults to the actor's)
    user_id: int | None = None
    username: str | None = None
    key_id: int | None = None
    role: str | None = None
    resource: dict[str, Any] = field(default_factory=dict)  #: path ids, the created id
    detail: dict[str, Any] = field(default_factory=dict)  #: body field names, allow-listed values
    client_ip: str | None = None
    request_id: str | None = None


def _ts(v: Any) -> str:
    return v.strftime("%Y-%m-%dT%H:%M:%S.%f") if isinstance(v, datetime) else str(v)


def _json_stable(v: Any) -> Any:
    """What a JSON column gives back (tuples become lists, odd types strings)."""
    return json.loads(json.dumps(v, ensure_ascii=False, default=str)) if v is not None else None


def canonical(row: dict[str, Any]) -> str:
    """The chained fields of a row as compact, key-sorted JSON (what the hash covers)."""
    d = {k: row.get(k) for k in CHAINED}
    d["created_at"] = _ts(d["created_at"])
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(row: dict[str, Any]) -> str:
    """sha256(prev_hash + canonical row), hex."""
    return hashlib.sha256((row["prev_hash"] + canonical(row)).encode("utf-8")).hexdigest()


def row_dict(r: AuditRecord) -> dict[str, Any]:
    d = {k: getattr(r, k) for k in CHAINED}
    d["created_at"] = _ts(r.created_at)
    d["hash"] = r.hash
    return d


def verify_rows(rows: Iterable[dict[str, Any]], *, contiguous: bool = True, from_start: bool = False,
                head: tuple[int, str] | None = None, anchor: tuple[int, str] | None = None) -> dict[str, Any]:
    """Check a sequence of rows (from the database or an exported file), in ``seq`` order.

    Args:
        contiguous: the rows are an unbroken stretch of the chain (the whole log, or an export
            ``--since``): links between rows are checked too. False for a filtered export
            (``--tenant``), where only each row's own hash can be checked.
        from_start: the rows must begin at row 1, from the genesis hash (the whole log).
        head: the stored (seq, hash) of the last row; a chain that ends earlier lost its tail.
        anchor: a (seq, hash) recorded earlier; the row with that seq must still have that hash.

    Returns:
        ``{"ok", "rows", "first_broken": {"seq", "reason"} | None, "head": {"seq", "hash"} | None}``
    """
    n, prev, expected_seq, last = 0, None, None, None
    anchor_seen = anchor is None

    def broken(seq: Any, reason: str) -> dict[str, Any]:
        return {"ok": False, "rows": n, "first_broken": {"seq": seq, "reason": reason},
                "head": {"seq": last[0], "hash": last[1]} if last else None}

    for r in rows:
        seq = r.get("seq")
        if contiguous:
            if expected_seq is None and from_start and (seq != 1 or r.get("prev_hash") != GENESIS):
                return broken(1, "the log does not start at row 1 from the genesis hash (rows were removed)")
            if expected_seq is not None and seq != expected_seq:
                return broken(expected_seq, f"row {expected_seq} is missing (the next row is {seq})")
            if prev is not None and r.get("prev_hash") != prev:
                return broken(seq, f"row {seq} does not link to row {seq - 1} (a row before it was changed "
                                   "or replaced)")
        if row_hash(r) != r.get("hash"):
            return broken(seq, f"row {seq} was altered: its content does not match its hash")
        if anchor is not None and seq == anchor[0]:
            if r.get("hash") != anchor[1]:
                return broken(seq, f"row {seq} no longer has the anchored hash {anchor[1][:16]}…")
            anchor_seen = True
        n += 1
        prev, expected_seq, last = r["hash"], seq + 1, (seq, r["hash"])
    if head is not None and contiguous:
        if (last or (0, GENESIS)) != tuple(head):
            end = last[0] if last else 0
            return broken(end + 1, f"the chain ends at row {end} but the head says {head[0]}: "
                                   "rows at the end were removed")
    if not anchor_seen:
        return broken(anchor[0], f"the anchored row {anchor[0]} is not in the log")
    return {"ok": True, "rows": n, "first_broken": None, "head": {"seq": last[0], "hash": last[1]} if last else None}


def parse_time(value: str | None, param: str) -> datetime | None:
    """An ISO date (``2026-12-01``, midnight UTC) or date-time (``2026-12-01T08:00:00``, UTC)."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{param} must be an ISO date or date-time such as 2026-12-01 or "
                             "2026-12-01T08:00:00Z", param=param) from None
    if t.tzinfo is not None:
        t = (t - t.utcoffset()).replace(tzinfo=None)  # stored times are naive UTC
    return t


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` (as printed by verify) -> (seq, hash)."""
    seq, _, h = text.partition(":")
    if not seq.isdigit() or len(h) != 64:
        raise InvalidRequest("an anchor is SEQ:HASH as printed by `zhinao audit verify`", param="anchor")
    return int(seq), h.lower()


class AuditService:
    """Append and read the audit log. ``record`` is safe from many threads and processes."""

    def __init__(self, db: Database):
        self.db = db

    def record(self, entry: AuditEntry) -> dict[str, Any]:
        """Append one row; returns it (with seq and hash)."""
        if entry.action not in ACTIONS:
            raise InvalidRequest(f"audit action must be one of {', '.join(ACTIONS)}", param="action")
        row = asdict(entry)
        for k, n in _LENGTHS.items():
            if isinstance(row.get(k), str):
                row[k] = row[k][:n]
        row["resource"] = _json_stable(row["resource"] or None)
        row["detail"] = _json_stable(row["detail"] or None)
        if row["target_tenant_id"] is None:
            row["target_tenant_id"] = row["tenant_id"]
        row["created_at"] = utcnow()
        with self.db.session() as s:
            # the UPDATE takes the write lock first: appends are serialised across processes
            s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
            seq, prev = s.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
            row["seq"], row["prev_hash"] = int(seq), prev
            row["hash"] = row_hash(row)
            s.add(AuditRecord(**row))
            s.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=row["hash"]))
        out = dict(row)
        out["created_at"] = _ts(out["created_at"])
        return out

    def head(self) -> dict[str, Any]:
        with self.db.session() as s:
            seq, h = s.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
            return {"seq": int(seq), "hash": h}

    def _filtered(self, q, *, tenant_id: int | None, visible_to: int | None, since: datetime | None,
                  until: datetime | None, user_id: int | None, username: str | None, action: str | None,
                  method: str | None, route: str | None, status: int | None):
        if visible_to is not None:  # a tenant admin: what their tenant did, and what was done to it
            q = q.where(or_(AuditRecord.tenant_id == visible_to, AuditRecord.target_tenant_id == visible_to))
        if tenant_id is not None:
            q = q.where(or_(AuditRecord.tenant_id == tenant_id, AuditRecord.target_tenant_id == tenant_id))
        if since is not None:
            q = q.where(AuditRecord.created_at >= since)
        if until is not None:
            q = q.where(AuditRecord.created_at < until)
        if user_id is not None:
            q = q.where(AuditRecord.user_id == user_id)
        if username:
            q = q.where(AuditRecord.username == username)
        if action:
            q = q.where(AuditRecord.action == action)
        if method:
            q = q.where(AuditRecord.method == method.upper())
        if route:
            q = q.where(AuditRecord.route.contains(route, autoescape=True))
        if status is not None:
            q = q.where(AuditRecord.status == status)
        return q

    def list(self, *, tenant_id: int | None = None, visible_to: int | None = None, since: datetime | None = None,
             until: datetime | None = None, user_id: int | None = None, username: str | None = None,
             action: str | None = None, method: str | None = None, route: str | None = None,
             status: int | None = None, before: int | None = None, limit: int = 100) -> dict[str, Any]:
        """Newest first; page with ``before`` = the previous page's ``next_before``."""
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be between 1 and 1000", param="limit")
        q = self._filtered(select(AuditRecord), tenant_id=tenant_id, visible_to=visible_to, since=since,
                           until=until, user_id=user_id, username=username, action=action, method=method,
                           route=route, status=status)
        if before is not None:
            q = q.where(AuditRecord.seq < before)
        with self.db.session() as s:
            rows = [row_dict(r) for r in s.scalars(q.order_by(AuditRecord.seq.desc()).limit(limit + 1))]
        more = len(rows) > limit
        rows = rows[:limit]
        return {"rows": rows, "next_before": rows[-1]["seq"] if more and rows else None}

    def iter_rows(self, *, since: datetime | None = None, tenant_id: int | None = None,
                  batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every matching row in chain order, read in batches (exports of any size)."""
        after = 0
        while True:
            q = self._filtered(select(AuditRecord), tenant_id=tenant_id, visible_to=None, since=since, until=None,
                               user_id=None, username=None, action=None, method=None, route=None, status=None)
            with self.db.session() as s:
                rows = [row_dict(r) for r in s.scalars(q.where(AuditRecord.seq > after)
                                                        .order_by(AuditRecord.seq).limit(batch))]
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1]["seq"]

    def export_jsonl(self, out: IO[str], *, since: datetime | None = None, tenant_id: int | None = None) -> int:
        """Write matching rows as JSON lines (chain order); returns how many."""
        n = 0
        for row in self.iter_rows(since=since, tenant_id=tenant_id):
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
        return n

    def verify(self, *, anchor: tuple[int, str] | None = None) -> dict[str, Any]:
        """Walk the whole chain; the first broken row (altered, missing, relinked) or ok."""
        h = self.head()
        return verify_rows(self.iter_rows(), from_start=True, head=(h["seq"], h["hash"]), anchor=anchor)
