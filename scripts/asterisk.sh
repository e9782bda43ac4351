#!/usr/bin/env bash
# A real Asterisk 22 for tests and local work: Debian sid's `asterisk` package in a
# debootstrap chroot, listening on the loopback address only.
#
#   scripts/asterisk.sh setup          build the chroot if missing (and install debootstrap and
#                                      sip-tester on the host when missing); idempotent
#   scripts/asterisk.sh start [DIR]    install scripts/asterisk/*.conf (then DIR/*.conf), start
#                                      Asterisk detached with no registrations left from a
#                                      previous run, and wait until ARI answers
#   scripts/asterisk.sh stop           `core stop now`, wait for the PID; TERM/KILL of that PID
#                                      only as a fallback; unmount the chroot's /proc
#   scripts/asterisk.sh status         exit 0 when running, 3 when stopped, 4 when not set up
#   scripts/asterisk.sh cli COMMAND    run one Asterisk CLI command (asterisk -rx)
#
# Needs root (debootstrap, chroot, mount). Environment:
#   ATIENDE_ASTERISK_ROOT   the chroot (default /var/tmp/atiende-asterisk)
#   DEBIAN_MIRROR           the Debian mirror (default: the one the host's apt sources use)
#   ATIENDE_PYTHON          the Python that renders the default ari/http/pjsip/extensions files
#                           when none are installed yet (default: the project's .venv)
#
# ari.conf, http.conf, pjsip.conf and extensions.conf are written by Atiende's own generator
# (atiende.voice.pbx.render); the tests install theirs before each scenario. When none are in
# the chroot yet, `start` renders a default: ARI user atiende with the test-only password
# below, SIP on 127.0.0.1:5060, no extensions, no DIDs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ROOT=${ATIENDE_ASTERISK_ROOT:-/var/tmp/atiende-asterisk}
ROOT=${ROOT%/}
BASE_CONF=$HERE/asterisk
SETUP_LOG=$ROOT.setup.log
CONSOLE_LOG=$ROOT/var/log/asterisk/console.log
PIDFILE=$ROOT/run/asterisk/asterisk.pid
READY=$ROOT/.atiende-ready
ARI_PASSWORD=${ATIENDE_ASTERISK_ARI_PASSWORD:-atiende-test}
START_SECONDS=${ATIENDE_ASTERISK_START_SECONDS:-60}

exec 3>&2 # progress goes to the caller's stderr even while a step's output goes to a log
say() { echo "[asterisk] $*" >&3; }
die() {
  say "error: $*"
  exit 1
}
timed() { # LABEL COMMAND...: run COMMAND, say how long it took, return its status
  local label=$1 started=$SECONDS status=0
  shift
  "$@" || status=$?
  say "$label took $((SECONDS - started))s"
  return "$status"
}

# Fail with the end of the set-up log, so the caller sees why (a mirror that cannot be
# reached, a package gone from sid…).
die_with_log() {
  tail -n 8 "$SETUP_LOG" | sed 's/^/  | /' >&3 || true
  die "$* (full log: $SETUP_LOG)"
}

need_root() { [ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot and mount)"; }

# One of setup/start/stop at a time; the lock is released when this script exits. Asterisk
# itself is started with the lock's descriptor closed, so it never holds it.
take_lock() {
  exec 9>"$ROOT.lock"
  flock -w 600 9 || die "another scripts/asterisk.sh holds $ROOT.lock"
}

# A test session (tests/voice_real) holds $ROOT.session.lock while it uses Asterisk; a start
# or stop from anywhere else waits for it to end. The session's own calls say so with
# ATIENDE_ASTERISK_SESSION=1.
wait_for_tests() {
  [ "${ATIENDE_ASTERISK_SESSION:-}" = 1 ] && return
  exec 8>"$ROOT.session.lock"
  if ! flock -n 8; then
    say "a test session is using Asterisk; waiting for it to end"
    flock -w 900 8 || die "a test session still holds $ROOT.session.lock"
  fi
}

# The Debian mirror this host's apt already uses, so no host name is written anywhere.
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "$DEBIAN_MIRROR"
    return
  fi
  {
    for file in /etc/apt/sources.list.d/*.sources; do
      [ -f "$file" ] && sed -nE 's/^URIs:[[:space:]]*//p' "$file"
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$file" ] && sed -nE 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' "$file"
    done
  } | tr -s ' \t' '\n\n' | grep -E '^(https?|file)://.*/debian/?$' | head -n 1 || true
}

host_packages() {
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v sipp >/dev/null || missing+=(sip-tester)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return
  say "installing on the host: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timed "host apt-get update" apt-get update -qq >>"$SETUP_LOG" 2>&1 ||
    die_with_log "apt-get update failed on the host"
  timed "host apt-get install" apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$SETUP_LOG" 2>&1 ||
    die_with_log "apt-get install ${missing[*]} failed on the host"
}

