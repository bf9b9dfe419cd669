"""The separate virtual environment the Quix Streams reference runs in.

quixstreams 3.28 pins confluent-kafka < 2.13 and pydantic < 2.14, older than batteryloop's
(confluent-kafka >= 2.16), so it cannot share batteryloop's environment. The benchmark creates
this one on first use (saying so) under the user's cache directory and reuses it afterwards;
the versions are those of ``bench/quix-requirements.txt``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("quix-requirements.txt")


def location() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    pins = REQUIREMENTS.read_text().split()
    name = next(p for p in pins if p.startswith("quixstreams==")).replace("==", "-")
    return cache / "batteryloop-bench" / name


def ensure(say: object = print) -> Path:
    """The environment's Python, created and filled on first use."""
    home = location()
    python = home / "bin" / "python"
    marker = home / ".batteryloop-complete"
    if marker.exists() and marker.read_text() == REQUIREMENTS.read_text():
        return python
    assert callable(say)
    say(f"creating the Quix Streams environment in {home} (first use, about a minute)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip install -r {REQUIREMENTS} failed:\n{result.stderr[-2000:]}")
    marker.write_text(REQUIREMENTS.read_text())
    return python
