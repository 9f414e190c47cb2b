"""A/B experiments: a share of a tenant's chat traffic goes to a candidate model, compared, rolled back.

Why here (MaaS) and not in the alignment capability: the split happens where every model
call is resolved (:class:`zhinao.maas.generation.GenerationService` asks :meth:`arm`), so
the console, /v1 and the capabilities' own calls all obey one experiment, and the turn log
records the model that really answered (``ChatTurn.model``) — the only fact the comparison
needs. Any two registered models can be compared; an aligned model deployed with
``zhinao align deploy`` is the usual candidate.

Assignment is deterministic: ``sha256("<experiment id>:<unit>")`` mapped to [0, 1) against
``share``, where the unit is the conversation (console) or else the user or API key (/v1,
which has no conversation). So one conversation stays on one arm for its whole life, the
arms are independent of the order requests arrive in, and raising the share only moves
units from base to candidate (never back). A new experiment draws a new split.

:meth:`compare` counts, per arm, the turns answered during the experiment, the rated ones
and the 👍 rate with a Wilson 95% interval, and the candidate-minus-base difference with
Newcombe's hybrid score interval (built from the two Wilson intervals; it behaves at 0 and
100% and with few ratings, where the Wald interval does not). :meth:`rollback` ends the
experiment at once: the next request for the base model is served by the base model.
No HTTP here; the routes (admin-only, audited by the gateway's middleware) are in
:mod:`zhinao.gateway.api.experiments`.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select

from zhinao.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from zhinao.store.db import Database, utcnow
from zhinao.store.models import ChatTurn, Experiment, Feedback, Tenant

Z95 = 1.959963984540054
RUNNING = "running"
ENDED_STATES = ("ended", "rolled_back")
BASE, CANDIDATE = "base", "candidate"


def bucket(experiment_id: int, unit: str) -> float:
    """Where ``unit`` falls in [0, 1) for this experiment (uniform, stable across processes)."""
    h = hashlib.sha256(f"{experiment_id}:{unit}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def unit_of(conversation_id: int | None, user_id: int | None, key_id: int | None) -> str | None:
    """What keeps one arm: the conversation, else the user, else the API key; None = nothing stable."""
    if conversation_id is not None:
        return f"c{conversation_id}"
    if user_id is not None:
        return f"u{user_id}"
    if key_id is not None:
        return f"k{key_id}"
    return None


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when nothing was observed."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Interval of p2 - p1 (Newcombe 1998, method 10: hybrid score from the Wilson intervals)."""
    p1 = x1 / n1 if n1 else 0.0
    p2 = x2 / n2 if n2 else 0.0
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p2 - p1
    lo = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    hi = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return (max(-1.0, lo), min(1.0, hi))


def _ts(v: datetime | None) -> str | None:
    return v.isoformat() if v else None


def _dict(e: Experiment) -> dict[str, Any]:
    return {"id": e.id, "tenant_id": e.tenant_id, "name": e.name, "base": e.base, "candidate": e.candidate,
            "share": e.share, "status": e.status, "created_by": e.created_by, "started_at": _ts(e.started_at),
            "updated_at": _ts(e.updated_at), "ended_at": _ts(e.ended_at)}


def _check_share(share: Any) -> float:
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not math.isfinite(share) \
            or not 0.0 <= float(share) <= 1.0:
        raise InvalidRequest(f"share must be a number from 0 to 1 (the candidate's part of the traffic), "
                             f"got {share!r}", param="share")
    return float(share)


