"""The HTML report as a browser shows it: headless Chromium renders the page, the screenshot is
not blank, and the text holds the unit names in Vietnamese."""

import struct
import subprocess
import zlib
from pathlib import Path

from conftest import BINARY

REPO = Path(__file__).resolve().parents[2]


def pixels(png: bytes):
    """The rows of an 8-bit RGB or RGBA PNG, unfiltered (PNG specification, section 9)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, data, header = 8, b"", None
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position:position + 8])
        chunk = png[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            data += chunk
        position += 12 + length
    width, height, depth, color = header[:4]
    assert depth == 8 and color in (2, 6), header
    step = 3 if color == 2 else 4
    raw = zlib.decompress(data)
    stride = width * step
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - step] if x >= step else 0
            up = previous[x]
            corner = previous[x - step] if x >= step else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                nearest = min((abs(p - left), 0, left), (abs(p - up), 1, up), (abs(p - corner), 2, corner))[2]
                line[x] = (line[x] + nearest) & 0xFF
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, step)])
        previous = line
    return rows


def chromium(*arguments, home):
    return subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={home}", *arguments], capture_output=True, timeout=120,
                          env={"HOME": str(home), "PATH": "/usr/bin:/bin"})


def make_report(tmp_path, language="vi"):
    database = tmp_path / "events.sqlite"
    if not database.exists():
        subprocess.run([str(BINARY), "bench", "report", "--records", "4000", "--units", str(REPO / "conf/units.sample"),
                        "--database", str(database), "--year", "2026", "--rounds", "1"], check=True, capture_output=True)
    config = tmp_path / "smime-milter.conf"
    config.write_text(f"TrustAnchors {REPO}/conf/trust\nUnits {REPO}/conf/units.sample\nEventDatabase {database}\n")
    page = tmp_path / f"report-{language}.html"
    subprocess.run([str(BINARY), "report", "--config", str(config), "--year", "2026", "--by", "month", "--format", "html",
                    "--lang", language, "--output", str(page)], check=True)
    return page


def test_the_html_report_renders_in_chromium_with_vietnamese_names(tmp_path):
    page = make_report(tmp_path)
    shot = tmp_path / "report.png"
    rendered = chromium("--window-size=1100,1500", f"--screenshot={shot}", page.as_uri(), home=tmp_path)
    assert shot.exists(), rendered.stderr.decode(errors="replace")[-2000:]
    rows = pixels(shot.read_bytes())
    colors = {pixel for row in rows[::7] for pixel in row[::7]}
    not_white = sum(1 for row in rows[::7] for pixel in row[::7] if pixel != (255, 255, 255))
    sampled = len(rows[::7]) * len(rows[0][::7])
    assert len(colors) > 20 and not_white / sampled > 0.03, (len(colors), not_white / sampled)
    # The charts' colours are there: the signing units' green bars and the month lines.
    assert (0x2E, 0x7D, 0x32) in colors or any(abs(r - 0x2E) + abs(g - 0x7D) + abs(b - 0x32) < 30 for r, g, b in colors)

    dom = chromium("--dump-dom", page.as_uri(), home=tmp_path).stdout.decode()
    for name in ["Ủy ban nhân dân tỉnh", "Sở Văn hóa Thể thao và Du lịch", "Ủy ban nhân dân huyện Điện Biên Đông",
                 "Ủy ban nhân dân huyện Mường Ảng", "Chỉ tiêu", "Tỷ lệ ký"]:
        assert name in dom, name
    assert "<script" not in page.read_text()


def test_the_english_page_says_the_same_in_english(tmp_path):
    text = make_report(tmp_path, "en").read_text()
    assert '<html lang="en">' in text and "Indicator" in text and "Ủy ban nhân dân tỉnh" in text
