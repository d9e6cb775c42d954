"""Webhook receiver: throughput under functions-framework's production server, handler CPU, and
cold import time.

- requests/s of `receive_webhook` (no-op publisher, then the durable outbox) against a bare
  function that only returns 200, both under the same server (gunicorn, functions-framework's
  default workers and threads), the same client (httpx, keep-alive, `CONCURRENCY` connections),
  2 KB payloads, `REQUESTS` requests per run, loopback. Each of `ROUNDS` rounds runs bare, no-op
  and outbox back to back, and the ratio webhook / bare is taken within the round; the row reports
  the median webhook rate as its value and value / (median of the per-round ratios) as its
  baseline, so the printed ratio is that median. The bare rate alone moves by tens of percent
  between rounds on a small shared VM; a ratio formed within one round cancels the slow part of
  that drift, and the median drops a round hit by a short burst (the note gives the range);
- the same comparison driven by wrk (an independent load generator in C), rounds as above; and
  once more with the server alone on one CPU and wrk on another (`taskset`), as Cloud Run runs
  the function on one vCPU: there the server's own CPU time sets the rate, where otherwise the
  server and wrk share the machine's CPUs and the ratio moves more from run to run;
- instructions per request (callgrind), receiver against bare function;
- CPU time of `handle()` per request in process (time.process_time_ns; logging to /dev/null);
- import time of functions/webhook/main.py against `import functions_framework` alone
  (fresh interpreters, median of `IMPORT_RUNS`).

Run: `python -m benchmarks webhook` (or `make bench`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from benchmarks.common import Row, percentile
from instantly_guard.logs import configure_logging, flush_lines
from instantly_guard.webhook.receiver import build_receiver
from instantly_guard.webhook.testing import delivery, sample_event

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "functions" / "webhook" / "main.py"
SECRET = "bench-webhook-secret-0123456789abcdef"
PAYLOAD_BYTES = 2048
REQUESTS = 2000
CONCURRENCY = 4
ROUNDS = 5
CPU_SAMPLES = 3000
IMPORT_RUNS = 7

BARE_FUNCTION = """
import functions_framework


@functions_framework.http
def bare(request):
    return "OK"
"""


def _payloads(count: int, offset: int = 0) -> list[bytes]:
    """`count` distinct 2 KB deliveries (distinct so that none is answered as a duplicate)."""
    bodies = []
    for n in range(count):
        event = sample_event("reply_received", step=offset + n, pad="")
        filler = PAYLOAD_BYTES - len(json.dumps(event).encode())
        event["pad"] = "x" * max(0, filler)
        bodies.append(json.dumps(event).encode())
    return bodies


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process and its children (gunicorn's workers), from /proc."""
    try:
        pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
        ticks = 0
        for one in pids:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _server(
    target: str, source: Path, env: Mapping[str, str], cpu: int | None = None
) -> Iterator[tuple[str, int]]:
    """The function served by functions-framework's own server; on CPU `cpu` alone if given."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "INSTANTLY_"))}
    process = subprocess.Popen(
        [
            *_on_cpu(cpu),
            *(sys.executable, "-m", "functions_framework"),
            *("--target", target, "--source", str(source)),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        env={**keep, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{target} server did not start")
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _load(url: str, bodies: list[bytes]) -> float:
    """Send every body once over CONCURRENCY keep-alive connections; return requests/s."""
    headers = {"Content-Type": "application/json", "x-webhook-secret": SECRET}
    shares = [bodies[i::CONCURRENCY] for i in range(CONCURRENCY)]
    failures: list[int] = []
    start = threading.Barrier(CONCURRENCY + 1)

    def worker(share: list[bytes]) -> None:
        with httpx.Client(timeout=30) as client:
            client.get(url)  # open the connection before the clock starts
            start.wait()
            for body in share:
                status = client.post(url, content=body, headers=headers).status_code
                if status != 200:
                    failures.append(status)

    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. status {failures[0]}")
    return len(bodies) / elapsed


WRK_SECONDS = 4
WRK_ROUNDS = 7
WRK_CONNECTIONS = 4
# Each request a distinct delivery (a duplicate may be answered more cheaply): the body is a 2 KB
# event whose "step" is the wrk thread's id followed by its own counter, always 10 digits wide.
_WRK_SCRIPT = """
local next_id = 1
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
local count = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-webhook-secret"] = %(secret)s
local head, tail = %(head)s, %(tail)s
request = function()
  count = count + 1
  return wrk.format(nil, nil, nil, head .. string.format("%%d%%09d", id, count) .. tail)
