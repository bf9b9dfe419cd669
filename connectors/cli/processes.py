"""``batteryloop`` commands as child processes (the processors worker for the demo and the
tests, the mirror for the tests): started by :func:`connectors.lifetime.start_bound` so that
none outlives its launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

from connectors.kafka.embedded import free_port
from connectors.lifetime import start_bound
from schemas.values import Region


class ChildProcess:
    """A ``batteryloop`` command run as a child: its output goes to ``log_path``."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {}

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = start_bound(
                [sys.executable, "-m", "connectors.cli", *self.arguments()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.environment()},
            )
        return self

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("not started")
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self, timeout: float = 30.0) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class WorkerProcess(ChildProcess):
    """``batteryloop worker`` for one region, tuned for the demo and the tests (memory store, a
    short grace period, the 6 s session timeout the embedded brokers need); what it does not
    set (``assignment_timeout`` None) is the command's default."""

    def __init__(
        self,
        region: Region,
        bootstrap: str,
        data_dir: Path,
        store: str = "memory",
        grace_seconds: float = 5.0,
        loglevel: str = "warning",
        assignment_timeout: float | None = None,
        instance_id: str | None = None,
    ) -> None:
        self.region = region
        self.instance_id = instance_id
        self.assignment_timeout = assignment_timeout
        self.bootstrap = bootstrap
        self.data_dir = data_dir
        self.store = store
        self.grace_seconds = grace_seconds
        self.loglevel = loglevel
        self.port = free_port()
        super().__init__(data_dir / f"worker-{region.value}-{self.port}.log")

    def arguments(self) -> list[str]:
        return [
            "worker",
            "--region",
            self.region.value,
            "--bootstrap",
            self.bootstrap,
            "--store",
            self.store,
            "--data-dir",
            str(self.data_dir / "tables"),
            "--web-port",
            str(self.port),
            "--grace-seconds",
            str(self.grace_seconds),
            "--session-timeout",
            "6",
            "--rebalance-timeout",
            "30",
            "--loglevel",
            self.loglevel,
            *(
                ["--assignment-timeout", str(self.assignment_timeout)]
                if self.assignment_timeout is not None
                else []
            ),
            *(["--instance-id", self.instance_id] if self.instance_id else []),
        ]
