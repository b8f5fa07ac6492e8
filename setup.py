"""Packaging for the failover toolkit: one distribution, six packages, four console scripts and the witness's,
and one optional C extension (VrrpFailover._idlewait).

failover_core lives with the canonical VOLTTRON agent (FailoverAgent/failover_core) and is
installed as a top-level package so the sibling systems import it.
"""

from setuptools import Extension, find_packages, setup

setup(
    name="failover-toolkit",
    version="0.1.0",
    description="High-availability toolkit: VOLTTRON failover agent, Docker, VRRP and process failover",
    python_requires=">=3.10,<3.13",
    packages=[
        *find_packages("FailoverAgent", include=["failover_core*", "failover_agent*"]),
        *find_packages(include=["DockerFailover*", "VrrpFailover*", "HaValet*", "FailoverWitness*"]),
    ],
    # an idle IPv4 Backup's wait in C (VrrpFailover/_idlewait.c; measured reason in docs/vrrp.md): optional, the
    # driver falls back to its Python wait when it was not built (no compiler, no Python headers)
    ext_modules=[Extension("VrrpFailover._idlewait", ["VrrpFailover/_idlewait.c"], optional=True)],
    package_dir={
        "failover_core": "FailoverAgent/failover_core",
        "failover_agent": "FailoverAgent/failover_agent",
    },
    install_requires=[
        "pydantic>=2.5,<3",
        "aiohttp>=3.9,<4",
        "docker>=7,<8",
        "pyroute2>=0.9",  # VrrpFailover uses AsyncIPRoute (0.9 sync IPRoute cannot run inside an event loop)
    ],
    extras_require={
        "volttron": ["volttron==11.0.0rc3", "poetry>=2,<3"],
        # matplotlib: the labs.chaos timeline picture; NetfilterQueue: labs.delayer, the chaos delay fault (builds
        # against Debian's libnetfilter-queue-dev, in scripts/bootstrap.sh's APT_PACKAGES)
        "test": ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "ruff>=0.6", "pyyaml>=6",
                 "matplotlib>=3.8", "NetfilterQueue==1.1.0"],
    },
    entry_points={
        "console_scripts": [
            "docker-failover=DockerFailover.cli:main",
            "vrrp-failover=VrrpFailover.cli:main",
            "ha-valet=HaValet.cli:main",
            "failover-witness=FailoverWitness.cli:main",
        ],
    },
)
