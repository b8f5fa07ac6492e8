"""A tiny HTTP service with start/stop/probe commands, for HaValet's tests, demo and bench.

It is a real service the valet can manage the way an operator's would be managed::

    python -m labs.valet_service start --state-dir D --name N [--bind ADDR] [--port P] [--priority K]
    python -m labs.valet_service stop  --state-dir D --name N
    python -m labs.valet_service probe --state-dir D --name N   |   probe --url http://ADDR:P/

``serve`` appends ``up WALLTIME PID`` to ``D/N.journal`` once it listens and ``down WALLTIME PID`` when it exits
on SIGTERM/SIGINT (a SIGKILL writes nothing): the ground truth of when the service ran, for the tests'
overlap checks. ``start`` launches ``serve`` in the background and returns 0 once it listens (1 if it could not bind);
like an init script it returns 0 at once when the service already runs (its pid file names a live ``serve``:
deleting that file first orphaned the running service, which ``stop`` then no longer found: chaos seed 3).
``GET /priority`` answers the runtime priority: the file ``D/N.priority`` if present, else ``--priority``.
``probe`` exits with that priority (1..125) when the service answers, 0 when it does not: the
ha_valet test_command convention. ``stop`` sends SIGTERM to the pid in ``D/N.pid`` and waits.

labs/ is not installed: whoever runs this module (a valet, a namespace, another user) needs the
repo root on PYTHONPATH (``labs.importable_env``); ``start`` passes it on to ``serve``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from labs import importable_env


def _journal(state_dir: str, name: str, what: str) -> None:
    with open(Path(state_dir) / f"{name}.journal", "a") as f:
        f.write(f"{what} {time.time():.6f} {os.getpid()}\n")


def _paths(state_dir: str, name: str) -> tuple[Path, Path, Path]:
    d = Path(state_dir)
    return d / f"{name}.pid", d / f"{name}.port", d / f"{name}.priority"


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def serve(args: argparse.Namespace) -> int:
    pid_file, port_file, prio_file = _paths(args.state_dir, args.name)
    default_priority = args.priority

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                prio = prio_file.read_text().strip() or str(default_priority)
            except OSError:
                prio = str(default_priority)
            body = f"{prio}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *a: object) -> None:  # quiet
            pass

    try:
        server = http.server.ThreadingHTTPServer((args.bind, args.port), Handler)
    except OSError as e:
        print(f"valet_service {args.name}: cannot listen on {args.bind}:{args.port}: {e}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _raise_interrupt)
    pid_file.write_text(f"{os.getpid()}\n")
    port_file.write_text(f"{server.server_address[1]}\n")
    _journal(args.state_dir, args.name, "up")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        _journal(args.state_dir, args.name, "down")
        for p in (pid_file, port_file):
            with contextlib.suppress(OSError):
                if p == port_file or p.read_text().strip() == str(os.getpid()):
                    p.unlink()
    return 0


def start(args: argparse.Namespace) -> int:
    pid_file, port_file, _ = _paths(args.state_dir, args.name)
    running = _serving(pid_file)
    if running is not None:
        print(f"valet_service {args.name}: already running (pid {running})", file=sys.stderr)
        return 0
    for p in (pid_file, port_file):
        with contextlib.suppress(OSError):
            p.unlink()
    cmd = [sys.executable, "-m", "labs.valet_service", "serve", "--state-dir", args.state_dir,
           "--name", args.name, "--bind", args.bind, "--port", str(args.port), "--priority", str(args.priority)]
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
                             env=importable_env())
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if port_file.exists():
            return 0
        if child.poll() is not None:
            print(f"valet_service {args.name}: failed to start (exit {child.returncode})", file=sys.stderr)
            return 1
        time.sleep(0.01)
    print(f"valet_service {args.name}: not listening after {args.wait}s", file=sys.stderr)
    return 1


def stop(args: argparse.Namespace) -> int:
    pid_file, _, _ = _paths(args.state_dir, args.name)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return 0  # not running
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if not _running(pid):
            return 0
        time.sleep(0.01)
    return 1


def _serving(pid_file: Path) -> int | None:
    """The pid of the live ``serve`` that ``pid_file`` names, else None (no file, a stale or reused pid)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if b"serve" in cmdline and _running(pid) else None


def _running(pid: int) -> bool:
    """Alive and not a zombie (the service is re-parented; its new parent may reap it late)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def probe(args: argparse.Namespace) -> int:
    url = args.url
    if url is None:
        _, port_file, _ = _paths(args.state_dir, args.name)
        try:
            url = f"http://127.0.0.1:{int(port_file.read_text().strip())}/priority"
        except (OSError, ValueError):
            return 0
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        with opener.open(url, timeout=args.timeout) as r:
            prio = int(r.read().decode().strip())
    except (OSError, ValueError):
        return 0
    return prio if 1 <= prio <= 125 else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m labs.valet_service", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["serve", "start", "stop", "probe"])
    p.add_argument("--state-dir", "--dir", default="/tmp")
    p.add_argument("--name", default="sample")
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--priority", type=int, default=1)
    p.add_argument("--url")
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--wait", type=float, default=5.0)
    args = p.parse_args(argv)
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return {"serve": serve, "start": start, "stop": stop, "probe": probe}[args.action](args)


if __name__ == "__main__":
    raise SystemExit(main())