end
"""


def _wrk() -> tuple[str | None, str]:
    """The wrk binary, installed from Debian if missing and possible; else None and why."""
    found = shutil.which("wrk")
    if found:
        return found, ""
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return (
            None,
            "wrk is not installed and cannot be (needs apt-get as root): apt-get install wrk",
        )
    done = subprocess.run(
        [apt, "install", "-y", "-q", "wrk"], capture_output=True, text=True, check=False
    )
    found = shutil.which("wrk")
    if found is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"apt-get install wrk failed: {tail[0]}"
    return found, ""


# What every request carries in production besides the delivery's own headers: Instantly's client
# (FACTS.md: a captured delivery) and Cloud Run's front end (the client address and the trace).
CLOUD_RUN_HEADERS = {
    "User-Agent": "axios/0.21.4",
    "Accept": "application/json, text/plain, */*",
    "X-Forwarded-For": "34.75.2.18",
    "X-Forwarded-Proto": "https",
    "Forwarded": 'for="34.75.2.18";proto=https',
    "X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1",
    "Traceparent": "00-105445aa7843bc8bf206b12000100000-0000000000000001-01",
}


def _wrk_script(directory: Path, headers: Mapping[str, str] | None = None) -> Path:
    event = sample_event("reply_received", step=1000000000, pad="")
    event["pad"] = "x" * max(0, PAYLOAD_BYTES - len(json.dumps(event).encode()))
    head, tail = json.dumps(event).split("1000000000", 1)
    extra = "".join(
        f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n"
        for name, value in (headers or {}).items()
    )
    script = directory / ("deliveries-headers.lua" if headers else "deliveries.lua")
    script.write_text(
        _WRK_SCRIPT
        % {"secret": json.dumps(SECRET), "head": json.dumps(head), "tail": json.dumps(tail)}
        + extra
    )
    return script


def _on_cpu(cpu: int | None) -> list[str]:
    """The command prefix that runs a program on CPU `cpu` only (none when `cpu` is None)."""
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def _two_cpus() -> tuple[tuple[int, int] | None, str]:
    """A CPU for the server and another for wrk, or None and why not."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:  # one for each side
        return None, f"this process may run on {len(cpus)} CPU only"
    if shutil.which("taskset") is None:
        return None, "taskset (util-linux) is not installed"
    return (cpus[0], cpus[1]), ""


def _wrk_rate(wrk: str, url: str, script: Path, cpu: int | None = None) -> float:
    done = subprocess.run(
        [
            *_on_cpu(cpu),
            *(wrk, "-t1", f"-c{WRK_CONNECTIONS}", f"-d{WRK_SECONDS}s", "-s", str(script), url),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=WRK_SECONDS + 60,
    )
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"wrk saw failed requests:\n{done.stdout}")
    found = re.search(r"Requests/sec:\s*([0-9.]+)", done.stdout)
    if found is None:
        raise RuntimeError(f"no rate in wrk's output:\n{done.stdout}")
    return float(found.group(1))


def _wrk_rows(state_dir: Path, bare_source: Path) -> list[Row]:
    wrk, why = _wrk()
    if wrk is None:
        print(f"  webhook: no wrk rows: {why}", file=sys.stderr, flush=True)
        return [Row("receive_webhook req/s under wrk", 0, "req/s", None, f"not measured: {why}")]
    common = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(state_dir),
        "INSTANTLY_WEBHOOK_SECRET": SECRET,
    }
    traced = {**common, "GOOGLE_CLOUD_PROJECT": "bench-project"}  # lines carry the trace
    setups = {
        "bare": ("bare", bare_source, common),
        "noop": ("receive_webhook", MAIN, {**common, "WEBHOOK_PUBLISHER": "noop"}),
        "outbox": ("receive_webhook", MAIN, {**common, "WEBHOOK_PUBLISHER": "outbox"}),
        "bare+headers": ("bare", bare_source, traced),
        "noop+headers": ("receive_webhook", MAIN, {**traced, "WEBHOOK_PUBLISHER": "noop"}),
    }
    pinned, why_not = _two_cpus()
    if pinned is not None:  # the same two, the server alone on one CPU and wrk on another
        setups["bare@1cpu"] = setups["bare"]
        setups["noop@1cpu"] = setups["noop"]
    plain = _wrk_script(state_dir.parent)
    production = _wrk_script(state_dir.parent, CLOUD_RUN_HEADERS)
    rates: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(WRK_ROUNDS):
        for name, (target, source, env) in setups.items():
            script = production if name.endswith("+headers") else plain
            server_cpu, wrk_cpu = pinned if name.endswith("@1cpu") and pinned else (None, None)
            with _server(target, source, env, server_cpu) as (url, _pid):
                _load(url, _payloads(200, 10**8 + len(rates[name]) * 1000))  # warm-up
                rates[name].append(_wrk_rate(wrk, url, script, wrk_cpu))
    how = (
        f"wrk -t1 -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s, distinct 2 KB deliveries; "
        f"{WRK_ROUNDS} rounds, ratio = median of per-round ratios"
    )
    one_cpu_name = "receive_webhook req/s under wrk, server alone on one CPU, no-op publisher"
    if pinned is None:
        one_cpu = [Row(one_cpu_name, 0, "req/s", None, f"not measured: {why_not}")]
    else:
        one_cpu = [
            Row(
                "bare function req/s under wrk, server alone on one CPU",
                statistics.median(rates["bare@1cpu"]),
                "req/s",
                None,
                f"server on CPU {pinned[0]}, wrk on CPU {pinned[1]}; {how}",
            ),
            _rate_row(
                one_cpu_name,
                rates["noop@1cpu"],
                rates["bare@1cpu"],
                "as Cloud Run runs it (terraform: one vCPU); the server's CPU time is the "
                "limit, not shared with wrk",
            ),
        ]
    return [
        Row("bare function req/s under wrk", statistics.median(rates["bare"]), "req/s", None, how),
        _rate_row(
            "receive_webhook req/s under wrk, no-op publisher",
            rates["noop"],
            rates["bare"],
            "goal >= 0.8 of the bare function in the same round",
        ),
        _rate_row(
            "receive_webhook req/s under wrk, durable outbox",
            rates["outbox"],
            rates["bare"],
            "GUARD_BACKEND=local outbox",
        ),
        _rate_row(
            "receive_webhook req/s under wrk, Cloud Run's request headers, no-op publisher",
            rates["noop+headers"],
            rates["bare+headers"],
            "both sides sent Instantly's and Cloud Run's headers (client address, trace); "
            "the receiver's lines carry the trace",
        ),
        *one_cpu,
    ]


