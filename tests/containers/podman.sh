#!/usr/bin/env bash
# Make podman usable for the container tests on a Debian 12 machine (as root): install podman, runc
# and debootstrap, and add the containers.conf drop-in this kind of machine needs. Idempotent.
#   bash tests/containers/podman.sh up       install + configure (a few seconds when already done)
#   bash tests/containers/podman.sh status   what podman reports
# Images are built by the tests themselves (`portaflow containers base` / `build`), not here.
set -euo pipefail
CONF=/etc/containers/containers.conf.d/50-portaflow.conf

up() {
  if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
    [ "$(id -u)" -eq 0 ] || { echo "podman.sh: run as root to install podman, runc, debootstrap" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends podman runc debootstrap tar >/dev/null
  fi
  if [ "$(id -u)" -eq 0 ] && [ ! -f "$CONF" ]; then
    mkdir -p "$(dirname "$CONF")"
    # runc (crun fails on hybrid cgroups here), cgroupfs and a file event log (no systemd), ulimits a
    # container may set without privileges, and no network: steps and builds need none.
    cat > "$CONF" <<'EOF'
# Written by portaflow's tests/containers/podman.sh for this CI machine.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
  fi
  podman info --format '{{.Host.OCIRuntime.Name}}' >/dev/null
  echo "podman $(podman --version | awk '{print $3}') ready (runtime $(podman info --format '{{.Host.OCIRuntime.Name}}'))"
}

case "${1:-}" in
  up) up ;;
  status) podman info --format 'runtime={{.Host.OCIRuntime.Name}} cgroups={{.Host.CgroupManager}} events={{.Host.EventLogger}}'; podman images ;;
  *) echo "usage: $0 up|status" >&2; exit 2 ;;
esac
