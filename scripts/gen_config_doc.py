"""Regenerate docs/configuration.md from zhinao.settings.Settings (tests/test_docs.py checks it)."""

from pathlib import Path

from zhinao.settings import Settings

lines = ["# Configuration / 配置", "",
         "Every setting is an environment variable with the `ZHINAO_` prefix (or a line in `.env`).",
         "`tests/test_docs.py` fails when a setting is missing here; regenerate with "
         "`.venv/bin/python scripts/gen_config_doc.py`.", "",
         "| variable | default | meaning |", "| --- | --- | --- |"]
for name, f in Settings.model_fields.items():
    default = "~/.zhinao" if name == "home" else f.default
    lines.append(f"| `ZHINAO_{name.upper()}` | `{default}` | {f.description} |")
Path(__file__).resolve().parent.parent.joinpath("docs", "configuration.md").write_text("\n".join(lines) + "\n")
