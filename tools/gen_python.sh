#!/usr/bin/env bash
# Generate Python messages, gRPC stubs and .pyi type stubs for every contract.
# Usage: tools/gen_python.sh OUT_DIR PROTO_ROOT [THIRD_PARTY_ROOT]
# Uses grpcio-tools' bundled protoc (it matches the protobuf runtime) and mypy-protobuf
# (protoc-gen-mypy, protoc-gen-mypy_grpc on PATH). Output is byte-for-byte reproducible.
# Also writes switchboard/descriptors.binpb: a FileDescriptorSet of every contract and its
# imports WITH source info (comments), which server reflection serves so that
# `grpcurl describe` shows the contracts' comments (the _pb2 modules carry none).
#
# THIRD_PARTY_ROOT (default third_party/protos, if it exists) holds wire-compatible subsets of
# other projects' APIs (etcd, Envoy/xDS), each under its upstream path with a header naming
# the upstream file and licence. They are generated into OUT_DIR beside switchboard/, one
# top-level Python package per top-level folder, and are not part of the buf module (buf
# lint/breaking apply to our contracts only).
set -euo pipefail
out=$1
root=$2
third=${3:-third_party/protos}

# googleapis-common-protos ships google/rpc/*.proto: the xDS subset imports google/rpc/status.proto
# from there (and the generated code imports google.rpc.status_pb2 from that package too).
includes=()
common=$(python -c 'import pathlib, google.rpc.status_pb2 as m; print(pathlib.Path(m.__file__).parents[2])')

gen() { # gen ROOT FILE... -> python + grpc + mypy stubs into $out
  local r=$1; shift
  python -m grpc_tools.protoc -I "$r" ${includes[@]+"${includes[@]}"} \
    --python_out="$out" --grpc_python_out="$out" \
    --mypy_out=quiet:"$out" --mypy_grpc_out=quiet:"$out" "$@"
}
protos_in() { (cd "$1" && find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort); }
package_dirs() { # every directory below $1 gets an __init__.py so setuptools maps it
  find "$1" -type d -print0 | while IFS= read -r -d '' d; do : > "$d/__init__.py"; done
}

mapfile -t files < <(protos_in "$root")
rm -rf "$out/switchboard"
mkdir -p "$out/switchboard"
gen "$root" --include_imports --include_source_info \
  --descriptor_set_out="$out/switchboard/descriptors.binpb" "${files[@]/#/$root/}"
package_dirs "$out/switchboard"
: > "$out/switchboard/py.typed"

if [ -d "$third" ]; then
  mapfile -t tops < <(cd "$third" && find . -mindepth 1 -maxdepth 1 -type d | sed 's|^\./||' | LC_ALL=C sort)
  for top in "${tops[@]}"; do rm -rf "${out:?}/$top"; done
  mapfile -t tfiles < <(protos_in "$third")
  if [ "${#tfiles[@]}" -gt 0 ]; then
    includes=(-I "$common")
    gen "$third" "${tfiles[@]/#/$third/}"
    for top in "${tops[@]}"; do package_dirs "$out/$top"; : > "$out/$top/py.typed"; done
  fi
fi
