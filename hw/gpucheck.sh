#!/bin/sh
# gpucheck.sh checks the GPU path on a machine with an NVIDIA GPU and driver,
# in a few minutes:
#
#   1. hw's NVML readings against nvidia-smi, and the llama.cpp build they
#      choose (CUDA for a driver of 550 or later);
#   2. provisioning llama.cpp's CUDA backend (potluck engine install --backend cuda);
#   3. serving the test model with every layer on CUDA0 (potluck run --device CUDA0);
#   4. its decode speed against the CPU's (--device none: -ngl 0).
#
#   hw/gpucheck.sh                 build what it needs with the go tool
#   POTLUCK_BIN=path hw/gpucheck.sh  use a potluck built elsewhere
#
# The model is ../shared/models/stories260K.gguf when present, otherwise
# POTLUCK_MODEL. Provisioning needs the machine's Debian mirror; where it is
# not reachable, point POTLUCK_LLAMA_DIR at a llama.cpp with the CUDA backend.
set -eu
cd "$(dirname "$0")/.."
export CGO_CFLAGS="${CGO_CFLAGS:--O2 -g -Wno-deprecated-declarations}"

say() { printf '\n== %s\n' "$*"; }

if ! command -v nvidia-smi >/dev/null 2>&1; then
	echo "gpucheck: nvidia-smi not found: this check needs an NVIDIA GPU and driver" >&2
	exit 1
fi
work=$(mktemp -d)
api=127.0.0.1:18977
node=""
cleanup() {
	[ -n "$node" ] && kill "$node" 2>/dev/null && wait "$node" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

bin=${POTLUCK_BIN:-}
if [ -z "$bin" ]; then
	go build -o "$work/potluck" .
	bin=$work/potluck
fi
model=${POTLUCK_MODEL:-../shared/models/stories260K.gguf}
[ -f "$model" ] || { echo "gpucheck: no model at $model: set POTLUCK_MODEL" >&2; exit 1; }

say "1. NVML against nvidia-smi"
nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.max.memory --format=csv
if command -v go >/dev/null 2>&1 && [ -z "${POTLUCK_BIN:-}" ]; then
	go test -tags gpu -count=1 -run GPU -v ./hw/ ./runtimes/
else
	"$bin" hw
fi

say "2. the CUDA backend"
if [ -z "${POTLUCK_LLAMA_DIR:-}" ]; then
	time "$bin" engine install --backend cuda
fi
"$bin" engine status
"$bin" engine status | grep -q 'CUDA0' || { echo "gpucheck: llama.cpp lists no CUDA0" >&2; exit 1; }

# serve DEVICE starts a node on the model restricted to DEVICE, waits for it
# and prints the decode rate of 128 greedy tokens.
serve() {
	dir=$work/$1
	LLAMA_ARG_LOG_VERBOSITY=4 "$bin" run --data-dir "$dir" --api "$api" --model "$model" --device "$1" \
		--ctx-size 2048 >"$work/$1.log" 2>&1 &
	node=$!
	i=0
	until curl -fs "http://$api/api/status" | grep -q '"ready":true'; do
		i=$((i + 1))
		if [ $i -gt 240 ] || ! kill -0 "$node" 2>/dev/null; then
			echo "gpucheck: the node on $1 did not get ready" >&2
			tail -30 "$work/$1.log" >&2
			exit 1
		fi
		sleep 0.5
	done
	curl -fs "http://$api/api/plan" | python3 -c 'import json,sys; print(json.load(sys.stdin)["plan"]["devices"])' || true
	curl -fs "http://$api/v1/completions" -H 'Content-Type: application/json' \
		-d '{"prompt":"Once upon a time","max_tokens":128,"temperature":0}' |
		python3 -c 'import json,sys; r=json.load(sys.stdin); print("%s: %.0f tok/s, text: %r" % (sys.argv[1], r["timings"]["predicted_per_second"], r["choices"][0]["text"][:60]))' "$1"
	kill "$node"
	wait "$node" 2>/dev/null || true
	node=""
}

say "3. every layer on CUDA0"
serve CUDA0
grep -E 'offloaded [0-9]+/[0-9]+ layers to GPU' "$work/CUDA0/logs/llama-server.log" || {
	echo "gpucheck: llama-server did not say what it offloaded" >&2
	exit 1
}

say "4. the same model on the CPU (-ngl 0)"
serve none
