"""Request authentication: HMAC over method, path, timestamp, nonce and body; replay and staleness."""

from __future__ import annotations

import pytest

from DockerFailover.wire import (
    NONCE_HEADER,
    SIG_HEADER,
    TS_HEADER,
    NotAuthenticated,
    PeerInbox,
    RequestAuthenticator,
    decode_body,
    encode_body,
)
from failover_core.errors import RemoteInputError

SECRET = "shared-secret-0123456789"


def signed(auth: RequestAuthenticator, body: bytes, now: float = 1000.0, nonce: str = "n" * 16,
           path: str = "/heartbeat") -> dict[str, str]:
    return auth.sign_request("POST", path, body, wall_now=now, nonce=nonce)


def test_valid_request_accepted_once() -> None:
    tx, rx = RequestAuthenticator(SECRET, 30), RequestAuthenticator(SECRET, 30)
    body = encode_body({"sender": "server1", "term": 3})
    h = signed(tx, body)
    assert rx.verify_request("POST", "/heartbeat", body, h, wall_now=1001.0) == "n" * 16
    with pytest.raises(RemoteInputError) as e:
        rx.verify_request("POST", "/heartbeat", body, h, wall_now=1001.5)
    assert e.value.reason == "replayed"


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda b, h: (b.replace(b"3", b"9"), h), "bad_mac"),  # body changed
    (lambda b, h: (b, {**h, TS_HEADER: "1000.5"}), "bad_mac"),  # timestamp changed
    (lambda b, h: (b, {**h, NONCE_HEADER: "m" * 16}), "bad_mac"),  # nonce changed
    (lambda b, h: (b, {k: v for k, v in h.items() if k != SIG_HEADER}), "unauthenticated"),
    (lambda b, h: (b, {**h, SIG_HEADER: "0" * 64}), "bad_mac"),
])
def test_tampered_requests_are_rejected(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    tx, rx = RequestAuthenticator(SECRET, 30), RequestAuthenticator(SECRET, 30)
    body = encode_body({"sender": "server1", "term": 3})
    b, h = mutate(body, signed(tx, body))
    with pytest.raises(RemoteInputError) as e:
        rx.verify_request("POST", "/heartbeat", b, h, wall_now=1000.0)
    assert e.value.reason == reason


def test_other_secret_other_path_and_stale_are_rejected() -> None:
    rx = RequestAuthenticator(SECRET, 30)
    body = b"{}"
    with pytest.raises(RemoteInputError, match="bad_mac"):
        rx.verify_request("POST", "/heartbeat", body, signed(RequestAuthenticator("another-secret-xxxxxx", 30), body),
                          wall_now=1000.0)
    # a heartbeat's signature does not authorize /become_primary
    with pytest.raises(RemoteInputError, match="bad_mac"):
        rx.verify_request("POST", "/become_primary", body, signed(RequestAuthenticator(SECRET, 30), body),
                          wall_now=1000.0)
    with pytest.raises(RemoteInputError) as e:
        rx.verify_request("POST", "/heartbeat", body, signed(RequestAuthenticator(SECRET, 30), body, now=900.0),
                          wall_now=1000.0)
    assert e.value.reason == "stale"


def test_answers_are_bound_to_the_request_nonce() -> None:
    a = RequestAuthenticator(SECRET, 30)
    sig = a.sign_response("nonce-1234", b'{"accepted":true}')
    a.verify_response("nonce-1234", b'{"accepted":true}', sig)
    for nonce, body, s in (("nonce-9999", b'{"accepted":true}', sig), ("nonce-1234", b'{"accepted":false}', sig),
                           ("nonce-1234", b'{"accepted":true}', None)):
        with pytest.raises(RemoteInputError):
            a.verify_response(nonce, body, s)


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", b"\xff\xfe", b"{" * 20000])
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(RemoteInputError) as e:
        decode_body(body)
    assert e.value.reason == "malformed"


def inbox_and_sender() -> tuple[PeerInbox, RequestAuthenticator]:
    return PeerInbox(RequestAuthenticator(SECRET, 30), "server1", 30), RequestAuthenticator(SECRET, 30)


HB = {"sender": "server1", "term": 3, "role": "active", "eligible": True, "containers_up": True, "boot": "b1"}


def test_inbox_checks_authentication_then_sender_then_fields_then_order() -> None:
    inbox, tx = inbox_and_sender()

    def send(fields: dict, nonce: str, path: str = "/heartbeat", secret_tx: RequestAuthenticator = tx):
        body = encode_body(fields)
        h = signed(secret_tx, body, nonce=nonce, path=path)
        open_ = inbox.heartbeat if path == "/heartbeat" else inbox.hand_over_request
        return open_("POST", path, body, h, wall_now=1000.0)

    nonce, (heartbeat, news) = send({**HB, "seq": 5}, "a" * 16)
    assert nonce == "a" * 16 and heartbeat.term == 3 and heartbeat.role.value == "active" and news
    with pytest.raises(NotAuthenticated) as e:  # 401
        send({**HB, "seq": 6}, "b" * 16, secret_tx=RequestAuthenticator("another-secret-xxxxxx", 30))
    assert e.value.reason == "bad_mac"
    for fields, reason in (({**HB, "sender": "intruder", "seq": 7}, "wrong_sender"),
                           ({**HB, "term": "x", "seq": 8}, "malformed"),
                           ({**HB, "seq": "9"}, "malformed")):
        with pytest.raises(RemoteInputError) as e:  # 400
            send(fields, fields["sender"][:1] * 8 + str(fields["seq"]) * 8)
        assert e.value.reason == reason and not isinstance(e.value, NotAuthenticated)
    assert send({**HB, "seq": 4}, "e" * 16)[1][1] is False  # older than the newest accepted (delivered late): no news
    with pytest.raises(RemoteInputError, match="replayed"):  # the same request again: its nonce
        send({**HB, "seq": 4}, "e" * 16)
    _, asked = send({"sender": "server1", "term": 4, "reason": "web died"}, "c" * 16, path="/become_primary")
    assert (asked.sender, asked.term, asked.reason) == ("server1", 4, "web died")
    with pytest.raises(RemoteInputError, match="malformed"):
        send({"sender": "server1", "term": True}, "d" * 16, path="/become_primary")


def test_inbox_answers_are_signed_over_the_request_nonce() -> None:
    inbox, tx = inbox_and_sender()
    data, headers = inbox.signed_answer("n" * 16, {"accepted": True, "term": 4, "detail": "accepted"})
    assert decode_body(data) == {"accepted": True, "term": 4, "detail": "accepted"}
    tx.verify_response("n" * 16, data, headers[SIG_HEADER])


def test_the_news_in_an_answer_is_ordered_with_the_peer_s_heartbeats() -> None:
    """An answer to our heartbeat carries the peer's own heartbeat fields, boot and next seq: one order with its
    POSTs, so whichever of the two is older is not taken as news (a POST is still answered, an answer's lease
    renewal still counts), and an answer without news from our peer is an error (it renews nothing)."""
    inbox, tx = inbox_and_sender()

    def post(seq: int, nonce: str) -> bool:
        body = encode_body({**HB, "seq": seq, "boot": "boot-1"})
        return inbox.heartbeat("POST", "/heartbeat", body, signed(tx, body, nonce=nonce), wall_now=1000.0)[1][1]
    assert post(5, "a" * 16)
    news = inbox.answer_news({**HB, "role": "passive", "seq": 6, "boot": "boot-1"}, wall_now=1000.0)
    assert news is not None and news.role.value == "passive"
    assert inbox.answer_news({**HB, "seq": 4, "boot": "boot-1"}, wall_now=1000.0) is None  # overtaken
    assert post(6, "b" * 16) is False  # sent before the peer answered with seq 6: overtaken by the answer
    assert post(7, "c" * 16)
    assert inbox.answer_news({**HB, "seq": 1, "boot": "boot-2"}, wall_now=1000.0) is not None  # restarted peer
    with pytest.raises(RemoteInputError, match="no_news"):  # the peer's Docker not seen yet: nothing to say
        inbox.answer_news({"ok": True}, wall_now=1000.0)
    for answer in ({"ok": False}, None, {**HB, "sender": "intruder", "seq": 9, "boot": "boot-2"},
                   {**HB, "role": "boss", "seq": 9, "boot": "boot-2"}, {**HB, "seq": "x", "boot": "boot-2"}):
        with pytest.raises(RemoteInputError):
            inbox.answer_news(answer, wall_now=1000.0)  # type: ignore[arg-type]
