"""The command line against a real broker: produce with good and bad lines, no orphan brokers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.kafka.consume import read_from_start
from connectors.kafka.embedded import EmbeddedBroker
from schemas.serde import Serde
from schemas.topics import EVENT_TOPICS
from schemas.values import Region

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).parents[2] / "connectors" / "ingest" / "samples" / "closed_loop.jsonl"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_produce_publishes_good_lines_and_reports_bad_ones_by_line(tmp_path: Path) -> None:
    with EmbeddedBroker(Region.EU) as eu, EmbeddedBroker(Region.JP) as jp:
        env = {"BATTERYLOOP_EU_BOOTSTRAP": eu.bootstrap, "BATTERYLOOP_JP_BOOTSTRAP": jp.bootstrap}
        for broker in (eu, jp):
            assert (
                run(
                    "topics",
                    "create",
                    "--region",
                    broker.region.value,
                    "--bootstrap",
                    broker.bootstrap,
                ).returncode
                == 0
            )
        rejects = tmp_path / "rejects.jsonl"
        result = run("produce", str(SAMPLE), "--rejects", str(rejects), env=env)
        assert result.returncode == 1, result.stderr
        assert "line 7: extraction.composition" in result.stderr
        assert "line 14: use_collection.operator_id" in result.stderr
        assert "line 15: not JSON" in result.stderr
        assert "published 19 events" in result.stdout
        assert [json.loads(r)["line"] for r in rejects.read_text().splitlines()] == [7, 14, 15]

        good = [
            json.loads(line)
            for i, line in enumerate(SAMPLE.read_text().splitlines(), 1)
            if i not in (7, 14, 15)
        ]
        topics = [t.name for t in EVENT_TOPICS.values()]
        for broker in (eu, jp):
            expected = {e["event_id"] for e in good if e["region"] == broker.region.value}
            got = {
                str(Serde().decode_event(m.value()).event_id)
                for m in read_from_start(
                    {"bootstrap.servers": broker.bootstrap}, topics, len(expected), timeout=15
                )
            }
            assert got == expected


def test_produce_reads_csv_rows_of_one_event_type(tmp_path: Path) -> None:
    table = tmp_path / "mine.csv"
    table.write_text(
        "event_id,occurred_at,operator_id,site_id,region,lot_id,form,material,mass_kg,"
        "composition.nickel,composition.cobalt,country,offtake_price.amount,"
        "offtake_price.currency\n"
        "00000000-0000-0000-0000-00000000c5a1,2031-02-01T08:00:00Z,BPNL0000000MIN01,"
        "BPNS0000000MIN01,EU,ORE-CSV-1,ore,nickel ore,1200.5,0.02,,FI,3.10,EUR\n"
        "00000000-0000-0000-0000-00000000c5a2,2031-02-02T08:00:00Z,BPNL0000000MIN01,"
        "BPNS0000000MIN01,EU,ORE-CSV-2,ore,nickel ore,-1,0.02,0.9,FI,,\n"
    )
    with EmbeddedBroker(Region.EU) as eu:
        assert (
            run("topics", "create", "--region", "eu", "--bootstrap", eu.bootstrap).returncode == 0
        )
        result = run(
            "produce",
            str(table),
            "--region",
            "eu",
            "--bootstrap",
            eu.bootstrap,
            "--event-type",
            "extraction",
        )
        assert result.returncode == 1, result.stderr
        assert "line 3: extraction.mass_kg" in result.stderr
        assert "published 1 events" in result.stdout
        [record] = read_from_start(
            {"bootstrap.servers": eu.bootstrap}, [EVENT_TOPICS["extraction"].name], 1, timeout=15
        )
        event = Serde().decode_event(record.value())
        assert (event.lot_id, str(event.mass_kg), event.composition) == (  # type: ignore[attr-defined]
            "ORE-CSV-1",
            "1200.500",
            {"nickel": Decimal("0.02")},
        )


def test_produce_to_one_region_rejects_the_other_regions_events() -> None:
    with EmbeddedBroker(backend="tansu") as eu:
        run("topics", "create", "--region", "eu", "--bootstrap", eu.bootstrap)
        result = run("produce", str(SAMPLE), "--region", "eu", "--bootstrap", eu.bootstrap)
    assert result.returncode == 1
    assert "event of region JP, but this run publishes to EU only" in result.stderr


def test_a_missing_cluster_is_a_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATTERYLOOP_")}
    result = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "produce", str(SAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no bootstrap servers for the EU cluster: set BATTERYLOOP_EU_BOOTSTRAP" in result.stderr


def test_a_region_without_a_cluster_stops_the_run_after_delivering_and_reporting_the_rest(
    tmp_path: Path,
) -> None:
    """EU events, then a JP one while only the EU cluster is configured: the run stops with the
    error, and the EU events already queued are delivered and reported, not dropped."""
    lines = SAMPLE.read_text().splitlines()
    eu_lines = lines[4:6]  # two valid EU extractions
    jp_line = next(line for line in lines if json.loads(line)["region"] == "JP")
    source = tmp_path / "eu-then-jp.jsonl"
    source.write_text("\n".join([*eu_lines, jp_line]) + "\n")
    topics = [t.name for t in EVENT_TOPICS.values()]
    with EmbeddedBroker(Region.EU, "tansu") as eu:
        run("topics", "create", "--region", "eu", "--bootstrap", eu.bootstrap)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATTERYLOOP_")}
        result = subprocess.run(
            [sys.executable, "-m", "connectors.cli", "produce", str(source)],
            capture_output=True,
            text=True,
            env={**env, "BATTERYLOOP_EU_BOOTSTRAP": eu.bootstrap},
            timeout=120,
        )
        on_topic = read_from_start(
            {"bootstrap.servers": eu.bootstrap}, topics, len(eu_lines), timeout=20
        )
    assert result.returncode == 2, result.stderr
    assert "no bootstrap servers for the JP cluster" in result.stderr
    assert f"stopped: published {len(eu_lines)} events" in result.stderr
    assert len(on_topic) == len(eu_lines)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


@pytest.mark.parametrize("backend", ["tansu", "noida"])
def test_a_killed_launcher_leaves_no_broker_behind(backend: str) -> None:
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connectors.cli",
            "broker",
            "--region",
            "jp",
            "--backend",
            backend,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = launcher.stdout.readline()  # "<backend> broker for JP listening on ... (pid N)"
        broker_pid = int(line.rsplit("pid ", 1)[1].rstrip(")\n"))
        assert _alive(broker_pid)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(10)
        deadline = time.monotonic() + 10
        while _alive(broker_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(broker_pid)
    finally:
        if launcher.poll() is None:
            launcher.kill()


def test_sigterm_stops_the_broker_command_cleanly() -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-m", "connectors.cli", "broker", "--region", "eu"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = launcher.stdout.readline()
    broker_pid = int(line.rsplit("pid ", 1)[1].rstrip(")\n"))
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(15) == 128 + signal.SIGTERM
    assert not _alive(broker_pid)


@pytest.fixture
def closed_port() -> Iterator[str]:
    """A local address that refuses connections: bound, never listening, so nobody else gets
    the port while the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def _no_cluster_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATTERYLOOP_")}
    return {**env, **extra}


