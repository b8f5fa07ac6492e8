"""Read a config file safely: regular files only, at most 1 MiB, UTF-8; then parse it (JSON, TOML or YAML).

``read_config_text(path)`` refuses a FIFO, a device or a directory before reading (a FIFO given as the config
would otherwise block the reader for ever), opens with O_NONBLOCK and checks again on the open descriptor,
and reads at most ``MAX_CONFIG_BYTES`` + 1 bytes. Every problem is a ConfigError naming the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from failover_core.config import MAX_CONFIG_BYTES, ConfigError, parse_config_text

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(source: str, mode: int) -> ConfigError:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return ConfigError(source, [("", source, f"is {kind}: a config must be a regular file")])


def _too_big(source: str, size: int) -> ConfigError:
    return ConfigError(source, [("", source, f"is {size} bytes; a config file may have at most "
                                             f"{MAX_CONFIG_BYTES // 1024} KiB ({MAX_CONFIG_BYTES} bytes)")])


def read_config_text(path: str | Path) -> str:
    """The UTF-8 text of the regular file ``path`` (at most MAX_CONFIG_BYTES), or ConfigError; never blocks."""
    source = str(path)
    try:
        st = os.stat(source)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(source, st.st_mode)
        if st.st_size > MAX_CONFIG_BYTES:
            raise _too_big(source, st.st_size)
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)  # the file may have been replaced between stat and open
            if not stat.S_ISREG(st.st_mode):
                raise _not_regular(source, st.st_mode)
            chunks: list[bytes] = []
            size = 0
            while size <= MAX_CONFIG_BYTES:
                chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as e:
        raise ConfigError(source, [("", source, f"cannot read the file: {e.strerror or e}")]) from None
    if size > MAX_CONFIG_BYTES:
        raise _too_big(source, size)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{source}:{line}", [("", data[max(0, e.start - 20):e.start + 20],
                                               f"not UTF-8 text (byte {e.start}: {e.reason})")]) from None


def load_config_file(path: str | Path, fmt: str | None = None) -> Any:
    """``.json``, ``.toml``, ``.yaml``/``.yml`` by suffix; any other suffix is sniffed (JSON if it starts with {
    or [, else TOML)."""
    p = Path(path)
    if fmt is None and p.suffix in (".json", ".toml", ".yaml", ".yml"):
        fmt = {".yml": "yaml"}.get(p.suffix, p.suffix[1:])
    return parse_config_text(read_config_text(p), source=str(p), fmt=fmt)
