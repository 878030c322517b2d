#!/usr/bin/env bash
# Generate Python messages, gRPC stubs and .pyi type stubs for every contract.
# Usage: tools/gen_python.sh OUT_DIR PROTO_ROOT
# Uses grpcio-tools' bundled protoc (it matches the protobuf runtime) and mypy-protobuf
# (protoc-gen-mypy, protoc-gen-mypy_grpc on PATH). Output is byte-for-byte reproducible.
# Also writes switchboard/descriptors.binpb: a FileDescriptorSet of every contract and its
# imports WITH source info (comments), which server reflection serves so that
# `grpcurl describe` shows the contracts' comments (the _pb2 modules carry none).
set -euo pipefail
out=$1
root=$2
mapfile -t files < <(cd "$root" && find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
rm -rf "$out/switchboard"
mkdir -p "$out/switchboard"
python -m grpc_tools.protoc -I "$root" \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out=quiet:"$out" --mypy_grpc_out=quiet:"$out" \
  --include_imports --include_source_info \
  --descriptor_set_out="$out/switchboard/descriptors.binpb" \
  "${files[@]/#/$root/}"
# Packages need an __init__.py each so the editable install maps them like any package.
find "$out/switchboard" -type d -print0 | while IFS= read -r -d '' d; do
  : > "$d/__init__.py"
done
: > "$out/switchboard/py.typed"