class ExperimentService:
    """Experiments in the core store. ``models``: the ModelManager, to check and canonicalise names."""

    def __init__(self, db: Database, models: Any = None):
        self.db = db
        self.models = models

    # -- administration -----------------------------------------------------------------------
    def _canonical(self, name: str, param: str) -> str:
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequest(f"{param} must be a model name", param=param)
        if self.models is None:
            return name
        if name not in self.models:
            raise NotFound(f"model {name!r} ({param}) is not registered; registered: "
                           f"{', '.join(self.models.names())}", param=param)
        return self.models.canonical(name)

    def start(self, tenant_id: int, base: str, candidate: str, share: float, *, name: str = "",
              created_by: int | None = None) -> dict[str, Any]:
        """Start an experiment; one runs per tenant at a time (end or roll back the other first).

        Raises:
            InvalidRequest: share outside 0..1, base equal to candidate.
            NotFound: an unknown model or tenant.
            PermissionDenied: a model not granted to the tenant.
            Conflict: an experiment is already running for the tenant.
        """
        share = _check_share(share)
        base_c, cand_c = self._canonical(base, "base"), self._canonical(candidate, "candidate")
        if base_c == cand_c:
            raise InvalidRequest(f"base and candidate are the same model ({base_c!r}); name two models",
                                 param="candidate")
        with self.db.session() as s:
            tenant = s.get(Tenant, tenant_id) if -2**63 <= tenant_id < 2**63 else None
            if tenant is None:
                raise NotFound(f"tenant {tenant_id} not found", param="tenant_id")
            for m, param in ((base_c, "base"), (cand_c, "candidate")):
                if tenant.models is not None and m not in tenant.models:
                    raise PermissionDenied(f"model {m!r} ({param}) is not granted to tenant {tenant.name!r}; the "
                                           "operator grants it first", code="model_not_granted")
            running = s.scalar(select(Experiment).where(Experiment.tenant_id == tenant_id,
                                                        Experiment.status == RUNNING))
            if running is not None:
                raise Conflict(f"experiment {running.id} ({running.base} vs {running.candidate}) is already running "
                               "for this tenant; roll it back or end it first")
            now = utcnow()
            e = Experiment(tenant_id=tenant_id, name=name[:100], base=base_c, candidate=cand_c, share=share,
                           status=RUNNING, created_by=created_by, started_at=now, updated_at=now)
            s.add(e)
            s.flush()
            return _dict(e)

    def _row(self, s: Any, tenant_id: int, experiment_id: int | None) -> Experiment:
        q = select(Experiment).where(Experiment.tenant_id == tenant_id)
        if experiment_id is not None:
            e = s.scalar(q.where(Experiment.id == experiment_id))
            if e is None:
                raise NotFound(f"experiment {experiment_id} not found in this tenant", param="experiment_id")
            return e
        e = s.scalar(q.order_by((Experiment.status == RUNNING).desc(), Experiment.id.desc()).limit(1))
        if e is None:
            raise NotFound("this tenant has no experiment; start one (zhinao align ab start, POST /api/experiments)")
        return e

    def get(self, tenant_id: int, experiment_id: int | None = None) -> dict[str, Any]:
        """One experiment of the tenant (by id; else the running one, else the latest)."""
        with self.db.session() as s:
            return _dict(self._row(s, tenant_id, experiment_id))

    def list(self, tenant_id: int | None = None) -> list[dict[str, Any]]:
        """A tenant's experiments, newest first (``None``: every tenant's, for the operator)."""
        with self.db.session() as s:
            q = select(Experiment).order_by(Experiment.id.desc())
            if tenant_id is not None:
                q = q.where(Experiment.tenant_id == tenant_id)
            return [_dict(e) for e in s.scalars(q)]

    def tenant_of(self, experiment_id: int) -> int | None:
        """The tenant an experiment belongs to (the operator's routes act on any tenant's)."""
        with self.db.session() as s:
            e = s.get(Experiment, experiment_id)
            return e.tenant_id if e is not None else None

    def set_share(self, tenant_id: int, share: float, experiment_id: int | None = None) -> dict[str, Any]:
        share = _check_share(share)
        with self.db.session() as s:
            e = self._row(s, tenant_id, experiment_id)
            if e.status != RUNNING:
                raise Conflict(f"experiment {e.id} has {e.status.replace('_', ' ')}; start a new one")
            e.share, e.updated_at = share, utcnow()
            s.flush()
            return _dict(e)

    def end(self, tenant_id: int, experiment_id: int | None = None, *, status: str = "ended") -> dict[str, Any]:
        """Stop the experiment: share 0, ``status`` ended or rolled_back; base serves every request."""
        if status not in ENDED_STATES:
            raise InvalidRequest(f"status must be one of {', '.join(ENDED_STATES)}", param="status")
        with self.db.session() as s:
            e = self._row(s, tenant_id, experiment_id)
            if e.status == RUNNING:
                now = utcnow()
                e.share, e.status, e.updated_at, e.ended_at = 0.0, status, now, now
                s.flush()
            return _dict(e)

    def rollback(self, tenant_id: int, experiment_id: int | None = None) -> dict[str, Any]:
        """One click back: the candidate gets no more traffic (a no-op on an ended experiment)."""
        return self.end(tenant_id, experiment_id, status="rolled_back")

    # -- the generation path -------------------------------------------------------------------
    def running(self, tenant_id: int) -> dict[str, Any] | None:
        with self.db.session() as s:
            e = s.scalar(select(Experiment).where(Experiment.tenant_id == tenant_id, Experiment.status == RUNNING))
            return _dict(e) if e is not None else None

    def arm(self, tenant_id: int, model: str, *, conversation_id: int | None = None, user_id: int | None = None,
            key_id: int | None = None) -> str | None:
        """The candidate's name if this request for canonical ``model`` belongs to the candidate arm, else None."""
        e = self.running(tenant_id)
        if e is None or e["base"] != model or e["share"] <= 0.0:
            return None
        unit = unit_of(conversation_id, user_id, key_id)
        if unit is None:
            return None
        return e["candidate"] if bucket(e["id"], unit) < e["share"] else None

    # -- comparison ----------------------------------------------------------------------------
    def compare(self, tenant_id: int, experiment_id: int | None = None) -> dict[str, Any]:
        """Per arm: turns, rated turns, 👍 count and rate with its Wilson 95% interval; the difference.

        A turn counts for an arm when it was answered by that arm's model for this tenant while
        the experiment ran; a turn rated by several people counts once, 👍 when the mean rating
        is positive.
        """
        with self.db.session() as s:
            e = self._row(s, tenant_id, experiment_id)
            exp = _dict(e)
            window = [ChatTurn.tenant_id == tenant_id, ChatTurn.created_at >= e.started_at]
            if e.ended_at is not None:
                window.append(ChatTurn.created_at <= e.ended_at)
            arms: dict[str, dict[str, Any]] = {}
            for arm, model in ((BASE, e.base), (CANDIDATE, e.candidate)):
                turn_ids = list(s.scalars(select(ChatTurn.id).where(and_(*window, ChatTurn.model == model))))
                ratings: dict[int, list[int]] = {}
                for tid, r in s.execute(select(Feedback.turn_id, Feedback.rating).where(
                        Feedback.tenant_id == tenant_id, Feedback.turn_id.in_(turn_ids),
                        Feedback.rating.is_not(None))) if turn_ids else ():
                    ratings.setdefault(tid, []).append(int(r))
                n = len(ratings)
                up = sum(1 for rs in ratings.values() if sum(rs) > 0)
                lo, hi = wilson(up, n)
                arms[arm] = {"model": model, "turns": len(turn_ids), "rated": n, "thumbs_up": up,
                             "thumbs_down": n - up, "up_rate": round(up / n, 4) if n else None,
                             "ci95": [round(lo, 4), round(hi, 4)]}
        b, c = arms[BASE], arms[CANDIDATE]
        diff: dict[str, Any] = {"candidate_minus_base": None, "ci95": None, "significant": False}
        if b["rated"] and c["rated"]:
            lo, hi = newcombe(b["thumbs_up"], b["rated"], c["thumbs_up"], c["rated"])
            diff = {"candidate_minus_base": round(c["up_rate"] - b["up_rate"], 4), "ci95": [round(lo, 4), round(hi, 4)],
                    "significant": lo > 0 or hi < 0}
        return {"experiment": exp, "arms": arms, "difference": diff}
