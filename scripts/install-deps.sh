#!/usr/bin/env bash
# Installs what the tests and the code generators need beyond Go: Debian's
# protoc, grpc_python_plugin and Python gRPC runtime, Node.js and npm when
# they are missing, and the npm packages pinned in package-lock.json files.
# Packages already present are kept. The Makefile pins the generator
# versions and checks them before `make generate`.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf)
# The machine image normally ships Node.js 20 with npm, so Debian's packages
# are only a fallback.
# NOTE: Debian 12's nodejs is 18.x, older than the ">=20" that package.json
# requires. npm ci only warns about that, and the tests have not been run
# on Node.js 18.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	debian_packages+=(nodejs npm)
fi
missing=()
for pkg in "${debian_packages[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing Debian packages: ${missing[*]}; run as root or install them" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

for dir in $(git ls-files '*package-lock.json' | xargs -r -n1 dirname); do
	if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	fi
done
