#!/usr/bin/env bash
# Run the README's setup and test command on a fresh machine: a clean container made from the
# local base image (scripts/docker-base.sh), holding this repository's committed files (git
# archive HEAD) and nothing else of this checkout, with the shared data beside it read-only, the
# DejaVu fonts only, and this machine's pip configuration (read from `pip config list`: the
# folders and files it names are mounted read-only where they are, so pip finds the same torch CPU
# build here and there). No Docker inside, so the deployment tests skip there.
#
#   bash scripts/fresh-machine.sh [PYTEST ARGS...]     log: runs/fresh-machine.log
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(bash scripts/docker-base.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/stn-align" runs
git archive HEAD | tar -x -C "$work/stn-align"

mounts=(-v "$work/stn-align:/fresh/stn-align")
[ -d ../shared ] && mounts+=(-v "$(cd ../shared && pwd):/fresh/shared:ro")
# Every local path pip's configuration names (files, folders, file:// indexes), and its files.
paths=$(python3 -m pip config list 2>/dev/null | sed "s/^[^=]*=//; s/'//g" | tr ' ' '\n' |
  sed 's|^file://||' | grep '^/' || true)
for f in /etc/pip.conf /etc/xdg/pip ${PIP_CONFIG_FILE:-} $paths; do
  [ -e "$f" ] && mounts+=(-v "$f:$f:ro")
done
envs=()
while IFS='=' read -r name _; do
  envs+=(-e "$name")
done < <(env | grep '^PIP_' || true)

test_args=("$@")
echo "fresh machine: $base, $(echo "${mounts[@]}" | tr ' ' '\n' | grep -c ':') mounts; log runs/fresh-machine.log"
started=$(date +%s)
set +e
docker run --rm --network host "${mounts[@]}" "${envs[@]}" -w /fresh/stn-align "$base" bash -c '
  set -e
  apt-get update -q >/dev/null && apt-get install -y -q fonts-dejavu-core >/dev/null
  echo "fonts: $(find / -xdev \( -name "*.ttf" -o -name "*.otf" \) 2>/dev/null | grep -v "^/fresh" | wc -l) files"
  # niced here: processes in the container do not inherit the niceness of this shell
  nice -n 10 bash scripts/setup.sh
  .venv/bin/python -c "import torch; print(\"torch\", torch.__version__)"
  nice -n 10 .venv/bin/python -m pytest "$@"
' fresh "${test_args[@]}" 2>&1 | tee runs/fresh-machine.log
status=${PIPESTATUS[0]}
echo "fresh machine: exit $status after $(( $(date +%s) - started )) s"
exit "$status"