def _run_timed(
    args: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "connectors.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    return result, time.monotonic() - started


def _assert_one_clear_line(result: subprocess.CompletedProcess[str], address: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 3, result.stderr
    assert f"cannot reach the Kafka cluster at {address}" in result.stderr
    assert "Connection refused" in result.stderr  # the cause librdkafka saw
    assert "FAIL|" not in result.stderr and "FAIL [" not in result.stderr  # no raw librdkafka log


@pytest.mark.parametrize(
    "command",
    [
        ["produce", str(SAMPLE), "--region", "eu"],
        ["topics", "create", "--region", "eu"],
        ["topics", "list", "--region", "jp"],
    ],
    ids=["produce", "topics-create", "topics-list"],
)
def test_an_unreachable_cluster_is_reported_once_within_the_connect_timeout(
    command: list[str], closed_port: str
) -> None:
    result, elapsed = _run_timed(
        [*command, "--bootstrap", closed_port, "--connect-timeout", "2"], _no_cluster_env()
    )
    _assert_one_clear_line(result, closed_port)
    assert "within 2 s" in result.stderr
    assert elapsed < 2 + 8, f"took {elapsed:.1f} s"  # interpreter start-up on a busy machine
    assert result.stdout == ""  # no report as if something had been published


def test_the_connect_timeout_comes_from_the_environment_too(closed_port: str) -> None:
    env = _no_cluster_env(
        BATTERYLOOP_EU_BOOTSTRAP=closed_port,
        BATTERYLOOP_JP_BOOTSTRAP=closed_port,
        BATTERYLOOP_CONNECT_TIMEOUT="3",
    )
    result, elapsed = _run_timed(["produce", str(SAMPLE)], env)
    _assert_one_clear_line(result, closed_port)
    assert "within 3 s" in result.stderr
    assert elapsed < 3 + 8, f"took {elapsed:.1f} s"


@pytest.mark.parametrize(
    "command",
    [
        ["passport", "PACK-1", "--region", "eu"],
        ["worker", "--region", "eu", "--store", "memory"],
    ],
    ids=["passport", "worker"],
)
def test_reading_commands_report_an_unreachable_cluster_within_the_connect_timeout(
    command: list[str], closed_port: str, tmp_path: Path
) -> None:
    env = _no_cluster_env(BATTERYLOOP_CONNECT_TIMEOUT="2")
    started = [*command, "--bootstrap", closed_port]
    if command[0] == "worker":
        started += ["--data-dir", str(tmp_path)]
    result, elapsed = _run_timed(started, env)
    _assert_one_clear_line(result, closed_port)
    assert elapsed < 2 + 8, f"took {elapsed:.1f} s"


def test_a_cluster_lost_mid_run_ends_the_run_in_bounded_time_with_a_consistent_report() -> None:
    """Events queued after the broker went away fail after message.timeout.ms (30 s by
    default, not librdkafka's 5 minutes), each named by its line; the report adds up."""
    valid = [
        line
        for number, line in enumerate(SAMPLE.read_text().splitlines(), 1)
        if number not in (7, 14, 15) and json.loads(line)["region"] == "EU"
    ]
    first, rest = valid[0], valid[1:6]
    topics = [t.name for t in EVENT_TOPICS.values()]
    with EmbeddedBroker(Region.EU, "tansu") as eu:
        created = run("topics", "create", "--region", "eu", "--bootstrap", eu.bootstrap)
        assert created.returncode == 0, created.stderr
        started = time.monotonic()
        producing = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connectors.cli",
                "produce",
                "-",
                "--region",
                "eu",
                "--bootstrap",
                eu.bootstrap,
            ],  # fmt: skip
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert producing.stdin is not None
        producing.stdin.write(first + "\n")
        producing.stdin.flush()
        # the first event is acknowledged once it is on the topic
        on_topic = read_from_start({"bootstrap.servers": eu.bootstrap}, topics, 1, timeout=20)
        assert len(on_topic) == 1
    # the broker is gone
    stdout, stderr = producing.communicate("\n".join(rest) + "\n", timeout=90)
    elapsed = time.monotonic() - started
    assert producing.returncode == 1, stderr
    assert elapsed < 60, f"took {elapsed:.1f} s"
    assert "published 1 events" in stdout
    assert f"{len(rest)} deliveries failed, 0 unknown" in stdout
    for number in range(2, len(rest) + 2):
        assert f"line {number}: delivery to " in stderr
    assert "still unacknowledged" not in stderr
    assert "1 acknowledged, 5 failed, 0 unknown" in stderr
    assert "FAIL|" not in stderr
    assert len(stderr.splitlines()) < len(rest) + 8, stderr
