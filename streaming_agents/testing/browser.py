"""Headless Chromium for tests: screenshot a page, dump its DOM, tell a blank image.

Chromium is Debian's ``chromium`` package, installed by ``make browser``
(``make test`` depends on it); :func:`chromium` finds it or raises
:class:`~streaming_agents.errors.InfrastructureError` naming that target.
Pages are opened as ``file://`` URLs with networking refused by a proxy that
does not exist, so a page that tried to fetch anything would show it.
:func:`png_stats` decodes the screenshot (8-bit RGB/RGBA PNG, every filter
type) with the standard library and numpy to measure how much of it is not
background: a blank or failed render has (almost) no variance.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streaming_agents.errors import InfrastructureError

__all__ = ["PngStats", "chromium", "dump_dom", "png_stats", "screenshot"]

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--hide-scrollbars",
    "--proxy-server=127.0.0.1:9",  # nothing listens there: any fetch fails
    "--proxy-bypass-list=<-loopback>",
)


def chromium() -> str:
    """The Chromium executable (``make browser`` installs it)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise InfrastructureError("chromium is not installed: run `make browser` (apt: chromium)")


def _run(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="sa-chromium-") as profile:
        done = subprocess.run(
            [chromium(), *_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise InfrastructureError(f"chromium exited {done.returncode}: {tail}")
    return done


def screenshot(page: Path, png: Path, *, width: int = 1280, height: int = 2400,
               timeout_s: float = 60.0) -> Path:  # fmt: skip
    """Render ``page`` at ``width`` x ``height`` and write the screenshot to ``png``."""
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [f"--window-size={width},{height}", f"--screenshot={png}", page.resolve().as_uri()],
        timeout_s,
    )
    if not png.is_file():
        raise InfrastructureError(f"chromium wrote no screenshot to {png}")
    return png


def dump_dom(page: Path, *, timeout_s: float = 60.0) -> str:
    """The DOM of ``page`` after Chromium has parsed it, serialised."""
    return _run(["--dump-dom", page.resolve().as_uri()], timeout_s).stdout.decode()


@dataclass(frozen=True)
class PngStats:
    """Size of an image and how far it is from a single colour."""

    width: int
    height: int
    variance: float  # of the grey level, 0..255^2
    non_background: float  # share of pixels that differ from the most common colour


def _chunks(data: bytes) -> tuple[bytes, bytes]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise InfrastructureError("not a PNG file")
    header, idat, pos = b"", b"", 8
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + size]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + size
    return header, idat


def _sequential(kind: int, line: bytes, prev: list[int], bpp: int) -> list[int]:
    """Undo the average (3) or Paeth (4) filter of one row: byte by byte, plain ints."""
    out = list(line)
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        b = prev[i]
        if kind == 3:
            out[i] = (out[i] + ((a + b) >> 1)) & 0xFF
            continue
        c = prev[i - bpp] if i >= bpp else 0
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        out[i] = (out[i] + (a if pa <= pb and pa <= pc else (b if pb <= pc else c))) & 0xFF
    return out


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> np.ndarray[Any, Any]:
    stride = width * bpp
    rows = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = np.frombuffer(raw, np.uint8, stride, start + 1).astype(np.int32)
        if kind == 1:  # sub: running sum per channel
            line = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:  # up
            line = (line + prev) % 256
        elif kind in (3, 4):  # average, paeth: each byte needs the one before it
            done = _sequential(kind, raw[start + 1 : start + 1 + stride], prev.tolist(), bpp)
            line = np.array(done, dtype=np.int32)
        rows[y] = line
        prev = line
    return rows.reshape(height, width, bpp)


def png_stats(path: Path) -> PngStats:
    """Decode ``path`` (8-bit RGB or RGBA, not interlaced) and measure it."""
    header, idat = _chunks(path.read_bytes())
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in (2, 6) or interlace:
        raise InfrastructureError(f"unsupported PNG (depth {depth}, colour type {colour})")
    pixels = _unfilter(zlib.decompress(idat), width, height, 3 if colour == 2 else 4)[..., :3]
    grey = pixels.astype(np.float64).mean(axis=2)
    flat = pixels.reshape(-1, 3).astype(np.uint32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    colours, counts = np.unique(packed, return_counts=True)
    non_background = float((packed != colours[int(np.argmax(counts))]).mean())
    return PngStats(width, height, float(grey.var()), non_background)
