"""HaValet: a process valet: test/start/stop commands, priorities, stand-by hosts."""
