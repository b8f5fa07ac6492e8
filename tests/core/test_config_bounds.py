"""Bad input to the shared config reading and validation: a clear ConfigError, fast, never a traceback or a hang."""

import os
import time

import pytest
from pydantic import Field

from failover_core.config import (
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    Bool,
    Command,
    ConfigError,
    FilePath,
    HostName,
    Identity,
    Integer,
    Name,
    Number,
    Port,
    Seconds,
    StrictModel,
    bad_character,
    check_document,
    parse_config_text,
    shown,
    validate_config,
)
from failover_core.shell.config_file import load_config_file, read_config_text


def _error(fn, *args, **kwargs) -> ConfigError:
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as e:
        fn(*args, **kwargs)
    assert time.monotonic() - t0 < 1.0
    assert len(str(e.value)) < 3000
    return e.value


# ---------------------------------------------------------------------------------------------- reading files

def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    e = _error(read_config_text, fifo)
    assert "FIFO" in str(e) and "regular file" in str(e) and str(fifo) in str(e)


@pytest.mark.parametrize(("path", "kind"), [("/dev/null", "character device"), ("/", "directory")])
def test_devices_and_directories_are_refused(path, kind):
    assert kind in str(_error(read_config_text, path))


def test_a_file_over_the_size_limit_is_refused_by_its_size(tmp_path):
    big = tmp_path / "big.json"
    big.write_text('{"a": "' + "x" * MAX_CONFIG_BYTES + '"}')
    e = _error(load_config_file, big)
    assert "1024 KiB" in str(e)


def test_not_utf8_names_the_line(tmp_path):
    p = tmp_path / "c.toml"
    p.write_bytes(b'a = 1\nb = "\xff"\n')
    assert f"{p}:2" in str(_error(load_config_file, p))


def test_a_missing_file_says_it_cannot_be_read(tmp_path):
    assert "cannot read the file" in str(_error(read_config_text, tmp_path / "nope.json"))


# ---------------------------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text", ['{"a": 1,\n', '{"a": 1,\n\n', '{\n', "[1,\n2,\n"])
def test_json_cut_after_a_line_break_is_a_clear_error(text):
    e = _error(parse_config_text, text, source="s.json", fmt="json")
    assert "not valid JSON" in str(e) and "s.json:" in str(e)


@pytest.mark.parametrize(("text", "fmt"), [("[" * 10000 + "]" * 10000, "json"),
                                           ('{"a": ' * 10000 + "1" + "}" * 10000, "json"),
                                           ("a = " + "[" * 10000 + "]" * 10000, "toml"),
                                           ("a = " + "{b = " * 5000 + "1" + "}" * 5000, "toml"),
                                           ("[" + ".".join(["k"] * 5000) + "]\nx = 1\n", "toml"),
                                           ("a: " + "[" * 10000 + "]" * 10000, "yaml"),
                                           ("".join(" " * i + "k:\n" for i in range(300)), "yaml")])
def test_nesting_too_deep_is_refused(text, fmt):
    assert f"nested more than {MAX_DEPTH} levels" in str(_error(parse_config_text, text, source="s", fmt=fmt))


def test_duplicate_keys_are_refused_in_json_and_yaml():
    assert "duplicate key" in str(_error(parse_config_text, '{"a": 1, "b": {"c": 1, "c": 2}}', source="s"))
    assert "duplicate key" in str(_error(parse_config_text, "a: 1\nb: 2\na: 3\n", source="s", fmt="yaml"))


def test_yaml_billion_laughs_is_refused_at_the_first_anchor():
    lol = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9))
    assert "anchors and aliases" in str(_error(parse_config_text, lol, source="s", fmt="yaml"))


@pytest.mark.parametrize(("text", "fmt", "key"), [('{"t": NaN}', "json", "t"), ('{"t": -Infinity}', "json", "t"),
                                                  ('{"t": 1e999}', "json", "t"), ("t = inf", "toml", "t"),
                                                  ("[g]\nt = nan", "toml", "g.t"), ("t: .inf", "yaml", "t")])
def test_non_finite_numbers_are_refused_naming_the_key(text, fmt, key):
    e = _error(parse_config_text, text, source="s", fmt=fmt)
    assert e.problems[0][0] == key and "finite" in str(e)


@pytest.mark.parametrize("text", ['{"n": ' + "9" * 5000 + "}", '{"n": ' + "9" * 30 + "}", "n = 99999999999999999999"])
def test_huge_integers_are_refused(text):
    assert "64 bits" in str(_error(parse_config_text, text, source="s"))


@pytest.mark.parametrize("value", ["a\x00b", "a\x1b[31mb", "a\x7f", "a\x85", "evil\u202etxt", "x\u2066y"])
def test_control_and_bidi_characters_are_refused_anywhere(value):
    e = _error(check_document, {"name": value}, source="s")
    assert e.problems[0][0] == "name" and "control character" in str(e)
    assert "\x1b" not in str(e) and "\u202e" not in str(e)  # shown escaped


