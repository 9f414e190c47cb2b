"""Zip inspection before parsing: refuse decompression bombs on the central directory alone.

DOCX, PPTX and XLSX files are zips. A 2.4 MB DOCX whose ``word/document.xml`` is 1 GB of
repeated bytes parses for minutes and takes gigabytes; so does an XLSX whose sheet unpacks
a thousandfold. Every limit here is checked on the sizes the archive *declares* in its
central directory, before one byte is inflated:

- member count (a zip of 100,000 empty members costs seconds of bookkeeping);
- uncompressed size per member and in total;
- the compression ratio of each member larger than a grace size (text XML compresses
  5-20x, a bomb about 1000x).

Why the declared sizes can be trusted: Python's :mod:`zipfile`, which python-docx,
python-pptx, openpyxl and pandas read through, stops every member at the size its
central-directory entry declares (``ZipExtFile`` truncates, then fails the CRC). A member
that lies about its size therefore yields at most what it declared. The central directory
is walked here with the same rules ``zipfile`` uses (same end record, same zip64 fields),
without building an object per member, and the walk stops at the first member over a
limit.

Archives nested inside (an XLSX embedded in a DOCX) are opened, up to ``max_depth``, and
their sizes count against the same totals; their inflation is bounded by the member limit
already checked.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from zhinao.errors import InvalidRequest, PayloadTooLarge

MB = 1024 * 1024

#: member names that are archives themselves (embedded office files, plain zips)
NESTED_SUFFIXES = (".zip", ".docx", ".docm", ".xlsx", ".xlsm", ".pptx", ".pptm", ".odt", ".ods", ".odp", ".jar",
                   ".epub")


class ArchiveRejected(PayloadTooLarge):
    """413: the archive would unpack beyond a limit (refused before it was unpacked)."""

    code = "archive_too_large"


@dataclass(frozen=True)
class ArchiveLimits:
    """What one uploaded archive may unpack to (``ZHINAO_ARCHIVE_*`` settings)."""

    max_unpacked_bytes: int = 256 * MB
    max_member_bytes: int = 128 * MB
    max_members: int = 10_000
    max_ratio: float = 100.0
    #: members smaller than this (uncompressed) are not ratio-checked: short XML compresses well
    ratio_grace_bytes: int = 1 * MB
    max_depth: int = 2

    @classmethod
    def from_settings(cls, settings: Any) -> "ArchiveLimits":
        """The limits configured in :class:`zhinao.settings.Settings` (defaults where unset)."""
        values = {}
        for name in ("max_unpacked_bytes", "max_member_bytes", "max_members", "max_ratio"):
            v = getattr(settings, f"archive_{name}", None)
            if v is not None:
                values[name] = v
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class ArchiveStats:
    """What the central directory declared (for logs, tests and the benchmark)."""

    members: int = 0
    unpacked_bytes: int = 0
    packed_bytes: int = 0
    max_ratio: float = 0.0
    nested: list[str] = field(default_factory=list)


def is_zip(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04" or zipfile.is_zipfile(io.BytesIO(data))


def _mb(n: float) -> str:
    return f"{n / MB:.0f}" if n >= 10 * MB else f"{n / MB:.1f}"


def inspect_zip(data: bytes, filename: str, limits: ArchiveLimits | None = None, *,
                nested: bool = True) -> ArchiveStats:
    """Check ``data`` (a zip) against ``limits`` before anything is decompressed.

    Args:
        data: the file's bytes.
        filename: named in every message.
        nested: also open archives found inside (inflating them, within the member limit).

    Returns:
        The declared sizes.

    Raises:
        ArchiveRejected: over a limit (413, the message names the member and the limit).
        InvalidRequest: not a readable zip (corrupted central directory).
    """
    limits = limits or ArchiveLimits()
    stats = ArchiveStats()
    _inspect(data, filename, limits, stats, depth=0, where="", nested=nested)
    return stats


def _inspect(data: bytes, filename: str, limits: ArchiveLimits, stats: ArchiveStats, *, depth: int, where: str,
             nested: bool) -> None:
    inner: list[str] = []
    for name, packed, unpacked in _central_directory(data, filename, limits.max_members - stats.members):
        shown = f"{where}{name}"
        stats.members += 1
        if stats.members > limits.max_members:
            raise ArchiveRejected(f"{filename}: the archive has more than {limits.max_members} members; refused "
                                  "before unpacking (a zip bomb, or not a real office file)", code="too_many_members")
        if unpacked > limits.max_member_bytes:
            raise ArchiveRejected(f"{filename}: member {shown!r} unpacks to {_mb(unpacked)} MB, more than the "
                                  f"{_mb(limits.max_member_bytes)} MB allowed per member; refused before unpacking",
                                  code="unpacked_too_large")
        ratio = unpacked / max(packed, 1)
        stats.max_ratio = max(stats.max_ratio, ratio if unpacked >= limits.ratio_grace_bytes else 0.0)
        if unpacked >= limits.ratio_grace_bytes and ratio > limits.max_ratio:
            raise ArchiveRejected(f"{filename}: member {shown!r} would expand {ratio:.0f}x ({_mb(unpacked)} MB from "
                                  f"{packed / 1024:.0f} KB; at most {limits.max_ratio:.0f}x is allowed): a "
                                  "decompression bomb, refused before unpacking", code="compression_ratio")
        stats.unpacked_bytes += unpacked
        stats.packed_bytes += packed
        if stats.unpacked_bytes > limits.max_unpacked_bytes:
            raise ArchiveRejected(f"{filename}: the file unpacks to more than {_mb(limits.max_unpacked_bytes)} MB "
                                  f"(at least {_mb(stats.unpacked_bytes)} MB from {_mb(len(data))} MB); refused "
                                  "before unpacking. Split it into smaller files", code="unpacked_too_large")
        if nested and PurePath(name).suffix.lower() in NESTED_SUFFIXES and unpacked:
            inner.append(name)
    if not inner:
        return
    if depth + 1 > limits.max_depth:
        raise ArchiveRejected(f"{filename}: archives nested more than {limits.max_depth} deep "
                              f"({where}{inner[0]!r}); refused", code="nested_archive")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise InvalidRequest(f"{filename}: the archive is corrupted: {e}", code="corrupt_file") from e
    with zf:
        for name in inner:
            try:
                blob = zf.read(name)  # bounded: its declared size passed the member limit above
            except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError, RuntimeError) as e:
                raise InvalidRequest(f"{filename}: member {where}{name!r} is corrupted: {e}",
                                     code="corrupt_file") from e
            if blob[:4] != b"PK\x03\x04":
                continue  # named like an archive, but is not one: the parser ignores it anyway
            stats.nested.append(f"{where}{name}")
            _inspect(blob, filename, limits, stats, depth=depth + 1, where=f"{where}{name}/", nested=nested)


def _central_directory(data: bytes, filename: str, budget: int):
    """Yield ``(name, compressed, uncompressed)`` per central-directory entry, as zipfile reads them.

    Stops after ``budget + 1`` entries: the caller refuses the archive at that point, so a
    zip of a million members costs one pass over at most ``budget`` entries.
    """
    fp = io.BytesIO(data)
    try:
        endrec = zipfile._EndRecData(fp)  # the very end record zipfile itself will use
    except OSError as e:
        raise InvalidRequest(f"{filename}: not a readable zip archive: {e}", code="corrupt_file") from e
    if not endrec:
        raise InvalidRequest(f"{filename}: not a zip archive (no end-of-central-directory record)",
                             code="corrupt_file")
    size_cd, offset_cd = endrec[zipfile._ECD_SIZE], endrec[zipfile._ECD_OFFSET]
    concat = endrec[zipfile._ECD_LOCATION] - size_cd - offset_cd
    if endrec[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
        concat -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
    start = concat + offset_cd
    if start < 0 or start + size_cd > len(data):
        raise InvalidRequest(f"{filename}: the zip's central directory points outside the file (corrupted)",
                             code="corrupt_file")
    pos, end, n = start, start + size_cd, 0
    fixed = zipfile.sizeCentralDir
    while pos < end:
        head = data[pos:pos + fixed]
        if len(head) != fixed or head[:4] != zipfile.stringCentralDir:
            raise InvalidRequest(f"{filename}: the zip's central directory is corrupted", code="corrupt_file")
        cd = struct.unpack(zipfile.structCentralDir, head)
        name_len, extra_len, comment_len = (cd[zipfile._CD_FILENAME_LENGTH], cd[zipfile._CD_EXTRA_FIELD_LENGTH],
                                            cd[zipfile._CD_COMMENT_LENGTH])
        name_raw = data[pos + fixed:pos + fixed + name_len]
        extra = data[pos + fixed + name_len:pos + fixed + name_len + extra_len]
        packed, unpacked = cd[zipfile._CD_COMPRESSED_SIZE], cd[zipfile._CD_UNCOMPRESSED_SIZE]
        if packed == 0xFFFFFFFF or unpacked == 0xFFFFFFFF:
            unpacked, packed = _zip64_sizes(extra, unpacked, packed)
        flags = cd[zipfile._CD_FLAG_BITS]
        name = name_raw.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        yield name, packed, unpacked
        n += 1
        if n > budget:
            return
        pos += fixed + name_len + extra_len + comment_len


def _zip64_sizes(extra: bytes, unpacked: int, packed: int) -> tuple[int, int]:
    """The 64-bit sizes of the zip64 extra field (id 1), in zipfile's order: uncompressed, compressed."""
    i = 0
    while i + 4 <= len(extra):
        tp, ln = struct.unpack("<HH", extra[i:i + 4])
        if tp == 1:
            body, j = extra[i + 4:i + 4 + ln], 0
            if unpacked == 0xFFFFFFFF and j + 8 <= len(body):
                unpacked, j = struct.unpack("<Q", body[j:j + 8])[0], j + 8
            if packed == 0xFFFFFFFF and j + 8 <= len(body):
                packed = struct.unpack("<Q", body[j:j + 8])[0]
            break
        i += 4 + ln
    return unpacked, packed
