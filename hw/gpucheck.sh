#!/bin/sh
# gpucheck.sh compares hw's NVML readings with nvidia-smi on a machine with
# an NVIDIA GPU and driver.
#
#   hw/gpucheck.sh              build and run the check with the go tool
#   hw/gpucheck.sh hw-gpu.test  run a binary built elsewhere with
#                               go test -c -tags gpu -o hw-gpu.test ./hw/
set -eu

if ! command -v nvidia-smi >/dev/null 2>&1; then
	echo "gpucheck: nvidia-smi not found: this check needs an NVIDIA GPU and driver" >&2
	exit 1
fi
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv

if [ $# -gt 0 ]; then
	exec "$1" -test.run GPU -test.v
fi
cd "$(dirname "$0")/.."
export CGO_CFLAGS="${CGO_CFLAGS:--O2 -g -Wno-deprecated-declarations}"
exec go test -tags gpu -count=1 -run GPU -v ./hw/