def test_tabs_and_line_breaks_pass_in_values_not_in_keys_or_names():
    check_document({"notify": "a\tb\nc"}, source="s")
    assert bad_character("a\tb") and bad_character("a\tb", in_name=False) is None
    _error(check_document, {"a\tb": 1}, source="s")


# ---------------------------------------------------------------------------------------------- messages

def test_a_huge_value_is_cut_in_the_message():
    e = ConfigError("s", [("k" * 10000, "a" * 10485760, "x" * 100000)])
    assert len(str(e)) < 2000 and "(10485760 chars)" in str(e) and "'" + "a" * 120 + "…'" in str(e)


@pytest.mark.parametrize("value", [10**5000, [[[[[[[1]]]]]]], {str(i): i for i in range(10000)}, b"x" * 10**6,
                                   float("nan")], ids=["int", "nested", "dict", "bytes", "nan"])
def test_shown_is_bounded_for_any_value(value):
    assert len(shown(value)) < 300


def test_shown_of_a_deep_structure_does_not_recurse():
    deep: list = []
    for _ in range(100000):
        deep = [deep]
    assert len(shown(deep)) < 300


# ---------------------------------------------------------------------------------------------- the types

class Typed(StrictModel):
    number: Number = 1.0
    count: Integer = 1
    flag: Bool = False
    period: Seconds = Field(1.0, gt=0, le=60)
    port: Port = 80
    name: Name = "n"
    host: HostName = "h"
    identity: Identity = "platform.driver"
    path: FilePath = "/tmp/x"
    notify: Command | None = None


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("number", True, "not a boolean"), ("number", "5", "not a string"), ("number", float("inf"), "finite"),
    ("number", 10**30, "64 bits"), ("number", 2**60, "sane size"), ("count", True, "not a boolean"),
    ("count", "51", "not a string"),
    ("count", 5.0, "whole number"), ("flag", "no", "true or false"), ("flag", 1, "true or false"),
    ("period", 0, "greater than 0"), ("period", 1e9, "less than or equal to 60"), ("port", True, "not a boolean"),
    ("port", 0, "greater than or equal to 1"), ("port", 65536, "less than or equal to 65535"),
    ("name", "", "at least 1"), ("name", "a\x1bb", "U+001B"), ("name", "a\tb", "U+0009"), ("name", "x" * 200, "128"),
    ("host", "not a host", "host name"), ("host", "a\u202eb", "U+202E"), ("identity", "a b", "spaces"),
    ("path", "", "non-empty"), ("path", "/a\x00b", "U+0000"), ("notify", "", "non-empty command"),
    ("notify", [], "non-empty command"), ("notify", ["x", ""], "non-empty command"), ("notify", "a\x00", "U+0000"),
    ("notify", "echo 'unbalanced", "quotes"), ("notify", "''", "non-empty command"),
])
def test_each_type_refuses_what_it_must(key, value, allowed):
    e = _error(validate_config, Typed, {key: value}, source="s")
    assert e.problems[0][0] == key and allowed in str(e), str(e)


def test_the_types_accept_good_values():
    c = validate_config(Typed, {"number": 2, "count": 3, "flag": True, "period": 0.5, "port": 65535, "name": "VR_1",
                                "host": "10.0.0.1", "identity": "a.b", "path": "rel/x", "notify": ["a", "b"]},
                        source="s")
    assert (c.number, c.count, c.flag, c.port, c.host) == (2.0, 3, True, 65535, "10.0.0.1")
    assert validate_config(Typed, {"host": "valet-1.example.org"}, source="s").host == "valet-1.example.org"


def test_text_values_parse_plain_text_only():
    c = validate_config(Typed, {"number": "2.5", "count": "3", "flag": "yes", "port": "8080"}, source="s",
                        text_values=True)
    assert (c.number, c.count, c.flag, c.port) == (2.5, 3, True, 8080)
    for key, value in (("number", "nan"), ("number", "1_000"), ("number", "inf"), ("count", "1.5"), ("flag", "maybe"),
                       ("number", "1e999")):
        e = _error(validate_config, Typed, {key: value}, source="s", text_values=True)
        assert e.problems[0][0] == key


def test_keys_table_shows_type_tightest_range_and_default():
    from failover_core.config import keys_table

    table = keys_table(Typed).splitlines()
    row = next(r for r in table if r.startswith("| `period`"))
    assert row == "| `period` | number | > 0, <= 60 | `1.0` |  |"  # Seconds' own >= 0 and <= 86400 are looser
    assert any(r.startswith("| `notify` | command | - | none |") for r in table)
    assert any(r.startswith("| `port` | integer | >= 1, <= 65535 | `80` |") for r in table)
