"""The thin I/O edge shared by the drivers: the real clock, reading config files, the
``--check`` CLI convention and the subprocess notify-hook runner. The rest of failover_core
does no I/O."""
