"""Docs that cannot rot: every setting, backend and router is documented."""

from __future__ import annotations

from pathlib import Path

from zhinao.runtime.registry import backend_names
from zhinao.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented():
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [n for n in Settings.model_fields if f"ZHINAO_{n.upper()}" not in doc]
    assert not missing, f"document these settings in docs/configuration.md: {missing}"


def test_every_chat_backend_is_in_the_architecture_doc():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [b for b in backend_names() if b not in doc]
    assert not missing, f"document these backends in docs/architecture.md: {missing}"


def test_readme_has_both_commands_in_both_languages():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in readme and "make test" in readme
    assert "两条命令" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
