"""The safe command-expression language: what is accepted, what is refused, nothing is evaluated."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from HaValet.command_expr import CommandTemplate, ExprError, parse_command_expr

NAMES = frozenset({"user", "host", "port"})


def test_plain_literal_is_returned_as_written():
    t = parse_command_expr('"sudo pkill -f wsgi"', NAMES)
    assert t == CommandTemplate("sudo pkill -f wsgi")
    assert t.render({}) == "sudo pkill -f wsgi"


def test_documented_percent_tuple_renders_per_host():
    t = parse_command_expr("\"ssh %s@%s 'cd @DIR@ ; sudo python ./d.py start'\" % (user, host)", NAMES)
    assert t.names == ("user", "host")
    assert t.render({"user": "m04060", "host": "valet2"}) == "ssh m04060@valet2 'cd @DIR@ ; sudo python ./d.py start'"


def test_single_name_in_parentheses_and_escaped_quotes():
    t = parse_command_expr("\"netstat -nap | grep %s | exit $(awk \\'{print $1}\\')\" % (port)", NAMES)
    assert t.render({"port": "8090"}) == "netstat -nap | grep 8090 | exit $(awk '{print $1}')"


def test_bare_name_and_adjacent_literals():
    assert parse_command_expr("'a %s' 'b' % host", NAMES).render({"host": "h"}) == "a hb"


@pytest.mark.parametrize("text, message", [
    ('__import__("os").system("x")', "only a string literal"),
    ('"a" + "b"', "only a string literal"),
    ('"%s" % (user, host.upper())', "only a key name or a tuple of key names"),
    ('"%s" % ("literal",)', "only a key name or a tuple of key names"),
    ('f"{host}"', "only a string literal"),
    ('b"bytes"', "only a string literal"),
    ('"%s" % (secret)', "unknown key name(s) secret"),
    ('"%s %s" % (user)', "does not fit"),
    ('"%d" % (port)', "does not fit"),
    ('"unterminated', "not a string literal expression"),
    ("", "empty command"),
    ("(host)", "only a string literal"),
    ("3 % (host)", "left side of '%' must be a string literal"),
])
def test_refused_with_a_reason(text, message):
    with pytest.raises(ExprError, match=None) as e:
        parse_command_expr(text, NAMES)
    assert message in str(e.value)


def test_nothing_is_executed(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ExprError):
        parse_command_expr(f'open("{marker}", "w").write("x") or "cmd"', NAMES)
    assert not marker.exists()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_raises_only_expr_error(text):
    try:
        t = parse_command_expr(text, NAMES)
    except ExprError:
        return
    assert isinstance(t.render({"user": "u", "host": "h", "port": "1"}), str)
