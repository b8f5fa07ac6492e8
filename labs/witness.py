"""A real witness process for tests and benches: ``python -m FailoverWitness`` with a config it writes.

``WitnessProcess(dir, groups, listen="127.0.0.1")`` writes ``witness.toml`` (port 0: the witness picks a
free port and logs it; no race between choosing a port and binding it), ``start()`` runs it and waits
for the "listening on HOST:PORT" line, ``stop(sig)`` ends it by its PID. Pass ``popen`` to run it
elsewhere, e.g. inside a network namespace: ``popen=lambda cmd, **kw: net.popen("w", cmd, net_only=True, **kw)``.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labs import importable_env
from labs.wait import poll_until

LISTENING = re.compile(rb"listening on (\S+):(\d+) ")


class WitnessProcess:
    def __init__(self, directory: Path, groups: Mapping[str, Mapping[str, Any]], *, listen: str = "127.0.0.1",
                 name: str = "witness-lab", popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
                 extra: Mapping[str, Any] | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "witness.json"
        self.config.write_text(json.dumps({"name": name, "listen": listen, "port": 0, "groups": dict(groups),
                                           **(extra or {})}, indent=2))
        self.log = self.dir / "witness.log"
        self.listen = listen
        self.popen = popen
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the witness has not started")
        host = f"[{self.listen}]" if ":" in self.listen else self.listen
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 20.0) -> WitnessProcess:
        """Run it (a fresh process, on a fresh port) and wait until it listens."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"the witness already runs (pid {self.proc.pid})")
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = self.popen([sys.executable, "-m", "FailoverWitness", "-c", str(self.config)],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=importable_env())
        self.starts += 1

        def listening() -> int | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the witness exited with {self.proc.returncode}:\n{self.log_text()}")
            with open(self.log, "rb") as f:
                f.seek(offset)
                m = LISTENING.search(f.read())
            return int(m.group(2)) if m else None

        self.port = poll_until(listening, timeout, what="the witness to listen")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Send ``sig`` to our process (by its PID) and wait for it; None when it was not running."""
        p = self.proc
        if p is None or p.poll() is not None:
            return None if p is None else p.returncode
        p.send_signal(sig)
        if sig == signal.SIGSTOP:
            return None
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait(5)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def get(self, path: str, timeout: float = 2.0) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def status(self) -> dict[str, Any]:
        return self.get("/status")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> WitnessProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.resume()
        self.stop(signal.SIGKILL)
