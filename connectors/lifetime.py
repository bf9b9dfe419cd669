"""Child processes that cannot outlive the process that started them (embedded brokers,
``batteryloop`` commands run as children), also when that process is SIGKILLed.

The kernel does it: PR_SET_PDEATHSIG makes it send the child SIGKILL when its parent dies. The
flag must be set *in the child*, and setting it between fork and exec (``preexec_fn``) is unsafe
once the launcher has threads (librdkafka's, a mirror agent's): the forked copy may inherit a
lock some other thread held and deadlock before exec. So the child is started through this very
file as a tiny exec wrapper: a fresh, single-threaded interpreter (``-I -S``: no site, no
environment) sets the flag with prctl, checks that the launcher did not die before it was set,
and ``execvp``s the real program, which keeps the flag (same process, same pid). The new process
group (Ctrl-C reaches the launcher, which stops its children in order) is set by
:class:`subprocess.Popen` itself, without running Python in the fork.

Linux only. The "parent" the kernel watches is the launching *thread*: start children from a
thread that lives as long as they should (the main thread, in batteryloop).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any, NoReturn

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_SIGKILL = 9
#: Exit status of the wrapper when the flag cannot be set; the program never runs.
CANNOT_BIND = 127


def start_bound(argv: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that the kernel kills when this process dies; ``popen`` goes to
    :class:`subprocess.Popen` (``stdout``, ``env``, ...). Raises FileNotFoundError here, not in
    the child, when the program cannot be found."""
    if "preexec_fn" in popen:
        raise TypeError("start_bound() sets up the child itself; preexec_fn is not allowed")
    program = shutil.which(argv[0]) if os.sep not in argv[0] else argv[0]
    if program is None or not os.access(program, os.X_OK):
        raise FileNotFoundError(f"cannot run {argv[0]!r}: not found or not executable")
    wrapper = [sys.executable, "-I", "-S", os.path.abspath(__file__), str(os.getpid())]
    return subprocess.Popen([*wrapper, program, *argv[1:]], process_group=0, **popen)


def _bind_and_exec(launcher: int, argv: list[str]) -> NoReturn:
    """In the wrapper: ask for SIGKILL on the launcher's death, then become ``argv``."""
    import ctypes
    import ctypes.util

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # the C library this Python uses
    except AttributeError:  # a statically linked or unusual build: look the library up
        name = ctypes.util.find_library("c")
        if name is None:
            _fail("cannot find the C library to call prctl(PR_SET_PDEATHSIG)")
        prctl = ctypes.CDLL(name, use_errno=True).prctl
    if prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0) != 0:
        _fail(f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}")
    if os.getppid() != launcher:  # the launcher died before the flag was set: do not run
        _fail(f"the launching process {launcher} is gone; not starting {argv[0]}")
    os.execv(argv[0], argv)


def _fail(reason: str) -> NoReturn:
    sys.stderr.write(f"batteryloop: {reason}\n")
    sys.stderr.flush()
    os._exit(CANNOT_BIND)


if __name__ == "__main__":
    _bind_and_exec(int(sys.argv[1]), sys.argv[2:])
