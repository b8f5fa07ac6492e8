"""The CLI convention of the three standalone daemons (like ``keepalived -t`` / ``nginx -t``).

``-t/--check``: load and validate the config, print the effective configuration with defaults
filled in, exit 0; on a bad config print the error (file, key or line, value, what is allowed)
to stderr and exit 2 having touched nothing. A daemon that starts with a bad config exits 2 too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from failover_core.config import ConfigError

EXIT_OK = 0
EXIT_CONFIG = 2
T = TypeVar("T")


def add_check_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-t", "--check", action="store_true",
                        help="validate the config, print the effective configuration and exit "
                             "(0 = valid, 2 = invalid); touches nothing")


def render_effective(config: Any) -> str:
    """JSON of a pydantic model (or a list of them) with every default filled in."""
    def dump(obj: Any) -> Any:
        if isinstance(obj, BaseModel):
            return obj.model_dump(mode="json")
        if isinstance(obj, list | tuple):
            return [dump(o) for o in obj]
        if isinstance(obj, dict):
            return {k: dump(v) for k, v in obj.items()}
        return obj
    return json.dumps(dump(config), indent=2, sort_keys=False)


def load_or_exit(load: Callable[[], T]) -> T:
    """Run ``load``; on ConfigError print it and exit 2 (used by --check and by normal start)."""
    try:
        return load()
    except ConfigError as e:
        print(f"configuration error:\n{e}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def run_check(load: Callable[[], T], render: Callable[[T], str] = render_effective) -> int:
    """The whole ``--check`` action: returns the exit status."""
    config = load_or_exit(load)
    print(render(config))
    return EXIT_OK
