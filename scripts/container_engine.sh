#!/usr/bin/env bash
# A local container engine for the pipeline image's build and the executed Kubeflow spec (`make test-kubeflow`).
#
#   scripts/container_engine.sh start   # install Debian's docker.io if there is no dockerd, start dockerd (or reuse
#                                       # a running one); prints the docker client to use
#   scripts/container_engine.sh stop    # stop the dockerd this script started (never one it found running)
#   scripts/container_engine.sh docker ARGS...   # run Debian's docker client against that daemon
#
# These machines reach no image registry and have no bridge networking: the daemon runs with
# `--bridge=none --iptables=false` and containers run with `--network host` (loopback only). Debian's own client
# (/usr/bin/docker) is used with Debian's daemon, so client and daemon speak the same API version (a newer client
# elsewhere on PATH may not). State: /var/lib/dcgan-docker (data root), /run/dcgan-docker (socket, pid, log).
set -euo pipefail

STATE=${DCGAN_DOCKER_STATE:-/run/dcgan-docker}
DATA_ROOT=${DCGAN_DOCKER_DATA:-/var/lib/dcgan-docker}
SOCK="$STATE/docker.sock"
PIDFILE="$STATE/dockerd.pid"
LOG="$STATE/dockerd.log"
CLIENT=/usr/bin/docker
export DOCKER_HOST="unix://$SOCK"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"

install_engine() {
  if command -v dockerd >/dev/null 2>&1 && [ -x "$CLIENT" ]; then
    return 0
  fi
  echo "container_engine: installing Debian's docker.io (dockerd, containerd, runc)" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends docker.io >/dev/null 2>&1 \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends docker.io >/dev/null; }
}

running() {
  [ -S "$SOCK" ] && "$CLIENT" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

start() {
  install_engine
  if running; then
    echo "$CLIENT"
    return 0
  fi
  $SUDO mkdir -p "$STATE" "$DATA_ROOT"
  echo "container_engine: starting dockerd (log: $LOG)" >&2
  # setsid: the daemon outlives this script and the make target; `stop` ends it by its pid.
  $SUDO setsid dockerd --host "unix://$SOCK" --pidfile "$PIDFILE" --data-root "$DATA_ROOT" \
    --exec-root "$STATE/exec" --bridge=none --iptables=false --ip-masq=false >>"$LOG" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    if running; then
      echo "$CLIENT"
      return 0
    fi
    sleep 1
  done
  echo "container_engine: dockerd did not answer on $SOCK within 60 s; the end of $LOG:" >&2
  tail -20 "$LOG" >&2
  exit 1
}

stop() {
  if [ -f "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
      "$CLIENT" ps -q | xargs -r "$CLIENT" kill >/dev/null 2>&1 || true
      $SUDO kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    fi
  fi
  # dockerd leaves its default network namespace bind-mounted under the exec root.
  if grep -qs " $STATE/exec/netns/default " /proc/mounts; then
    $SUDO umount "$STATE/exec/netns/default" || true
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  docker) shift; install_engine; exec "$CLIENT" "$@" ;;
  *) echo "usage: $0 start|stop|docker ARGS..." >&2; exit 2 ;;
esac
