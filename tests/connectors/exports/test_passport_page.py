"""The passport's HTML page, the choice between it and JSON, and its QR code (decoded with
zxing-cpp to the exact URL, from PNG and from SVG)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image, ImageDraw

from connectors.exports.passport_page import passport_page, prefers_html, write_qr

URL = "https://passports.example/eu/passport/PACK-1%2F7"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # browsers
        ("application/json", False),
        ("", False),
        ("*/*", False),
        ("text/html;q=0.5, application/json", False),
        ("application/json;q=0.2, text/html", True),
        ("text/html;q=0", False),
    ],
)
def test_html_only_when_the_request_prefers_it(accept: str, html: bool) -> None:
    assert prefers_html(accept) is html


def test_the_page_shows_every_field_escaped_and_fetches_nothing() -> None:
    page = passport_page({"battery_id": "<b>X</b>", "url": URL, "materials": {"nickel": "1"}})
    assert "&lt;b&gt;X&lt;/b&gt;" in page and "<b>X</b>" not in page
    assert URL in page and "nickel" in page
    assert not re.search(r"<(script|link|img)\b|src=", page)


def _decoded(image: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image.convert("L"))]


def test_a_png_qr_code_decodes_to_the_url(tmp_path: Path) -> None:
    path = tmp_path / "qr.png"
    write_qr(URL, path)
    assert _decoded(Image.open(path)) == [URL]


def _rasterized(svg: str, scale: int = 4) -> Image.Image:
    """segno's SVG: one path of horizontal strokes, ``M x,y h n`` then relative ``m dx dy h n``
    moves (y at the module's middle), in a ``width`` x ``height`` view. Drawn module by
    module, which is all a QR code is."""
    width = int(re.search(r'width="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    height = int(re.search(r'height="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    d = re.search(r' d="([^"]+)"', svg).group(1)  # type: ignore[union-attr]
    image = Image.new("L", (width * scale, height * scale), 255)
    draw = ImageDraw.Draw(image)
    x = y = 0.0
    for op, args in re.findall(r"([MmHhVv])([^MmHhVv]*)", d):
        nums = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", args)]
        if op == "M":
            x, y = nums
        elif op == "m":
            x, y = x + nums[0], y + nums[1]
        elif op == "h":
            top = (y - 0.5) * scale
            draw.rectangle([x * scale, top, (x + nums[0]) * scale - 1, top + scale - 1], fill=0)
            x += nums[0]
        else:
            raise AssertionError(f"unexpected SVG path command {op!r}")
    return image


def test_an_svg_qr_code_decodes_to_the_url(tmp_path: Path) -> None:
    path = tmp_path / "qr.svg"
    write_qr(URL, path)
    svg = path.read_text()
    assert svg.lstrip().startswith("<?xml") or svg.lstrip().startswith("<svg")
    assert _decoded(_rasterized(svg)) == [URL]


def test_another_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        write_qr(URL, tmp_path / "qr.jpg")
