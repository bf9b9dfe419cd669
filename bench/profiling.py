"""Sampling a running worker with py-spy (``py-spy record --pid P --format raw``), from outside
and without changing it, and summing the samples into the functions with the most own time.

py-spy reads the process's memory (``process_vm_readv``), so the worker runs as it always does;
``--nonblocking`` keeps it from pausing the worker at each sample, and idle threads (waiting in
a poll) are left out, so the shares are of the time the process was doing Python work. Time in
C code (librdkafka, fastavro's readers, msgspec) counts for the Python function that called it.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Self

from bench.report import Hotspot, Profile

RATE = 100  # samples per second
TOOL = f"py-spy record --nonblocking, {RATE} samples/s, idle threads left out"
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy executable beside this interpreter (the bench extra installs it), or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def short(path: str) -> str:
    """A source path without the part that differs between machines."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if "/lib/python3" in path:  # the standard library
        return path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return path.removeprefix(str(Path(__file__).resolve().parents[1]) + "/")


def own_time(raw: str, top: int = 12) -> tuple[int, list[Hotspot]]:
    """(samples, the ``top`` functions by own time) of py-spy's raw (collapsed stack) output:
    one line per distinct stack, frames outermost first separated by ``;``, then a count."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        count = int(match["count"])
        leaf = match["stack"].rsplit(";", 1)[-1]
        frame = _FRAME.match(leaf)
        name = f"{frame['function']} ({short(frame['file'])})" if frame else leaf
        counts[name] += count
        total += count
    if not total:
        return 0, []
    return total, [Hotspot(name, n / total) for name, n in counts.most_common(top)]


class Sampler:
    """``with Sampler(pid, out) as s: ...`` samples ``pid`` for the duration of the block;
    ``s.profile`` is the result (``missing`` says why there is none)."""

    def __init__(self, pid: int, out: Path, top: int = 12) -> None:
        self.pid = pid
        self.out = out
        self.top = top
        self.log = out.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None
        self.profile = Profile(TOOL, 0, missing="not sampled")

    def __enter__(self) -> Self:
        spy = py_spy()
        if spy is None:
            self.profile = Profile(TOOL, 0, missing="py-spy is not installed (pip install py-spy)")
            return self
        argv = [spy, "record", "--pid", str(self.pid), "--format", "raw", "--nonblocking"]
        argv += ["--rate", str(RATE), "-o", str(self.out)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        said = self.log.read_text(errors="replace").strip() if self.log.exists() else ""
        if not self.out.exists():
            reason = said.splitlines()[-1] if said else f"exit code {self.process.returncode}"
            self.profile = Profile(TOOL, 0, missing=f"py-spy could not sample: {reason}")
            return
        samples, hotspots = own_time(self.out.read_text(errors="replace"), self.top)
        self.profile = Profile(TOOL, samples, hotspots, None if samples else "no samples")
