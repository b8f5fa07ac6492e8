"""The shared --check convention: effective config on stdout and exit 0, or the error and exit 2."""

import json

import pytest
from pydantic import Field

from failover_core import ConfigError, StrictModel, validate_config
from failover_core.shell.cli import EXIT_CONFIG, load_or_exit, run_check


class Cfg(StrictModel):
    name: str
    priority: int = Field(default=100, ge=1, le=254)


def test_check_prints_the_effective_config_with_defaults(capsys):
    rc = run_check(lambda: validate_config(Cfg, {"name": "VR_1"}, source="vrrp.json"))
    assert rc == 0
    assert json.loads(capsys.readouterr().out) == {"name": "VR_1", "priority": 100}


def test_bad_config_exits_2_with_file_key_value(capsys):
    with pytest.raises(SystemExit) as e:
        run_check(lambda: validate_config(Cfg, {"name": "VR_1", "priority": 300}, source="vrrp.json"))
    assert e.value.code == EXIT_CONFIG == 2
    err = capsys.readouterr().err
    assert "vrrp.json" in err and "'priority'" in err and "300" in err and "254" in err


def test_load_or_exit_only_catches_config_errors():
    with pytest.raises(ZeroDivisionError):
        load_or_exit(lambda: 1 / 0)
    with pytest.raises(SystemExit):
        load_or_exit(lambda: (_ for _ in ()).throw(ConfigError("f", [("k", 1, "no")])))
