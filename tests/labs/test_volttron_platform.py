"""labs.volttron_platform's guard of ``~/.volttron_instances``: platforms of one user, started at once, read the
file another one is rewriting in place; one died on the truncated file (JSONDecodeError at start-up, make demo and
a clean-clone CI run). ``instances_lock`` lets one start at a time through that window, and ``start()`` mends a file
that does not parse."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from labs.volttron_platform import Platform, chown_tree, instances_lock, make_shared_dir
from labs.wait import WaitTimeout


def test_the_instances_lock_lets_one_holder_in_at_a_time(tmp_path: Path) -> None:
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []

    def hold(name: str) -> None:
        with instances_lock(tmp_path, timeout=10):
            inside.append(name)
            overlaps.append(tuple(inside))
            time.sleep(0.2)
            inside.remove(name)

    threads = [threading.Thread(target=hold, args=(n,)) for n in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(overlaps) == [("a",), ("b",), ("c",)]  # each alone inside


def test_the_instances_lock_gives_up_after_its_timeout(tmp_path: Path) -> None:
    with instances_lock(tmp_path), pytest.raises(WaitTimeout, match="volttron_instances"), \
            instances_lock(tmp_path, timeout=0.3):
        pass


@pytest.mark.integration
def test_a_platform_starts_over_a_truncated_instances_file_and_writes_its_entry() -> None:
    """The file as a platform left it when it was preempted between its open("w") and its write: empty. Without
    the mending, VOLTTRON's start-up reads it and exits (JSONDecodeError)."""
    base = make_shared_dir("ft-instances-")
    try:
        p = Platform("lone", base)
        p.user_home = base / "user-home"  # a HOME of this test's own: the real one is the other platforms'
        p.user_home.mkdir()
        p.env["HOME"] = str(p.user_home)
        (p.user_home / ".volttron_instances").write_text("")
        chown_tree(p.user_home, p.user)
        p.start()
        try:
            listed = json.loads((p.user_home / ".volttron_instances").read_text())
            assert listed[p.vhome.resolve().as_posix()]["pid"] == p.proc.pid  # type: ignore[union-attr]
        finally:
            p.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
