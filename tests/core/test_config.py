"""Config validation: errors name file, key, value and what is allowed; JSON/TOML parsing."""

import pytest
from pydantic import Field, ValidationError, model_validator

from failover_core import ConfigError, StrictModel, load_config_file, parse_config_text, validate_config


class Peer(StrictModel):
    address: str
    port: int = Field(default=22916, ge=1, le=65535)


class Example(StrictModel):
    heartbeat_period: float = Field(default=10, gt=0)
    timeout: float = Field(default=120, gt=0)
    peers: list[Peer] = []

    @model_validator(mode="after")
    def _period_below_timeout(self):
        if self.heartbeat_period >= self.timeout:
            raise ValueError(f"heartbeat_period ({self.heartbeat_period}) must be < timeout ({self.timeout})")
        return self


def test_defaults_are_filled_and_object_is_frozen():
    c = validate_config(Example, {}, source="a.json")
    assert (c.heartbeat_period, c.timeout) == (10, 120)
    with pytest.raises(ValidationError):
        c.timeout = 5


def test_wrong_type_names_file_key_value():
    with pytest.raises(ConfigError) as e:
        validate_config(Example, {"heartbeat_period": "ten"}, source="cfg/primary.json")
    msg = str(e.value)
    assert "cfg/primary.json" in msg and "'heartbeat_period'" in msg and "'ten'" in msg and "number" in msg


def test_unknown_key_lists_the_allowed_ones():
    with pytest.raises(ConfigError) as e:
        validate_config(Example, {"heartbeat_perod": 1}, source="x.json")
    assert "heartbeat_perod" in str(e.value) and "heartbeat_period" in str(e.value) and "unknown key" in str(e.value)


class Groups(StrictModel):
    groups: dict[str, Peer]
    fallback: Peer | None = None


@pytest.mark.parametrize(("data", "key"), [({"peers": [{"address": "a", "prot": 1}]}, "peers[0].prot"),
                                           ({"groups": {"g": {"address": "a", "prot": 1}}}, "groups.g.prot"),
                                           ({"groups": {}, "fallback": {"address": "a", "prot": 1}}, "fallback.prot")],
                         ids=["list", "dict", "optional"])
def test_an_unknown_nested_key_lists_the_keys_allowed_there(data, key):
    model = Example if "peers" in data else Groups
    with pytest.raises(ConfigError) as e:
        validate_config(model, data, source="x")
    assert e.value.problems[0][0] == key
    assert "allowed keys: address, port)" in str(e.value)  # the nested model's keys, not the top level's


def test_nested_key_path_and_range():
    with pytest.raises(ConfigError) as e:
        validate_config(Example, {"peers": [{"address": "a"}, {"address": "b", "port": 70000}]}, source="x")
    assert e.value.problems[0][0] == "peers[1].port" and e.value.problems[0][1] == 70000
    assert "less than or equal to 65535" in str(e.value)


def test_missing_required_key_and_cross_field_rule():
    with pytest.raises(ConfigError) as e:
        validate_config(Example, {"peers": [{}]}, source="x")
    assert "peers[0].address" in str(e.value) and "(missing)" in str(e.value)
    with pytest.raises(ConfigError) as e:
        validate_config(Example, {"heartbeat_period": 5, "timeout": 5}, source="x")
    assert "must be < timeout" in str(e.value)


def test_parse_json_and_toml_and_their_errors(tmp_path):
    assert parse_config_text('{"a": 1}', source="s") == {"a": 1}
    assert parse_config_text("a = 1\n", source="s") == {"a": 1}
    with pytest.raises(ConfigError, match=r"s:2.*not valid JSON"):
        parse_config_text('{"a": 1,\n "b": }', source="s")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config_text("a = = 1", source="s", fmt="toml")
    p = tmp_path / "c.toml"
    p.write_text("timeout = 30\n")
    assert load_config_file(p) == {"timeout": 30}
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.json")


def test_a_problem_may_name_its_line():
    e = ConfigError("valet.cfg", [("[Web] port", "x", "a number", 7), ("", "key value", "expected 'key = value'", 9),
                                  ("timeout", 0, "greater than 0")])
    assert str(e).splitlines() == ["valet.cfg:7: key '[Web] port': value 'x' is not allowed: a number",
                                   "valet.cfg:9: value 'key value' is not allowed: expected 'key = value'",
                                   "valet.cfg: key 'timeout': value 0 is not allowed: greater than 0"]
    assert e.problems == [("[Web] port", "x", "a number"), ("", "key value", "expected 'key = value'"),
                          ("timeout", 0, "greater than 0")]
    assert e.lines == [7, 9, None]
