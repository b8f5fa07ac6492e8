#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine, run as root (make demo / make test call it).
#  1. Debian packages (docker.io docker-compose keepalived iproute2 nftables tcpdump busybox-static iputils-ping
#     libnetfilter-queue-dev ...)
#  2. the non-root user VOLTTRON platforms run as (volttron refuses to run as root)
#  3. $FT_PREFIX/venv           : the toolkit + test tools (volttron-testing among them), from Debian's /usr/bin/python3
#  4. $FT_PREFIX/platform-venv  : VOLTTRON for the platforms, owned by that user (vctl install writes into it)
# Each step is skipped when a stamp says it is done for the current inputs, so a re-run takes ~1 s.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
FT_PREFIX=${FT_PREFIX:-/opt/failover-toolkit}
FT_VOLTTRON_USER=${FT_VOLTTRON_USER:-volttron}
PY=/usr/bin/python3
# libnetfilter-queue-dev: the NetfilterQueue wheel (labs.delayer, the chaos delay fault) builds against it
APT_PACKAGES="docker.io docker-compose keepalived iproute2 tcpdump busybox-static iputils-ping python3-venv python3-dev gcc iptables nftables bc util-linux procps libnetfilter-queue-dev"
VOLTTRON_PIN="volttron==11.0.0rc3"
# volttron-testing's mock platform (TestServer, the pubsub interceptor, the mock core builder) for the agent's
# logic tests. Installed with --no-deps: it declares pytest<8 and docker<7, which conflict with our pytest>=8 and
# docker>=7 (pip: ResolutionImpossible), and the modules we import need only what the venv already has (volttron,
# gevent, psutil, pyyaml); its other declared deps (anypubsub, grequests) are imported by none of its modules.
VOLTTRON_TESTING_PIN="volttron-testing==0.5.1rc4"
log() { echo "[bootstrap] $*"; }

if [ "$(id -u)" != 0 ]; then echo "bootstrap: run as root (it installs Debian packages and a user)" >&2; exit 2; fi
mkdir -p "$FT_PREFIX"; chmod 755 "$FT_PREFIX"

# 1. Debian packages
missing=""
for p in $APT_PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
if [ -n "$missing" ]; then
  log "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq $missing >/dev/null
fi

# 2. the VOLTTRON user
if ! id "$FT_VOLTTRON_USER" >/dev/null 2>&1; then
  log "creating user $FT_VOLTTRON_USER"
  useradd --system --create-home --shell /bin/bash "$FT_VOLTTRON_USER"
fi

# 3. the toolkit venv (editable install of this checkout + test tools)
stamp_in=$(cat "$REPO/setup.py" "$0" | sha256sum | cut -c1-16)
VENV=$FT_PREFIX/venv
if [ "$(cat "$VENV/.ft-stamp" 2>/dev/null)" != "$stamp_in" ]; then
  log "building $VENV"
  [ -x "$VENV/bin/python" ] || $PY -m venv "$VENV"
  "$VENV/bin/pip" install -qq --disable-pip-version-check 'pip<25' 'setuptools>=68' wheel
  "$VENV/bin/pip" install -qq --disable-pip-version-check -e "$REPO[test,volttron]"
  "$VENV/bin/pip" install -qq --disable-pip-version-check --no-deps "$VOLTTRON_TESTING_PIN"
  "$VENV/bin/python" -c "import volttrontesting.server_mock, volttrontesting.pubsub_interceptor"
  echo "$stamp_in" > "$VENV/.ft-stamp"
elif ! "$VENV/bin/python" -c "import failover_core, os, sys; sys.exit(0 if os.path.realpath(failover_core.__file__).startswith(os.path.realpath('$REPO')) else 1)" 2>/dev/null \
    || ! (cd "$REPO" && "$VENV/bin/python" -c "import VrrpFailover._idlewait") 2>/dev/null; then
  log "pointing $VENV at this checkout ($REPO) and building its C extension"
  "$VENV/bin/pip" install -qq --disable-pip-version-check --no-deps -e "$REPO"
fi
# VrrpFailover's idle-Backup wait in C (setup.py builds it in place; optional there, expected here: the tests use it)
(cd "$REPO" && "$VENV/bin/python" -c "import VrrpFailover._idlewait") \
  || log "WARNING: VrrpFailover._idlewait was not built (gcc, python3-dev?): the VRRP daemon uses its Python wait"

# 4. the platform venv: VOLTTRON only, readable and writable by the platform user
PVENV=$FT_PREFIX/platform-venv
pstamp_in=$(echo "$VOLTTRON_PIN poetry>=2,<3 pip<25" | sha256sum | cut -c1-16)
if [ "$(cat "$PVENV/.ft-stamp" 2>/dev/null)" != "$pstamp_in" ]; then
  log "building $PVENV for user $FT_VOLTTRON_USER"
  mkdir -p "$PVENV"; chown "$FT_VOLTTRON_USER:" "$PVENV"
  runuser -u "$FT_VOLTTRON_USER" -- $PY -m venv "$PVENV"
  runuser -u "$FT_VOLTTRON_USER" -- env HOME="$(getent passwd "$FT_VOLTTRON_USER" | cut -d: -f6)" \
    "$PVENV/bin/pip" install -qq --disable-pip-version-check 'pip<25' "$VOLTTRON_PIN" 'poetry>=2,<3' 'pydantic>=2'
  echo "$pstamp_in" > "$PVENV/.ft-stamp"
fi
log "ready: venv=$VENV platform-venv=$PVENV user=$FT_VOLTTRON_USER"
