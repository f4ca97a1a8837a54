#!/usr/bin/env bash
# Regenerates Sources/InteropClientSwift/Generated from protos/grpc/testing. Run only when the
# protos change: it builds protoc-gen-swift and protoc-gen-grpc-swift-2 (about ten minutes the
# first time). protoc comes from grpcio-tools in the repo's .venv (scripts/setup test).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
swift build -c release --product protoc-gen-swift
swift build -c release --product protoc-gen-grpc-swift-2
bin="$(swift build -c release --show-bin-path)"
out="$here/Sources/InteropClientSwift/Generated"
rm -f "$out"/*.swift
"$root/.venv/bin/python" -m grpc_tools.protoc -I "$root/protos/grpc/testing" \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" --swift_out="$out" --swift_opt=Visibility=Internal \
  --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" --grpc-swift_out="$out" \
  --grpc-swift_opt=Visibility=Internal,Server=false \
  "$root"/protos/grpc/testing/*.proto
ls "$out"
