"""A passport as a small self-contained HTML page (no scripts, styles inline, nothing fetched
from elsewhere), for a person who scanned a battery's QR code with a phone; and the QR code
itself, as PNG or SVG (``batteryloop passport ID --qr FILE``).

Which answer a request gets follows its ``Accept`` header (:func:`prefers_html`): browsers
ask for ``text/html`` first, programs for ``application/json`` or anything.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

#: The QR code's file formats, by file name extension.
QR_FORMATS = {".png": "png", ".svg": "svg"}


def _quality(part: str) -> tuple[str, float]:
    kind, *params = (p.strip() for p in part.split(";"))
    q = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0  # a malformed weight counts as not acceptable
    return kind.lower(), q


def prefers_html(accept: str) -> bool:
    """Whether an ``Accept`` header (RFC 9110 12.5.1) weighs ``text/html`` above JSON: the
    highest weight wins, and a tie goes to JSON (the views' answer without a header)."""
    weights: dict[str, float] = {}
    for part in accept.split(","):
        if part.strip():
            kind, q = _quality(part)
            weights[kind] = max(q, weights.get(kind, 0.0))
    html_q = weights.get("text/html", weights.get("text/*", 0.0))
    json_q = weights.get("application/json", weights.get("application/*", weights.get("*/*", 0.0)))
    return html_q > 0 and html_q > json_q


def _cell(value: Any) -> str:
    if value is None:
        return "<em>none</em>"
    if isinstance(value, (dict, list)):
        text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)
        return f"<pre>{html.escape(text)}</pre>"
    return html.escape(str(value))


def passport_page(passport: dict[str, Any]) -> str:
    """The passport as an HTML page: every field of the document, in its order."""
    battery = html.escape(str(passport.get("battery_id", "")))
    rows = "\n".join(
        f"<tr><th>{html.escape(str(name))}</th><td>{_cell(value)}</td></tr>"
        for name, value in passport.items()
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Battery passport {battery}</title>"
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:.3em;text-align:left;vertical-align:top}"
        "pre{margin:0;white-space:pre-wrap}</style></head><body>"
        f"<h1>Battery passport {battery}</h1>\n<table>\n{rows}\n</table></body></html>\n"
    )


def write_qr(url: str, path: Path) -> None:
    """Write ``url``'s QR code to ``path``, PNG or SVG by its extension."""
    import segno

    kind = QR_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: a QR code is written as .png or .svg, not {path.suffix!r}")
    # Error correction M (15 %): a label on a battery gets scratched; a 4-module quiet zone
    # as ISO/IEC 18004 asks.
    code = segno.make_qr(url, error="m")
    code.save(str(path), kind=kind, scale=8, border=4)
