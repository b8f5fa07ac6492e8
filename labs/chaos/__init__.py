"""labs.chaos: seeded random faults against a real test bed, a history of who ran the service, a checker.

``schedule`` makes the fault schedule (same seed, same schedule), ``history`` records samples and faults
in one JSONL file, ``checker`` judges a history against a system's Promise, ``report`` prints the table
and draws the timeline, ``runner`` plays a schedule against a driver (``vrrp``, ``docker``, ``valet``, ``agent``),
``grey`` injects the delay and duplication every driver shares (``labs.delayer``, TEE: no sch_netem needed).
Run it with ``python -m labs.chaos SYSTEM --seed N --duration S`` (docs/chaos.md).
"""
