"""The listening fence keeper (``python -m DockerFailover.fence --listen SOCKET``, ``KeeperServer``) over real unix
stream sockets, with a recording kill function in place of the Docker socket: the agent's connection and its
lines, end-of-file while holding, a second agent refused while one is connected, probes, a stale socket file, the
keeper's SIGTERM. Its real kill of a container is exercised in test_docker_keeper_container.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from DockerFailover.fence import FenceKeeper, KeeperServer, SocketInUse, ping
from labs.wait import poll_until


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, list[str]]] = []

    def __call__(self, docker_url: str | None, names: list[str]) -> list[str]:
        self.calls.append((time.monotonic(), list(names)))
        return ["killed"] * len(names)


class Running:
    """A KeeperServer stepping in a thread (what ``serve`` does, but stoppable)."""

    def __init__(self, path: Path, expected: list[str] | None = None) -> None:
        self.kills = Recorder()
        self.keeper = FenceKeeper("unix:///nonexistent.sock", [], kill=self.kills)
        self.server = KeeperServer(str(path), self.keeper, expected)
        self.server.open()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            self.server.step(0.02)

    def stop(self) -> None:
        self._stop = True
        self.thread.join(5)
        self.server.close()


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "keeper.sock"


@pytest.fixture
def keeper(sock_path: Path) -> Iterator[Running]:
    r = Running(sock_path)
    try:
        yield r
    finally:
        r.stop()


class Agent:
    """The agent's side of the connection, as a plain blocking socket."""

    def __init__(self, path: Path, server: str = "server1", names: str = "web db") -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(2.0)
        self.sock.connect(str(path))
        self.sock.sendall(f"guard {server} {names}\n".encode())
        self.answer = self.readline()

    def readline(self) -> str:
        data = b""
        while not data.endswith(b"\n"):
            chunk = self.sock.recv(1024)
            if not chunk:
                break
            data += chunk
        return data.decode().strip()

    def say(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def close(self) -> None:
        self.sock.close()


def test_a_connected_agent_is_guarded_and_end_of_file_while_holding_kills_at_once(keeper: Running,
                                                                                   sock_path: Path) -> None:
    agent = Agent(sock_path)
    assert agent.answer.startswith("ok guarding web db")
    assert oct(sock_path.stat().st_mode & 0o777) == "0o660"
    agent.say(f"hold {time.monotonic() + 60:.6f}")
    poll_until(lambda: keeper.keeper.deadline is not None, 2, what="the hold read")
    t0 = time.monotonic()
    agent.close()  # the agent's process died: the kernel closes its end
    poll_until(lambda: keeper.kills.calls, 2, what="a kill")
    assert keeper.kills.calls[0][1] == ["web", "db"] and keeper.kills.calls[0][0] - t0 < 0.5
    # the keeper stays for the next agent (the restarted one), which is accepted
    again = Agent(sock_path)
    assert again.answer.startswith("ok")
    again.close()


def test_an_expired_lease_kills_at_its_end_and_the_agent_may_hold_again(keeper: Running, sock_path: Path) -> None:
    agent = Agent(sock_path)
    until = time.monotonic() + 0.2
    agent.say(f"hold {until:.6f}")
    poll_until(lambda: keeper.kills.calls, 2, what="a kill at the lease's end")
    assert keeper.kills.calls[0][0] >= until and keeper.kills.calls[0][0] - until < 0.2
    agent.say(f"hold {time.monotonic() + 60:.6f}")  # the agent thawed, took over again later
    poll_until(lambda: keeper.keeper.deadline is not None, 2, what="the new hold")
    agent.say("release")
    poll_until(lambda: keeper.keeper.deadline is None, 2, what="the release")
    agent.close()
    time.sleep(0.1)  # nothing may happen: end-of-file holding nothing
    assert len(keeper.kills.calls) == 1


def test_renewals_postpone_and_detach_or_release_then_close_kill_nothing(keeper: Running, sock_path: Path) -> None:
    agent = Agent(sock_path)
    soon = time.monotonic() + 0.2
    agent.say(f"hold {soon:.6f}")
    agent.say(f"hold {soon + 60:.6f}")
    time.sleep(0.4)  # past the first deadline: the renewal must have moved it
    assert not keeper.kills.calls
    agent.say("detach")  # exits on purpose leaving the containers running
    assert agent.readline() == ""  # the keeper closes the connection after detach
    agent.close()
    poll_until(lambda: keeper.server.agent is None, 2, what="the agent forgotten")
    assert not keeper.kills.calls and keeper.keeper.deadline is None


def test_a_second_agent_is_refused_while_one_is_connected_even_a_frozen_one(keeper: Running,
                                                                             sock_path: Path) -> None:
    first = Agent(sock_path, "server1")
    first.say(f"hold {time.monotonic() + 60:.6f}")
    poll_until(lambda: keeper.keeper.deadline is not None, 2, what="the hold read")
    second = Agent(sock_path, "server1-again")
    assert second.answer.startswith("refused another agent (server1) is connected")
    assert second.readline() == ""  # closed
    second.close()
    assert keeper.keeper.deadline is not None and not keeper.kills.calls  # the first's hold stands
    assert keeper.server.refused == 1
    first.close()
    poll_until(lambda: keeper.kills.calls, 2, what="the kill at the first's end-of-file")


def test_probes_answer_any_time_and_do_not_disturb_the_agent(keeper: Running, sock_path: Path) -> None:
    assert ping(str(sock_path))[0]
    agent = Agent(sock_path)
    agent.say(f"hold {time.monotonic() + 60:.6f}")
    poll_until(lambda: keeper.keeper.deadline is not None, 2, what="the hold read")
    ok, text = ping(str(sock_path))
    assert ok and text == "pong holding agent=server1"
    assert keeper.server.agent is not None and not keeper.kills.calls
    agent.say("release")
    agent.close()


def test_bad_first_lines_and_other_names_are_refused(sock_path: Path) -> None:
    r = Running(sock_path, expected=["web"])
    try:
        assert Agent(sock_path, names="web db").answer == "refused this keeper guards web, not web db"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(str(sock_path))
        s.sendall(b"hold 123\n")
        assert s.recv(200).startswith(b"refused expected 'guard")
        s.close()
        ok = Agent(sock_path, names="web")
        assert ok.answer.startswith("ok guarding web")
        ok.close()
        assert not r.kills.calls
    finally:
        r.stop()


def test_a_stale_socket_file_is_replaced_and_a_live_keeper_is_not(sock_path: Path) -> None:
    sock_path.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()  # the file stays: a keeper that died
    r = Running(sock_path)
    try:
        assert ping(str(sock_path))[0]
        with pytest.raises(SocketInUse, match="another fence keeper"):
            KeeperServer(str(sock_path), FenceKeeper(None, [])).open()
    finally:
        r.stop()
    assert not sock_path.exists()  # removed on close
    sock_path.write_text("x")
    with pytest.raises(SocketInUse, match="not a socket"):
        KeeperServer(str(sock_path), FenceKeeper(None, [])).open()


def test_the_keeper_process_kills_on_sigterm_while_holding_and_not_when_idle(sock_path: Path) -> None:
    """``python -m DockerFailover.fence --listen``: SIGTERM while an agent holds kills (through a Docker URL
    nobody answers, so the kill is reported failed in its log line); SIGTERM with nothing held exits quietly."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for holding in (True, False):
        p = subprocess.Popen([sys.executable, "-m", "DockerFailover.fence", "--listen", str(sock_path),
                              "--docker-url", f"unix://{sock_path.parent}/no-docker.sock"],
                             stderr=subprocess.PIPE, env=env)
        try:
            poll_until(lambda: ping(str(sock_path))[0], 10, what="the keeper listening")
            agent = Agent(sock_path)
            if holding:
                agent.say(f"hold {time.monotonic() + 60:.6f}")
                poll_until(lambda: ping(str(sock_path))[1].startswith("pong holding"), 5, what="the hold read")
            p.send_signal(signal.SIGTERM)
            assert p.wait(5) == 0
            err = p.stderr.read().decode() if p.stderr else ""
            assert ("stopped (SIGTERM/SIGINT) while holding a lease" in err) is holding, err
            assert not sock_path.exists()
            agent.close()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_the_command_line_needs_names_or_listen_and_ping_reports_no_keeper(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, "-m", "DockerFailover.fence"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "container names are required" in r.stderr
    r = subprocess.run([sys.executable, "-m", "DockerFailover.fence", "--ping", str(tmp_path / "none.sock")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "FileNotFoundError" in r.stdout


def test_the_agent_side_reconnects_to_a_restarted_keeper_and_says_its_hold_again(sock_path: Path) -> None:
    """``SocketKeeper`` (the agent's end): not reachable -> on_lost; accepted -> on_ready, the hold arrives; the
    keeper killed -> on_lost (the keeper itself kills: end-of-file is on ITS side only when the agent dies, so a
    dead keeper kills nothing); a new keeper on the same path -> on_ready again; close() with ``release``."""
    import asyncio

    from DockerFailover.shell.keeper_link import SocketKeeper

    events: list[str] = []

    async def scenario() -> None:
        link = SocketKeeper(str(sock_path), "server1", ["web"], retry=0.05,
                            on_ready=lambda d: events.append("ready"), on_lost=lambda d: events.append(f"lost {d}"))
        link.start()

        async def until(cond: object, what: str) -> None:
            for _ in range(200):
                if cond():  # type: ignore[operator]
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"timed out: {what}; events {events}")

        await until(lambda: any(e.startswith("lost cannot connect") for e in events), "no keeper yet")
        first = Running(sock_path)
        try:
            await until(lambda: link.connected, "connected")
            link.tell(f"hold {time.monotonic() + 60:.6f}\n")
            await until(lambda: first.keeper.deadline is not None, "the hold at the keeper")
        finally:
            first.stop()  # the keeper goes away (its container killed): it closes our connection
        await until(lambda: not link.connected and events[-1].startswith("lost"), "the loss seen")
        assert first.kills.calls == []  # stopped, not SIGTERMed: Running.stop kills nothing
        second = Running(sock_path)
        try:
            await until(lambda: link.connected, "reconnected")
            assert events.count("ready") == 2
            link.tell(f"hold {time.monotonic() + 60:.6f}\n")  # what the decider does on KeeperConnected
            await until(lambda: second.keeper.deadline is not None, "the hold at the new keeper")
            await link.close("release\n")
            await until(lambda: second.server.agent is None, "the agent's clean end")
            assert second.kills.calls == [] and second.keeper.deadline is None
        finally:
            second.stop()

    asyncio.run(scenario())
