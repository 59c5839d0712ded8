"""protocol-svc benchmark: POST /v1/protocols rate and latency vs raw insert+commit.

Starts an embedded PostgreSQL (fsync on) and a Tansu broker on free loopback ports,
migrates protocol-svc, runs its api (uvicorn, ``--workers``) and worker as real
processes, registers an operator, then measures in one run:

- open-loop load at fixed offered rates: each request has a scheduled send time and
  its latency counts from that time, so a slow server cannot hide queueing
  (no coordinated omission);
- saturation: closed loop with many concurrent clients;
- the limit: raw asyncpg insert+commit of an equivalent row (one protocol row per
  transaction) with the same concurrency.

Prints a table and merges the figures into ``bench/results.json`` under ``protocol_svc``.
The load generator runs on the same 2 cores as the service, so figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from rich.console import Console
from rich.table import Table

from benchlib import ROOT, percentile, save_results
from rn623_devinfra.broker import TansuBroker
from rn623_devinfra.databases import create_database, with_database, with_driver
from rn623_devinfra.ports import free_port, wait_for_port
from rn623_devinfra.postgres import EmbeddedPostgres
from rn623_events.auth import bearer_headers

SERVICE = ROOT / "services" / "protocol-svc"
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"  # noqa: S105 - local benchmark key
OPERATOR = "123456"
console = Console(width=110)

BODY: dict[str, Any] = {
    "operator": OPERATOR,
    "channel": "phone",
    "beneficiary": {
        "cpf": "52998224725",
        "name": "Maria da Silva",
        "email": "maria.silva@example.com",
        "phone": "+5511912345678",
        "preferred_channels": ["email"],
    },
}


def summary(latencies: list[float], errors: int, seconds: float) -> dict[str, float]:
    """Throughput and latency percentiles (ms)."""
    return {
        "completed_per_s": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": errors,
    }


# The load generator shares the 2 cores with the service: aiohttp with a body encoded once
# costs it far less CPU per request than httpx.
PAYLOAD = json.dumps(BODY).encode()


async def post_protocol(client: aiohttp.ClientSession, headers: dict[str, str]) -> int:
    """POST one protocol; return the status code."""
    async with client.post("/v1/protocols", data=PAYLOAD, headers=headers) as response:
        await response.read()
        return response.status


async def open_loop(
    client: aiohttp.ClientSession, headers: dict[str, str], rate: float, seconds: float
) -> dict[str, float]:
    """Send at a fixed rate; latency counts from each request's scheduled time."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    total = int(rate * seconds)
    # Cap what is in flight (the connection pool's size).
    # A request that waits for a slot still counts its latency from its scheduled time.
    in_flight = asyncio.Semaphore(256)

    async def one(scheduled: float) -> None:
        async with in_flight:
            await send(scheduled)

    async def send(scheduled: float) -> None:
        nonlocal errors
        try:
            if await post_protocol(client, headers) == 201:
                latencies.append(time.perf_counter() - scheduled)
            else:
                errors += 1
        except aiohttp.ClientError:
            errors += 1

    # Each request is started at its time, not created up front: ten thousand sleeping
    # tasks made at once stall the generator itself, which would count as server latency.
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return {"offered_per_s": rate, **summary(latencies, errors, time.perf_counter() - start)}


async def closed_loop(
    client: aiohttp.ClientSession, headers: dict[str, str], clients: int, seconds: float
) -> dict[str, float]:
    """As fast as ``clients`` concurrent callers can go."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            if await post_protocol(client, headers) == 201:
                latencies.append(time.perf_counter() - sent)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(clients)))
    return {"clients": clients, **summary(latencies, errors, time.perf_counter() - started)}


async def raw_insert_rate(dsn: str, concurrency: int, seconds: float) -> float:
    """Rows/s of raw asyncpg insert+commit of a protocol-like row, one per transaction."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    await pool.execute(
        "CREATE TABLE IF NOT EXISTS bench_raw (number text PRIMARY KEY, ans_registry text,"
        " channel text, opened_at timestamptz, beneficiary jsonb)"
    )
    done = 0
    deadline = time.perf_counter() + seconds
    beneficiary = json.dumps(BODY["beneficiary"])

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO bench_raw VALUES ($1, $2, 'phone', now(), $3)",
                        f"{w:04d}{i:016d}",
                        OPERATOR,
                        beneficiary,
                    )
                i += 1
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    rate = done / (time.perf_counter() - started)
    await pool.close()
    return rate


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop service processes (SIGTERM, then SIGKILL after 15 s) and forget them."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
    processes.clear()


