#!/usr/bin/env bash
# Regenerate the Python gRPC stubs in service/proto/ from protos/ (or into $1, for the test that
# checks the checked-in stubs are current). protoc writes imports as "from stn.alignment.v1 import",
# the proto's own path; we flatten the files into one package and rewrite that import to match.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/service/proto}"
python="${PYTHON:-$root/.venv/bin/python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" -m grpc_tools.protoc -I "$root/protos" --python_out="$tmp" --pyi_out="$tmp" \
    --grpc_python_out="$tmp" "$root/protos/stn/alignment/v1/alignment.proto"
mkdir -p "$out"
for f in alignment_pb2.py alignment_pb2.pyi alignment_pb2_grpc.py; do
    sed 's/^from stn\.alignment\.v1 import alignment_pb2/from stn_align.service.proto import alignment_pb2/' \
        "$tmp/stn/alignment/v1/$f" > "$out/$f"
done
