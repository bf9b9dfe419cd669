"""Rate of the HTTP ingestion gateway's batch endpoint: the real ``batteryloop gateway``.

    python bench/gateway_rate.py [--events N] [--batches 1,100,1000] [--concurrency 1,4,16]
                                 [--backend tansu|noida]

One embedded broker, one ``batteryloop gateway --region jp`` child process with a tokens file,
and an aiohttp client in this process posting JSON arrays of ``manufacture`` events to
``/events/batch`` (each event fresh: new ids, so every one is published), ``--concurrency``
requests in flight at a time. A request counts when it is answered 202 with every item
accepted (the cluster acknowledged every event, acks=all); any other answer stops the run.
Per batch size and concurrency: requests/s and events/s over N events (N/10 for batches of 1).
Client and gateway share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.workload

import aiohttp  # noqa: E402

from bench.workload import batteries, lot_inputs  # noqa: E402
from connectors.kafka.admin import create_missing  # noqa: E402
from connectors.kafka.embedded import BACKENDS, EmbeddedBroker, free_port  # noqa: E402
from connectors.lifetime import start_bound  # noqa: E402

OPERATOR = "1180301018771"
TOKEN = "bench-gateway-token-0001"


def bodies(n: int, batch: int, run: str) -> list[bytes]:
    """JSON arrays of ``batch`` fresh manufacture events each, ``n`` events in all."""
    events = batteries(
        n, OPERATOR, "JP-CELL-PLANT-1", f"GW-{run}-{{i:08d}}", "cell", "0.9", "0.224",
        lot_inputs("1.2", "0.2"),
    )  # fmt: skip
    lines = [e.model_dump_json().encode() for e in events]
    return [b"[" + b",".join(lines[i : i + batch]) + b"]" for i in range(0, n, batch)]


async def post_all(url: str, requests: list[bytes], batch: int, concurrency: int) -> float:
    """Seconds to have every request answered 202 with all its items accepted."""
    queue = list(reversed(requests))
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        while queue:
            body = queue.pop()
            async with session.post(url, data=body, headers=headers) as response:
                answer = await response.json()
                if response.status != 202 or answer["accepted"] != batch:
                    raise RuntimeError(f"answered {response.status}: {str(answer)[:300]}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        return time.perf_counter() - start


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the gateway exited: {log.read_text()}") from None
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not come up within 60 s") from None
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batches", default="1,100,1000")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="tansu")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    levels = [int(c) for c in args.concurrency.split(",")]
    with EmbeddedBroker(backend=args.backend) as broker, tempfile.TemporaryDirectory() as tmp:
        create_missing({"bootstrap.servers": broker.bootstrap})
        tokens = Path(tmp) / "tokens.toml"
        tokens.write_text(f'[tokens]\n"{TOKEN}" = "{OPERATOR}"\n')
        port, log = free_port(), Path(tmp) / "gateway.log"
        argv = [sys.executable, "-m", "connectors.cli", "gateway", "--region", "jp"]
        argv += ["--bootstrap", broker.bootstrap, "--port", str(port), "--tokens", str(tokens)]
        process = start_bound(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=os.environ)
        try:
            wait_listening(port, process, log)
            url = f"http://127.0.0.1:{port}/events/batch"
            print(f"gateway on {args.backend}, manufacture events, POST /events/batch")
            print(f"  {'batch':>6} {'in flight':>9} {'requests/s':>11} {'events/s':>9}")
            for batch in batches:
                n = args.events // 10 if batch == 1 else args.events
                for concurrency in levels:
                    requests = bodies(n, batch, f"{batch}-{concurrency}")
                    seconds = asyncio.run(post_all(url, requests, batch, concurrency))
                    print(
                        f"  {batch:>6} {concurrency:>9} {len(requests) / seconds:>11,.0f} "
                        f"{n / seconds:>9,.0f}",
                        flush=True,
                    )
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