def start_api(
    app: str, port: int, workers: int, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start uvicorn with an app factory on a loopback port."""
    return start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env,
        log,
    )


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a service process with its output in ``log``."""
    handle = log.open("wb")
    return subprocess.Popen(args, cwd=SERVICE, env=env, stdout=handle, stderr=subprocess.STDOUT)


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start everything, measure, stop everything."""
    console.print("starting embedded PostgreSQL (fsync on) and Tansu…")
    postgres = EmbeddedPostgres(tmp / "pg", free_port(), fsync=True)
    postgres.start()
    broker = TansuBroker(free_port(), tmp / "tansu.log")
    broker.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        admin_url = postgres.admin_url()
        await create_database(admin_url, "protocol_svc")
        database_url = with_database(admin_url, "protocol_svc")
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "JWT_SECRET": SECRET,
            "SERVICE_NAME": "protocol-svc",
            "LOG_LEVEL": "WARNING",
        }
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=SERVICE,
            env=env,
            check=True,
            capture_output=True,
        )
        console.print(f"starting protocol-svc api ({args.workers} uvicorn workers) and worker…")
        processes.append(
            start_api("protocol_svc.app:create_app", port, args.workers, env, tmp / "api.log")
        )
        processes.append(
            start([sys.executable, "-m", "protocol_svc.worker"], env, tmp / "worker.log")
        )
        wait_for_port("127.0.0.1", port, timeout=60)
        headers = {
            **bearer_headers(SECRET, subject="bench"),
            "Content-Type": "application/json",
        }
        async with aiohttp.ClientSession(
            base_url=f"http://127.0.0.1:{port}",
            connector=aiohttp.TCPConnector(limit=256),
            timeout=aiohttp.ClientTimeout(total=30),
        ) as client:
            for _ in range(100):
                async with client.get("/readyz") as ready:
                    if ready.status == 200:
                        break
                await asyncio.sleep(0.2)
            operator = {
                "name": "Operadora Bench",
                "segment": "medical",
                "modality": "medicina_de_grupo",
                "beneficiaries": 150000,
                "uf": "SP",
                "municipality_ibge": "3550308",
                "timezone": "America/Sao_Paulo",
            }
            async with client.put(
                f"/v1/operators/{OPERATOR}", json=operator, headers=headers
            ) as put:
                assert put.status in (200, 201)
            # warm-up: as many connections as the load will use, every code path run
            await closed_loop(client, headers, args.clients, 3.0)
            figures: dict[str, Any] = {
                "workers": args.workers,
                "open_loop": [],
                "seconds_per_step": args.seconds,
            }
            for rate in args.rates:
                console.print(f"offered {rate}/s for {args.seconds} s…")
                figures["open_loop"].append(await open_loop(client, headers, rate, args.seconds))
            console.print(f"saturation with {args.clients} clients…")
            figures["saturation"] = await closed_loop(client, headers, args.clients, args.seconds)
        console.print("raw asyncpg insert+commit…")
        figures["raw_insert_commit_per_s"] = await raw_insert_rate(
            with_driver(database_url, "postgresql"), args.clients, args.seconds
        )
        figures["ratio_saturation_to_raw"] = (
            figures["saturation"]["completed_per_s"] / figures["raw_insert_commit_per_s"]
        )
        stop(processes)
        console.print("the same HTTP stack with no database (framework ceiling)…")
        ceiling_port = free_port()
        processes.append(
            start_api(
                "framework_ceiling_app:create_app",
                ceiling_port,
                args.workers,
                {**env, "PYTHONPATH": str(ROOT / "bench")},
                tmp / "ceiling.log",
            )
        )
        wait_for_port("127.0.0.1", ceiling_port, timeout=60)
        async with aiohttp.ClientSession(
            base_url=f"http://127.0.0.1:{ceiling_port}",
            connector=aiohttp.TCPConnector(limit=256),
            timeout=aiohttp.ClientTimeout(total=30),
        ) as client:
            # warm-up: as many connections as the load will use, every code path run
            await closed_loop(client, headers, args.clients, 3.0)
            ceiling = await closed_loop(client, headers, args.clients, args.seconds)
        figures["framework_ceiling"] = ceiling
        figures["ratio_saturation_to_framework"] = (
            figures["saturation"]["completed_per_s"] / ceiling["completed_per_s"]
        )
        return figures
    finally:
        stop(processes)
        broker.stop()
        postgres.stop()


def report(figures: dict[str, Any]) -> None:
    """Print the figures."""
    table = Table(title=f"POST /v1/protocols ({figures['workers']} uvicorn workers, fsync on)")
    for column in ("load", "completed/s", "p50 ms", "p95 ms", "p99 ms", "errors"):
        table.add_column(column, justify="right")
    for step in figures["open_loop"]:
        table.add_row(
            f"offered {step['offered_per_s']:.0f}/s",
            f"{step['completed_per_s']:,.0f}",
            f"{step['p50_ms']:.1f}",
            f"{step['p95_ms']:.1f}",
            f"{step['p99_ms']:.1f}",
            str(step["errors"]),
        )
    sat = figures["saturation"]
    table.add_row(
        f"saturation, {sat['clients']} clients",
        f"{sat['completed_per_s']:,.0f}",
        f"{sat['p50_ms']:.1f}",
        f"{sat['p95_ms']:.1f}",
        f"{sat['p99_ms']:.1f}",
        str(sat["errors"]),
    )
    table.add_row(
        "raw asyncpg insert+commit", f"{figures['raw_insert_commit_per_s']:,.0f}", "", "", "", ""
    )
    ceiling = figures["framework_ceiling"]
    table.add_row(
        "same HTTP stack, no database",
        f"{ceiling['completed_per_s']:,.0f}",
        f"{ceiling['p50_ms']:.1f}",
        f"{ceiling['p95_ms']:.1f}",
        f"{ceiling['p99_ms']:.1f}",
        str(ceiling["errors"]),
    )
    console.print(table)
    console.print(
        f"saturation / raw insert+commit = {figures['ratio_saturation_to_raw']:.2f}; "
        f"saturation / framework ceiling = {figures['ratio_saturation_to_framework']:.2f}"
    )


def main() -> None:
    """Parse arguments, run, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rates", type=float, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rn623-bench-protocols-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - PostgreSQL runs as another user and must traverse it
        figures = asyncio.run(run(args, Path(tmp)))
    report(figures)
    console.print(f"written to {save_results({'protocol_svc': figures})}")


if __name__ == "__main__":
    main()
