"""Children bound to their launcher: started while the launcher has threads, killed with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from connectors.lifetime import start_bound

# A launcher with busy threads (holding locks, allocating, logging) the whole time it starts
# children: the case where running Python between fork and exec could deadlock.
LAUNCHER = textwrap.dedent(
    """
    import logging, sys, threading, time
    from connectors.lifetime import start_bound

    lock = threading.Lock()
    log = logging.getLogger("busy")

    def busy() -> None:
        while True:
            with lock:
                [bytearray(4096) for _ in range(50)]
                log.debug("busy")

    for _ in range(4):
        threading.Thread(target=busy, daemon=True).start()
    pids = []
    for _ in range(int(sys.argv[1])):
        child = start_bound([sys.executable, "-c", "import time; time.sleep(120)"])
        pids.append(child.pid)
    print(threading.active_count(), *pids, flush=True)
    time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().rstrip("\0").split("\0")


def test_children_started_by_a_threaded_launcher_run_and_die_with_it() -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, "5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert launcher.stdout is not None
        threads, *pids = map(int, launcher.stdout.readline().split())
        assert threads >= 5 and len(pids) == 5
        deadline = time.monotonic() + 10
        # still in the wrapper ("-I"), or between it and the program (an exec in progress
        # reads as an empty command line)
        while any(_cmdline(p) in ([""], []) or "-I" in _cmdline(p) for p in pids if _alive(p)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for pid in pids:
            assert _alive(pid)
            assert _cmdline(pid)[1:] == ["-c", "import time; time.sleep(120)"]  # exec'd
            assert os.getpgid(pid) == pid  # its own process group: Ctrl-C goes to the launcher
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if _alive(p)]
    finally:
        if launcher.poll() is None:
            launcher.kill()


def test_a_missing_program_fails_in_the_launcher() -> None:
    with pytest.raises(FileNotFoundError, match="no-such-program"):
        start_bound(["no-such-program-batteryloop"])
    with pytest.raises(TypeError, match="preexec_fn"):
        start_bound([sys.executable, "-c", "pass"], preexec_fn=lambda: None)


def test_the_childs_output_exit_status_and_pid_are_the_programs() -> None:
    child = start_bound(
        [sys.executable, "-c", "import os, sys; print(os.getpid()); sys.exit(3)"],
        stdout=subprocess.PIPE,
    )
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 3
    assert int(out) == child.pid