is_built() { [ -f "$READY" ] && [ -x "$ROOT/usr/sbin/asterisk" ]; }

release_mounts() {
  local dir=$1
  if mountpoint -q "$dir/proc" 2>/dev/null; then umount "$dir/proc" || umount -l "$dir/proc"; fi
}

# Asterisk must do no DNS: no name servers, and the host's name resolves from /etc/hosts.
isolate_names() {
  local dir=$1
  : >"$dir/etc/resolv.conf"
  printf '127.0.0.1 localhost\n127.0.0.1 %s\n::1 localhost ip6-localhost\n' "$(hostname)" \
    >"$dir/etc/hosts"
}

build() {
  local work=$ROOT.build mirror
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || die "no Debian mirror in the host's apt sources; set DEBIAN_MIRROR"
  # A build that stopped half-way is thrown away: the chroot appears complete or not at all.
  if [ -e "$work" ]; then
    release_mounts "$work"
    rm -rf --one-file-system "$work"
  fi
  say "building $ROOT (Debian sid, minbase)"
  timed debootstrap debootstrap --variant=minbase sid "$work" "$mirror" >>"$SETUP_LOG" 2>&1 ||
    die_with_log "debootstrap of sid from $mirror failed"
  # Package scripts must never start services inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
  chmod +x "$work/usr/sbin/policy-rc.d"
  # sid's Release file can be past its Valid-Until on a machine whose clock runs ahead; the
  # signature is still checked.
  echo 'Acquire::Check-Valid-Until "false";' >"$work/etc/apt/apt.conf.d/99no-check-valid-until"
  mount -t proc proc "$work/proc"
  cp /etc/resolv.conf "$work/etc/resolv.conf" # apt inside the chroot needs the host's resolver
  local status=0
  {
    timed "chroot apt-get update" chroot "$work" apt-get update -qq &&
      timed "chroot apt-get install asterisk" chroot "$work" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends asterisk &&
      chroot "$work" apt-get clean
  } >>"$SETUP_LOG" 2>&1 || status=$?
  release_mounts "$work"
  [ "$status" -eq 0 ] || die_with_log "installing asterisk in the chroot failed"
  isolate_names "$work"
  # Debian's 100-odd sample files stay aside; /etc/asterisk holds only what start installs.
  mv "$work/etc/asterisk" "$work/etc/asterisk.dist"
  mkdir -p "$work/etc/asterisk" "$work/run/asterisk"
  chroot "$work" dpkg-query -W -f '${Version}' asterisk >"$work/.atiende-ready"
  mv "$work" "$ROOT"
}

cmd_setup() {
  need_root
  take_lock
  if ! is_built || ! command -v debootstrap sipp curl >/dev/null; then
    : >"$SETUP_LOG" # this run's log only
  fi
  host_packages
  if is_built; then
    say "chroot ready: $ROOT (asterisk $(cat "$READY"))"
    return
  fi
  [ -e "$ROOT" ] && die "$ROOT exists but is not a finished chroot; remove it and run setup again"
  local started=$SECONDS
  build
  say "chroot ready: $ROOT (asterisk $(cat "$READY")) in $((SECONDS - started))s"
}

asterisk_pid() {
  local pid
  [ -s "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # the PID must still be Asterisk (not a PID reused by something else)
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = asterisk ] || return 1
  echo "$pid"
}

http_address() {
  local conf=$ROOT/etc/asterisk/http.conf address port
  address=$(sed -nE 's/^bindaddr[[:space:]]*=[[:space:]]*([^[:space:];]+).*/\1/p' "$conf" | head -n 1)
  port=$(sed -nE 's/^bindport[[:space:]]*=[[:space:]]*([0-9]+).*/\1/p' "$conf" | head -n 1)
  case ${address:-127.0.0.1} in 0.0.0.0 | ::) address=127.0.0.1 ;; esac
  echo "${address:-127.0.0.1}:${port:-8088}"
}

# ARI answers when /ari/asterisk/info gives 401 (no credentials) or 200.
ari_answers() {
  local code
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$(http_address)/ari/asterisk/info") ||
    true
  [ "$code" = 401 ] || [ "$code" = 200 ]
}

