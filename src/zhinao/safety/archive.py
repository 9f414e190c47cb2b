"""Zip inspection before parsing: refuse decompression bombs on the central directory alone.

DOCX, PPTX and XLSX files are zips. A 2.4 MB DOCX whose ``word/document.xml`` is 1 GB of
repeated bytes parses for minutes and takes gigabytes; so does an XLSX whose sheet unpacks
a thousandfold. Every limit here is checked on the sizes the archive *declares* in its
central directory, before one byte is inflated:

- member count (a zip of 100,000 empty members costs seconds of bookkeeping);
- uncompressed size per member and in total;
- the compression ratio of each member larger than a grace size (text XML compresses
  5-20x, a bomb about 1000x).

The central directory is walked with the same rules :mod:`zipfile` uses (same end
record, same zip64 fields), without building an object per member, and the walk stops
at the first member over a limit: the server process does only this (``deep=False``),
in milliseconds, so an obvious bomb never reaches a parser.

Declared sizes alone are not a memory bound, though: ``zipfile`` truncates a member's
*output* to its declared size, but ``ZipFile.read`` inflates the whole compressed payload
in one call first, so a member declaring 1 KB over 1 MB of compressed zeros still costs a
gigabyte. The deep check (``deep=True``, what the parser worker runs before parsing)
therefore inflates every member in bounded chunks, keeping nothing, and refuses one that
yields more than it declared; archives nested inside (an XLSX embedded in a DOCX) are
opened the same way, up to ``max_depth``, and count against the same totals.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
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
                deep: bool = True) -> ArchiveStats:
    """Check ``data`` (a zip) against ``limits`` before anything is parsed.

    Args:
        data: the file's bytes.
        filename: named in every message.
        deep: also inflate each member in bounded chunks to verify its declared size, and
            open archives nested inside (what the parser worker does; costs one inflation
            pass in constant memory). ``False``: the central directory only (milliseconds).

    Returns:
        The declared sizes.

    Raises:
        ArchiveRejected: over a limit, or a member that lies about its size (413; the
            message names the member and the limit).
        InvalidRequest: not a readable zip (corrupted central directory or member).
    """
    limits = limits or ArchiveLimits()
    stats = ArchiveStats()
    try:
        _inspect(data, filename, limits, stats, depth=0, where="", deep=deep)
    except (struct.error, zlib.error, ValueError, IndexError) as e:  # a malformed archive, never our bug to leak
        raise InvalidRequest(f"{filename}: the archive is corrupted: {e}", code="corrupt_file") from e
    return stats


@dataclass(frozen=True)
class _Entry:
    name: str
    packed: int
    unpacked: int
    method: int
    flags: int
    offset: int  #: of the local header, in ``data``


def _inspect(data: bytes, filename: str, limits: ArchiveLimits, stats: ArchiveStats, *, depth: int, where: str,
             deep: bool) -> None:
    entries: list[_Entry] = []
    for e in _central_directory(data, filename, limits.max_members - stats.members):
        shown = f"{where}{e.name}"
        stats.members += 1
        if stats.members > limits.max_members:
            raise ArchiveRejected(f"{filename}: the archive has more than {limits.max_members} members; refused "
                                  "before unpacking (a zip bomb, or not a real office file)", code="too_many_members")
        ratio = e.unpacked / max(e.packed, 1)
        stats.max_ratio = max(stats.max_ratio, ratio if e.unpacked >= limits.ratio_grace_bytes else 0.0)
        if e.unpacked >= limits.ratio_grace_bytes and ratio > limits.max_ratio:
            raise ArchiveRejected(f"{filename}: member {shown!r} would expand {ratio:.0f}x ({_mb(e.unpacked)} MB from "
                                  f"{e.packed / 1024:.0f} KB; at most {limits.max_ratio:.0f}x is allowed): a "
                                  "decompression bomb, refused before unpacking", code="compression_ratio")
        if e.unpacked > limits.max_member_bytes:
            raise ArchiveRejected(f"{filename}: member {shown!r} unpacks to {_mb(e.unpacked)} MB, more than the "
                                  f"{_mb(limits.max_member_bytes)} MB allowed per member; refused before unpacking",
                                  code="unpacked_too_large")
        stats.unpacked_bytes += e.unpacked
        stats.packed_bytes += e.packed
        if stats.unpacked_bytes > limits.max_unpacked_bytes:
            raise ArchiveRejected(f"{filename}: the file unpacks to more than {_mb(limits.max_unpacked_bytes)} MB "
                                  f"(at least {_mb(stats.unpacked_bytes)} MB from {_mb(len(data))} MB); refused "
                                  "before unpacking. Split it into smaller files", code="unpacked_too_large")
        entries.append(e)
    if not deep:
        return
    for e in entries:
        nested = PurePath(e.name).suffix.lower() in NESTED_SUFFIXES and e.unpacked > 0
        blob = _inflate(data, e, filename, where, keep=nested)
        if not nested or blob[:4] != b"PK\x03\x04":
            continue  # named like an archive but not one: the parsers ignore it anyway
        if depth + 1 > limits.max_depth:
            raise ArchiveRejected(f"{filename}: archives nested more than {limits.max_depth} deep "
                                  f"({where}{e.name!r}); refused", code="nested_archive")
        stats.nested.append(f"{where}{e.name}")
        _inspect(blob, filename, limits, stats, depth=depth + 1, where=f"{where}{e.name}/", deep=True)


_CHUNK = 1 << 20


def _inflate(data: bytes, e: _Entry, filename: str, where: str, *, keep: bool) -> bytes:
    """Inflate one member in 1 MiB steps; refuse it the moment it yields more than it declared."""
    shown = f"{where}{e.name}"
    if e.flags & 0x1:
        raise InvalidRequest(f"{filename}: member {shown!r} is encrypted; upload an unprotected file",
                             code="encrypted_file")
    head = data[e.offset:e.offset + zipfile.sizeFileHeader]
    if len(head) != zipfile.sizeFileHeader or head[:4] != zipfile.stringFileHeader:
        raise InvalidRequest(f"{filename}: member {shown!r} has no valid local header (corrupted)",
                             code="corrupt_file")
    fh = struct.unpack(zipfile.structFileHeader, head)
    start = e.offset + zipfile.sizeFileHeader + fh[zipfile._FH_FILENAME_LENGTH] + fh[zipfile._FH_EXTRA_FIELD_LENGTH]
    payload = memoryview(data)[start:start + e.packed]
    out: list[bytes] = []
    if e.method == zipfile.ZIP_STORED:
        total = len(payload)
        if keep:
            out.append(bytes(payload))
    elif e.method == zipfile.ZIP_DEFLATED:
        d, total, pos = zlib.decompressobj(-15), 0, 0
        while True:
            if d.unconsumed_tail:
                piece = d.decompress(d.unconsumed_tail, _CHUNK)
            elif pos < len(payload):
                piece = d.decompress(payload[pos:pos + _CHUNK], _CHUNK)
                pos += _CHUNK
            else:
                break
            total += len(piece)
            if total > e.unpacked:
                raise ArchiveRejected(f"{filename}: member {shown!r} unpacks to more than the {e.unpacked} bytes it "
                                      "declares: a tampered archive (a decompression bomb), refused",
                                      code="size_mismatch")
            if keep:
                out.append(piece)
            if d.eof:
                break
    else:  # bzip2/lzma/...: never in office files, and each is one more inflater to trust
        raise InvalidRequest(f"{filename}: member {shown!r} uses compression method {e.method}; office files use "
                             "only deflate or none", code="corrupt_file")
    if total != e.unpacked:
        raise InvalidRequest(f"{filename}: member {shown!r} is truncated or corrupted ({total} of {e.unpacked} bytes)",
                             code="corrupt_file")
    return b"".join(out)


def _central_directory(data: bytes, filename: str, budget: int) -> Iterator[_Entry]:
    """Yield the central-directory entries as zipfile reads them (offsets adjusted the same way).

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
        offset = cd[zipfile._CD_LOCAL_HEADER_OFFSET]
        if 0xFFFFFFFF in (packed, unpacked, offset):
            unpacked, packed, offset = _zip64(extra, unpacked, packed, offset)
        flags = cd[zipfile._CD_FLAG_BITS]
        name = name_raw.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        yield _Entry(name, packed, unpacked, cd[zipfile._CD_COMPRESS_TYPE], flags, offset + concat)
        n += 1
        if n > budget:
            return
        pos += fixed + name_len + extra_len + comment_len


def _zip64(extra: bytes, unpacked: int, packed: int, offset: int) -> tuple[int, int, int]:
    """The 64-bit values of the zip64 extra field (id 1), in zipfile's order."""
    i = 0
    while i + 4 <= len(extra):
        tp, ln = struct.unpack("<HH", extra[i:i + 4])
        if tp == 1:
            body, j = extra[i + 4:i + 4 + ln], 0
            if unpacked == 0xFFFFFFFF and j + 8 <= len(body):
                unpacked, j = struct.unpack("<Q", body[j:j + 8])[0], j + 8
            if packed == 0xFFFFFFFF and j + 8 <= len(body):
                packed, j = struct.unpack("<Q", body[j:j + 8])[0], j + 8
            if offset == 0xFFFFFFFF and j + 8 <= len(body):
                offset = struct.unpack("<Q", body[j:j + 8])[0]
            break
        i += 4 + ln
    return unpacked, packed, offset