def _throughput(
    state_dir: Path, bare_source: Path
) -> tuple[dict[str, list[float]], dict[str, float | None]]:
    """Requests/s of each setup in each round (round order), and the server's CPU microseconds
    per request (median over rounds)."""
    common = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(state_dir),
        "INSTANTLY_WEBHOOK_SECRET": SECRET,
    }
    setups = {
        "bare": ("bare", bare_source, common),
        "noop": ("receive_webhook", MAIN, {**common, "WEBHOOK_PUBLISHER": "noop"}),
        "outbox": ("receive_webhook", MAIN, {**common, "WEBHOOK_PUBLISHER": "outbox"}),
    }
    rates: dict[str, list[float]] = {name: [] for name in setups}
    cpu: dict[str, list[float]] = {name: [] for name in setups}
    offset = 0
    for _ in range(ROUNDS):
        for name, (target, source, env) in setups.items():
            bodies = _payloads(REQUESTS, offset)
            offset += REQUESTS
            with _server(target, source, env) as (url, pid):
                _load(url, bodies[:200])  # warm-up (cold start, first connections)
                before = _cpu_seconds(pid)
                rates[name].append(_load(url, bodies[200:]))
                after = _cpu_seconds(pid)
                if before is not None and after is not None:
                    cpu[name].append((after - before) / (len(bodies) - 200) * 1e6)
    per_request = {name: statistics.median(v) if v else None for name, v in cpu.items()}
    return rates, per_request


def _rate_row(name: str, rates: list[float], bare: list[float], note: str) -> Row:
    """value = median rate; baseline chosen so that value / baseline = median per-round ratio."""
    ratios = [mine / theirs for mine, theirs in zip(rates, bare, strict=True)]
    value = statistics.median(rates)
    ratio = statistics.median(ratios)
    spread = f"per-round ratios {min(ratios):.2f}-{max(ratios):.2f}"
    return Row(name, value, "req/s", value / ratio, f"{note}; {spread}")


CALLGRIND_COUNTS = (200, 1200)
_COLLECTED = re.compile(r"Collected\s*:\s*([0-9]+)")


