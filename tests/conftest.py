"""Shared pytest settings. Each system keeps its own fixtures in tests/<system>/conftest.py."""

import os

# where scripts/bootstrap.sh put things (the Makefile exports these; defaults for a bare pytest run)
os.environ.setdefault("FT_PREFIX", "/opt/failover-toolkit")
os.environ.setdefault("FT_VOLTTRON_USER", "volttron")
os.environ.setdefault("FT_PLATFORM_VENV", os.path.join(os.environ["FT_PREFIX"], "platform-venv"))
