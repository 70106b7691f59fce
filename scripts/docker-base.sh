#!/usr/bin/env bash
# Make a Docker engine and a local base image ready, for building this project's images on a
# machine that reaches Debian's package mirror but no container registry.
#
#   bash scripts/docker-base.sh             start dockerd if it is not running; build the base once
#   bash scripts/docker-base.sh --install   first install Docker, Compose and debootstrap from apt
#   bash scripts/docker-base.sh --rebuild   build the base again
#
# The base, stn-align-base:bookworm, is Debian 12 (debootstrap's minbase, from the mirror this
# machine's apt is configured with) plus Python 3.11 and the machine's CA bundle, so that pip and
# apt in image builds trust the same certificates as the host (a TLS-inspecting proxy included).
# It stands in for python:3.12-slim (the service image) and debian:bookworm-slim (the balancer);
# to use it: `export STN_BASE_IMAGE=stn-align-base:bookworm` before `docker compose build`.
#
# With a registry, none of this is needed: leave STN_BASE_IMAGE unset and `docker compose
# --profile cpu build` pulls python:3.12-slim, the balancer image builds FROM debian:bookworm-slim,
# and the GPU image FROM nvidia/cuda (see the Dockerfile).
#
# Root is needed to start dockerd and to run debootstrap. Prints the base image's name last.
# Exit status 3: no Docker engine can run here (not installed, or dockerd does not start).
set -euo pipefail
base=${STN_LOCAL_BASE:-stn-align-base:bookworm}
suite=bookworm
install=0 rebuild=0
for arg in "$@"; do
  case "$arg" in
    --install) install=1 ;;
    --rebuild) rebuild=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "docker-base: unknown option $arg (expected --install or --rebuild)" >&2; exit 2 ;;
  esac
done
say() { echo "docker-base: $*" >&2; }
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

if [ "$install" = 1 ]; then
  missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  # Compose: the v2 plugin where the archive has it, else Debian's docker-compose (v1).
  if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
    if apt-cache show docker-compose-plugin >/dev/null 2>&1; then
      missing+=(docker-compose-plugin)
    else
      missing+=(docker-compose)
    fi
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    $sudo apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null
  fi
fi

if docker info >/dev/null 2>&1; then
  say "dockerd is running"
else
  command -v dockerd >/dev/null || { say "dockerd is not installed (run with --install)"; exit 3; }
  [ -z "$sudo" ] || sudo -n true 2>/dev/null || { say "dockerd is not running, and starting it needs root"; exit 3; }
  log=/var/log/dockerd.log
  say "dockerd is not running: starting it (log: $log)"
  # setsid + nohup: the engine outlives this script and the shell that called it.
  $sudo sh -c "setsid nohup dockerd --storage-driver overlay2 >>$log 2>&1 </dev/null &"
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { say "dockerd did not start: $(tail -n 3 "$log" 2>/dev/null)"; exit 3; }
  say "dockerd started"
fi

if [ "$rebuild" = 0 ] && docker image inspect "$base" >/dev/null 2>&1; then
  say "base image $base exists; reusing it"
  echo "$base"
  exit 0
fi

# The Debian mirror apt already uses (one-line or deb822 sources), not a host of ours.
mirror=$(
  { cat /etc/apt/sources.list 2>/dev/null || true
    cat /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
    awk -v s="$suite" '$1 == "deb" && $0 ~ " " s " " && $0 !~ /security/ {
      for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }'
)
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$suite" '
    /^$/ { if (uri && suites ~ "(^| )" s "( |$)") { print uri; exit } uri = ""; suites = "" }
    /^URIs:/ { uri = $2 } /^Suites:/ { $1 = ""; suites = $0 }
    END { if (uri && suites ~ "(^| )" s "( |$)") print uri }' | head -1)
fi
[ -n "$mirror" ] || { say "no Debian $suite mirror found in apt's sources"; exit 1; }
command -v debootstrap >/dev/null || { say "debootstrap not installed (run with --install)"; exit 1; }
ca=/etc/ssl/certs/ca-certificates.crt
[ -r "$ca" ] || { say "no CA bundle at $ca"; exit 1; }

root=$(mktemp -d)
cleanup() {
  # debootstrap mounts /proc, /sys and sometimes the host's /dev inside the target: unmount what a
  # failed run may have left, and never cross into another filesystem while deleting.
  awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do $sudo umount -l "$m" || true; done
  $sudo rm -rf --one-file-system "$root"
}
trap cleanup EXIT
say "building $base: debootstrap $suite from $mirror"
$sudo debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$suite" "$root" "$mirror" >/dev/null
# The host's bundle, at a path no package owns, so that updating ca-certificates keeps it.
$sudo install -D -m 644 "$ca" "$root/usr/local/share/stn-ca/ca-certificates.crt"
$sudo cp "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
$sudo rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
bundle=/usr/local/share/stn-ca/ca-certificates.crt
$sudo tar -C "$root" -c . | docker import \
  --change "ENV SSL_CERT_FILE=$bundle PIP_CERT=$bundle REQUESTS_CA_BUNDLE=$bundle LANG=C.UTF-8" \
  --change 'CMD ["/bin/bash"]' \
  --message "Debian $suite minbase + python3 from $mirror" - "$base" >/dev/null
say "built $base ($(docker image inspect -f '{{.Size}}' "$base" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "$base"