def _callgrind(valgrind: str, target: str, source: Path, env: Mapping[str, str]) -> float:
    """Instructions one request costs in process (see `benchmarks.wsgi_requests`)."""
    counts = []
    for count in CALLGRIND_COUNTS:
        done = subprocess.run(
            [
                *(valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"),
                *(sys.executable, "-m", "benchmarks.wsgi_requests", target, str(source)),
                str(count),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            # A fixed hash seed: string hashes decide dict and set layouts, which move the
            # count by about 1% from one run to the next.
            env={**os.environ, **env, "PYTHONHASHSEED": "0"},
            timeout=900,
        )
        found = _COLLECTED.search(done.stderr)
        if found is None:
            raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / (CALLGRIND_COUNTS[1] - CALLGRIND_COUNTS[0])


def _instruction_rows(state_dir: Path, bare_source: Path) -> list[Row]:
    """Instructions per request, bare function and receiver, counted by callgrind: exact where
    every timing on a shared machine drifts, so a change of a few percent shows."""
    name = "receive_webhook instructions per request in process, no-op publisher"
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return [Row(name, 0, "instructions", None, "not measured: valgrind is not installed")]
    env = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(state_dir),
        "INSTANTLY_WEBHOOK_SECRET": SECRET,
        "WEBHOOK_PUBLISHER": "noop",
    }
    results: dict[str, float] = {}
    errors: list[BaseException] = []

    def count(key: str, target: str, source: Path) -> None:
        try:
            results[key] = _callgrind(valgrind, target, source, env)
        except BaseException as exc:  # reported below, from the calling thread
            errors.append(exc)

    threads = [
        threading.Thread(target=count, args=("bare", "bare", bare_source)),
        threading.Thread(target=count, args=("receiver", "receive_webhook", MAIN)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    note = (
        "callgrind, functions-framework's WSGI app called in process, 2 KB deliveries, "
        f"{CALLGRIND_COUNTS[1]} minus {CALLGRIND_COUNTS[0]} requests; "
        "baseline: the bare function (Flask, functions-framework)"
    )
    return [Row(name, results["receiver"], "instructions", results["bare"], note)]


def _handler_cpu(state_dir: Path) -> tuple[float, float]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    with open(os.devnull, "w") as sink:
        configure_logging("INFO", stream=sink)
        try:
            env = {
                "GUARD_BACKEND": "local",
                "GUARD_STATE_DIR": str(state_dir),
                "INSTANTLY_WEBHOOK_SECRET": SECRET,
                "WEBHOOK_PUBLISHER": "noop",
            }
            receiver = build_receiver(env)
            requests = [delivery(body, SECRET) for body in _payloads(CPU_SAMPLES + 200, 10**6)]
            samples = []
            for n, request in enumerate(requests):
                began = time.process_time_ns()
                status = receiver.handle(request).status
                spent = time.process_time_ns() - began
                if status != 200:
                    raise RuntimeError(f"handler answered {status}")
                if n >= 200:
                    samples.append(spent / 1000)
        finally:
            flush_lines()  # before the sink closes: lines are held back up to 0.1 s
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
    return percentile(samples, 50), percentile(samples, 99)


_IMPORT_FF = "import functions_framework"
_IMPORT_MAIN = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('main', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
)
_TIMER = "import time\nbegan = time.perf_counter()\n{code}\nprint(time.perf_counter() - began)\n"


def _import_ms(code: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _TIMER.format(code=code), str(MAIN)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=120,
    )
    return float(done.stdout.strip().splitlines()[-1]) * 1000


def _imports() -> tuple[float, float]:
    ff, main = [], []
    for _ in range(IMPORT_RUNS):  # interleaved, so a slow moment hurts both alike
        ff.append(_import_ms(_IMPORT_FF))
        main.append(_import_ms(_IMPORT_MAIN))
    return statistics.median(main), statistics.median(ff)


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        tmp_path = Path(tmp)
        bare_source = tmp_path / "bare" / "main.py"
        bare_source.parent.mkdir()
        bare_source.write_text(BARE_FUNCTION)
        rates, server_cpu = _throughput(tmp_path / "state", bare_source)
        p50, p99 = _handler_cpu(tmp_path / "cpu-state")
        wrk_rows = _wrk_rows(tmp_path / "wrk-state", bare_source)
        instruction_rows = _instruction_rows(tmp_path / "callgrind-state", bare_source)
    main_ms, ff_ms = _imports()
    server = (
        f"gunicorn via functions-framework, {REQUESTS - 200} x 2 KB POSTs, "
        f"{CONCURRENCY} keep-alive connections; value = median of {ROUNDS} rounds, "
        "ratio = median of per-round webhook/bare ratios, baseline = value / ratio"
    )
    rows = [
        _rate_row(
            "receive_webhook req/s, no-op publisher",
            rates["noop"],
            rates["bare"],
            f"baseline: bare function returning 200 in the same round; {server}",
        ),
        _rate_row(
            "receive_webhook req/s, durable outbox",
            rates["outbox"],
            rates["bare"],
            "GUARD_BACKEND=local: one fsync'd file + directory fsync per event; ratio as above",
        ),
    ]
    if server_cpu["noop"] is not None:
        rows.append(
            Row(
                "server CPU per request, no-op publisher",
                server_cpu["noop"],
                "us",
                server_cpu["bare"],
                "gunicorn master + workers (/proc), median of rounds; baseline: bare function",
            )
        )
    rows += wrk_rows
    rows += instruction_rows
    rows += [
        Row("handle() CPU per request, p50", p50, "us", None, "in process, 2 KB, no-op publisher"),
        Row("handle() CPU per request, p99", p99, "us", None, "includes the JSON log line"),
        Row(
            "cold import of functions/webhook/main.py",
            main_ms,
            "ms",
            ff_ms,
            f"baseline: import functions_framework alone; median of {IMPORT_RUNS}",
        ),
    ]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
