#!/usr/bin/env bash
# Starts the fake upstream and the server on free loopback ports, cancels the
# seeded batch over gRPC with the Go example client, prints the batch, and
# stops both. Usage: scripts/demo.sh BIN_DIR
set -euo pipefail

bin=${1:?usage: scripts/demo.sh BIN_DIR}
work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# wait_for PATTERN FILE prints the first match of PATTERN in FILE, waiting
# up to 10 s for the process to log it.
wait_for() {
	local pattern=$1 file=$2 match
	for _ in $(seq 100); do
		if match=$(grep -oE -m1 "$pattern" "$file"); then
			echo "$match"
			return 0
		fi
		sleep 0.1
	done
	echo "demo: timed out waiting for $pattern in $file:" >&2
	cat "$file" >&2
	return 1
}

key=sk-demo-key
OPENAI_API_KEY=$key "$bin/fakeupstream" -addr 127.0.0.1:0 >"$work/upstream.log" 2>&1 &
pids+=($!)
upstream_url=$(wait_for 'http://127\.0\.0\.1:[0-9]+/v1' "$work/upstream.log")

OPENAI_API_KEY=$key "$bin/server" -grpc-addr 127.0.0.1:0 -http-addr 127.0.0.1:0 \
	-upstream-url "$upstream_url" -log-format text >"$work/server.log" 2>&1 &
pids+=($!)
grpc_addr=$(wait_for 'grpc\.addr=127\.0\.0\.1:[0-9]+' "$work/server.log")
grpc_addr=${grpc_addr#grpc.addr=}

echo "fake upstream: $upstream_url"
echo "gRPC server:   $grpc_addr"
echo "calling CancelFileBatch(vector_store_id=vs_abc123, batch_id=vsfb_abc123)"
echo
"$bin/example-go" -addr "$grpc_addr" -vector-store vs_abc123 -batch vsfb_abc123