render_defaults() {
  local target=$1 python=${ATIENDE_PYTHON:-}
  if [ -z "$python" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then python=$REPO/.venv/bin/python; else python=python3; fi
  fi
  PYTHONPATH=$REPO/src${PYTHONPATH:+:$PYTHONPATH} ATIENDE_ASTERISK_ARI_PASSWORD=$ARI_PASSWORD \
    "$python" - "$target" <<'PY' || die "rendering the default configuration failed"
import os
import sys
from pathlib import Path

from atiende.voice.pbx import PbxSetup, render

setup = PbxSetup(
    tenant_slug="local",
    pbx_name="local",
    ari_url="http://127.0.0.1:8088/ari",
    ari_username="atiende",
    ari_password=os.environ["ATIENDE_ASTERISK_ARI_PASSWORD"],
    sip_bind="127.0.0.1:5060",
)
for name, text in render(setup).items():
    path = Path(sys.argv[1], name)
    if not path.exists():
        path.write_text(text)
PY
}

install_configs() {
  local etc=$ROOT/etc/asterisk extra=${1:-}
  mkdir -p "$etc" "$ROOT/run/asterisk" "$ROOT/var/spool/asterisk/recording" # ARI keeps recordings there
  cp "$BASE_CONF"/*.conf "$etc/"
  if [ -n "$extra" ]; then
    [ -d "$extra" ] || die "$extra is not a directory"
    cp "$extra"/*.conf "$etc/"
  fi
  render_defaults "$etc"
}

cmd_start() {
  need_root
  is_built || die "no chroot at $ROOT: run scripts/asterisk.sh setup first"
  wait_for_tests
  take_lock
  local pid started=$SECONDS
  if pid=$(asterisk_pid); then
    ari_answers || die "Asterisk (pid $pid) runs but ARI does not answer on $(http_address)"
    say "already running: pid $pid, ARI http://$(http_address)/ari"
    return
  fi
  install_configs "${1:-}"
  isolate_names "$ROOT"
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  mkdir -p "$(dirname "$CONSOLE_LOG")"
  rm -f "$PIDFILE" "$ROOT/run/asterisk/asterisk.ctl"
  # Start clean: no phone registrations (PJSIP keeps contacts in the astdb across restarts).
  rm -f "$ROOT/var/lib/asterisk/astdb.sqlite3"
  # -f: stay in the foreground of its own session (setsid), -n: no colours. The lock (9) and
  # any other descriptor of the caller are not inherited, so nobody's pipe is held open.
  setsid chroot "$ROOT" /usr/sbin/asterisk -f -n -vvv >"$CONSOLE_LOG" 2>&1 </dev/null 3>&- 8>&- 9>&- &
  local launcher=$!
  local deadline=$((SECONDS + START_SECONDS))
  while [ $SECONDS -lt $deadline ]; do
    if pid=$(asterisk_pid) && ari_answers; then
      # ARI answers before every module is loaded, and a reload before then is only queued.
      timeout "$START_SECONDS" chroot "$ROOT" /usr/sbin/asterisk -rx "core waitfullybooted" \
        >/dev/null || die "Asterisk (pid $pid) did not finish booting; see $CONSOLE_LOG"
      say "started: pid $pid, ARI http://$(http_address)/ari, SIP udp 127.0.0.1:5060" \
        "($((SECONDS - started))s)"
      return
    fi
    if ! kill -0 "$launcher" 2>/dev/null && ! asterisk_pid >/dev/null; then
      tail -n 20 "$CONSOLE_LOG" >&2 || true
      die "Asterisk exited during start-up; see $CONSOLE_LOG"
    fi
    sleep 0.1
  done
  tail -n 20 "$CONSOLE_LOG" >&2 || true
  die "ARI did not answer on $(http_address) within ${START_SECONDS}s; see $CONSOLE_LOG"
}

cmd_stop() {
  need_root
  wait_for_tests
  take_lock
  local pid
  if pid=$(asterisk_pid); then
    chroot "$ROOT" /usr/sbin/asterisk -rx "core stop now" >/dev/null 2>&1 || kill -TERM "$pid" || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "pid $pid still there after 10s: TERM"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    say "stopped (pid $pid)"
  else
    say "not running"
  fi
  rm -f "$PIDFILE"
  [ -d "$ROOT" ] && release_mounts "$ROOT"
  return 0
}

cmd_status() {
  if ! is_built; then
    echo "not set up: no chroot at $ROOT"
    exit 4
  fi
  local pid
  if pid=$(asterisk_pid); then
    local ari=down
    ari_answers && ari=up
    echo "running: pid $pid, asterisk $(cat "$READY"), chroot $ROOT, ARI http://$(http_address)/ari ($ari)"
    exit 0
  fi
  echo "stopped: asterisk $(cat "$READY"), chroot $ROOT"
  exit 3
}

cmd_cli() {
  need_root
  asterisk_pid >/dev/null || die "Asterisk is not running"
  chroot "$ROOT" /usr/sbin/asterisk -rx "$*"
}

case ${1:-} in
  setup) cmd_setup ;;
  start) cmd_start "${2:-}" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  cli)
    shift
    cmd_cli "$@"
    ;;
  *)
    sed -n '2,/^# Needs root/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
