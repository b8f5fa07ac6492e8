"""HMAC signing, forged and replayed heartbeats, stale timestamps, nonce windows."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover_core import HeartbeatSigner, RemoteInputError, ReplayWindow
from failover_core.heartbeat_auth import canonical_bytes

HB = {"sender": "primary", "seq": 5, "time": 1000.0, "boot": "b1"}


def test_sign_and_verify_roundtrip_and_field_order_does_not_matter():
    s = HeartbeatSigner("s3cret")
    mac = s.sign(HB)
    s.verify(dict(reversed(list(HB.items()))), mac)


@pytest.mark.parametrize("tamper", [
    {"sender": "secondary"}, {"seq": 6}, {"time": 1000.5}, {"boot": "b2"},
])
def test_any_changed_field_fails(tamper):
    s = HeartbeatSigner("s3cret")
    mac = s.sign(HB)
    with pytest.raises(RemoteInputError) as e:
        s.verify({**HB, **tamper}, mac)
    assert e.value.reason == "bad_mac"


def test_wrong_secret_and_garbage_macs_fail():
    mac = HeartbeatSigner("other").sign(HB)
    s = HeartbeatSigner("s3cret")
    for bad in (mac, "", "00" * 32, None, 42):
        with pytest.raises(RemoteInputError):
            s.verify(HB, bad)


def test_without_secret_only_unsigned_messages_pass():
    s = HeartbeatSigner(None)
    assert not s.enabled and s.sign(HB) == ""
    s.verify(HB, "")
    with pytest.raises(RemoteInputError):
        s.verify(HB, "abc")


def test_unsignable_fields_are_malformed_remote_input():
    with pytest.raises(RemoteInputError) as e:
        HeartbeatSigner("k").verify({"x": [1, 2]}, "00")
    assert e.value.reason == "malformed"
    with pytest.raises(RemoteInputError):
        HeartbeatSigner("k").verify({"x": float("nan")}, "00")


def test_canonical_bytes_are_stable():
    assert canonical_bytes({"b": 1, "a": "x"}) == b'{"a":"x","b":1}'


def test_sequence_replay_and_staleness():
    w = ReplayWindow(max_skew=10)
    w.check_seq(sender="p", boot="b1", seq=1, timestamp=100, wall_now=100)
    w.check_seq(sender="p", boot="b1", seq=2, timestamp=101, wall_now=101)
    for seq in (1, 2):
        with pytest.raises(RemoteInputError) as e:
            w.check_seq(sender="p", boot="b1", seq=seq, timestamp=101, wall_now=101)
        assert e.value.reason == "replayed"
    with pytest.raises(RemoteInputError) as e:
        w.check_seq(sender="p", boot="b1", seq=3, timestamp=80, wall_now=101)
    assert e.value.reason == "stale"
    with pytest.raises(RemoteInputError):
        w.check_seq(sender="p", boot="b1", seq=3, timestamp=120, wall_now=101)  # from the future
    # a restarted sender (new boot id) starts again at seq 1
    w.check_seq(sender="p", boot="b2", seq=1, timestamp=102, wall_now=102)
    # a message of the old boot that was never seen (higher seq) is still accepted once
    w.check_seq(sender="p", boot="b1", seq=3, timestamp=102, wall_now=102)


def test_senders_are_tracked_separately():
    w = ReplayWindow(max_skew=10)
    w.check_seq(sender="p", boot="b", seq=5, timestamp=0, wall_now=0)
    w.check_seq(sender="s", boot="b", seq=1, timestamp=0, wall_now=0)


@pytest.mark.parametrize(("seq", "ts"), [(-1, 0), ("1", 0), (True, 0), (1.5, 0), (1, "0"), (1, float("nan"))])
def test_malformed_seq_or_timestamp(seq, ts):
    with pytest.raises(RemoteInputError) as e:
        ReplayWindow(10).check_seq(sender="p", boot="b", seq=seq, timestamp=ts, wall_now=0)
    assert e.value.reason == "malformed"


def test_nonce_window():
    w = ReplayWindow(max_skew=5)
    w.check_nonce(nonce="n" * 16, timestamp=100, wall_now=100)
    with pytest.raises(RemoteInputError) as e:
        w.check_nonce(nonce="n" * 16, timestamp=100, wall_now=103)
    assert e.value.reason == "replayed"
    with pytest.raises(RemoteInputError) as e:
        w.check_nonce(nonce="n" * 16, timestamp=100, wall_now=106)
    assert e.value.reason == "stale"
    for bad in ("short", 12345678, "x" * 200):
        with pytest.raises(RemoteInputError):
            w.check_nonce(nonce=bad, timestamp=100, wall_now=100)


def test_nonce_window_forgets_only_what_is_stale_anyway():
    w = ReplayWindow(max_skew=5)
    for i in range(100):
        w.check_nonce(nonce=f"nonce-{i:04d}", timestamp=float(i), wall_now=float(i))
    assert len(w._nonces) <= 12  # pruned: older ones would be refused as stale
    with pytest.raises(RemoteInputError):
        w.check_nonce(nonce="nonce-0099", timestamp=99.0, wall_now=99.5)


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(), st.floats(), st.none(),
                                                       st.lists(st.integers()))),
       st.one_of(st.text(), st.none(), st.integers(), st.binary()))
def test_verify_never_raises_anything_but_remote_input_error(fields, mac):
    with contextlib.suppress(RemoteInputError):
        HeartbeatSigner("k").verify(fields, mac)
