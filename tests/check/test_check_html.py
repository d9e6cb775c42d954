"""`check --format html`: one self-contained page, rendered by a real headless Chromium.

Locally the browser test skips (with the reason) when no Chromium is installed; in CI (CI=true)
a missing browser is a failure: `.ci/run` installs Debian's `chromium` when it is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from tests.check.test_check_reports import sample_report

from instantly_guard.check.report import render

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
WIDTH, HEIGHT = 1000, 1400


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("no Chromium in CI: .ci/run installs Debian's `chromium` when it is missing")
    pytest.skip("no Chromium installed (apt-get install chromium); CI runs this test for real")


def test_the_page_is_self_contained_and_escaped() -> None:
    page = render(sample_report(), "html")
    assert page.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in page  # the browser is told: no network, no script
    # No external asset of any kind: no src/href attribute, no url(), no @import, no script.
    assert not re.search(r"\b(src|href)\s*=", page, re.IGNORECASE)
    assert "url(" not in page
    assert "@import" not in page
    assert "<script" not in page.lower()
    # Failures by severity, then the rules that could not be checked, then the passed ones.
    order = [page.index(h) for h in ("<h2>Critical", "<h2>High", "<h2>Could not", "<h2>Passed")]
    assert order == sorted(order)
    assert "Fix:</b> Revoke it." in page
    assert "app/settings.py:3" in page


def test_evidence_is_html_escaped() -> None:
    from dataclasses import replace

    report = sample_report()
    hostile = replace(report.findings[0], evidence='<img src=x onerror="alert(1)">')
    page = render(replace(report, findings=(hostile, *report.findings[1:])), "html")
    assert "<img" not in page
    assert "&lt;img src=x" in page


def _png_pixels(data: bytes) -> tuple[int, int, list[list[tuple[int, int, int]]]]:
    """Width, height and the RGB pixels, row by row, of a non-interlaced 8-bit PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8
    channels = {2: 3, 6: 4}[colour]
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytes(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[x] = (line[x] + pred) & 0xFF
        previous = bytes(line)
        rows.append([(line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels)])
    return width, height, rows


@pytest.mark.slow
def test_headless_chromium_renders_the_report_offline(tmp_path: Path) -> None:
    browser = _browser()
    page = tmp_path / "report.html"
    page.write_text(render(sample_report(), "html"), encoding="utf-8")
    shot = tmp_path / "report.png"
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert shot.is_file(), result.stderr.decode(errors="replace")[-2000:]
    width, height, rows = _png_pixels(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    # Not blank: the dark header band on top, the page's light background further down, and
    # the colours of the severity badges and borders somewhere on the page.
    assert max(max(p) for p in rows[20][:50]) < 80, "the header band is not drawn"
    assert min(min(p) for p in rows[HEIGHT - 5][:10]) > 200, "the page background is not drawn"
    colours = {p for row in rows[::7] for p in row[::5]}
    reds = [c for c in colours if c[0] > 150 and c[1] < 90 and c[2] < 90]
    assert len(colours) > 20
    assert reds, "no critical/high colour on the page"
