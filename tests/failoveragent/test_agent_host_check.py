"""The host check of TCP's retransmission ceiling (failover_agent/host_check.py), on made-up /proc files."""

from __future__ import annotations

from pathlib import Path

from failover_agent.host_check import ADVISED_MS, rto_warning


def test_the_kernel_default_is_named_with_the_setting_to_change(tmp_path: Path) -> None:
    f = tmp_path / "tcp_rto_max_ms"
    f.write_text("120000\n")
    warning = rto_warning(1.0, f)
    assert warning is not None and "120000 ms" in warning and f"set it to {ADVISED_MS}" in warning


def test_the_advised_value_and_anything_under_two_heartbeats_say_nothing(tmp_path: Path) -> None:
    f = tmp_path / "tcp_rto_max_ms"
    f.write_text(f"{ADVISED_MS}\n")
    assert rto_warning(1.0, f) is None
    f.write_text("15000\n")
    assert rto_warning(10.0, f) is None  # 15 s of back-off is under two 10 s heartbeats
    assert rto_warning(5.0, f) is not None


def test_an_old_kernel_or_an_unreadable_file_is_said_not_guessed(tmp_path: Path) -> None:
    missing = rto_warning(1.0, tmp_path / "absent")
    assert missing is not None and "Linux < 6.11" in missing
    bad = tmp_path / "garbage"
    bad.write_text("many\n")
    unknown = rto_warning(1.0, bad)
    assert unknown is not None and "unknown" in unknown
