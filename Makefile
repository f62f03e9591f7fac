# Targets for building, testing and running the filebatch service.
# `make help` lists them.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules

BIN := bin
BUF := go tool -modfile=tools/go.mod buf
GO_TEST_FLAGS ?= -race -count=1

# Upstream versions of the generators behind gen/python, as Debian 12 packages
# them in protobuf-compiler and protobuf-compiler-grpc. The generated code
# changes with them, so `make generate` stops when others are installed.
# Debian's python3-protobuf and python3-grpcio runtimes carry the same
# versions.
PROTOC_VERSION := 3.21.12
GRPC_PYTHON_PLUGIN_VERSION := 1.51.1

.PHONY: help
help: ## Describe the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## Install the Debian and npm packages that the tests and generators need
	scripts/install-deps.sh

# grpc_python_plugin has no --version flag, so check-generators reads its
# version from the Debian package, without the epoch and the revision.
.PHONY: check-generators
check-generators: deps ## Fail unless protoc and grpc_python_plugin have the pinned versions
	@found=$$(protoc --version 2>/dev/null | sed -n 's/^libprotoc //p' || true); \
	if [ "$$found" != "$(PROTOC_VERSION)" ]; then \
		echo "make: protoc $(PROTOC_VERSION) expected, found $${found:-none}." >&2; \
		echo "  Install Debian 12's protobuf-compiler, or set PROTOC_VERSION in the Makefile, run make generate and commit gen/ with it." >&2; \
		exit 1; \
	fi
	@found=$$(dpkg-query -W -f='$${Version}' protobuf-compiler-grpc 2>/dev/null | sed -e 's/^[0-9]*://' -e 's/-[^-]*$$//' || true); \
	if [ "$$found" != "$(GRPC_PYTHON_PLUGIN_VERSION)" ]; then \
		echo "make: grpc_python_plugin $(GRPC_PYTHON_PLUGIN_VERSION) expected, found $${found:-none} (Debian package protobuf-compiler-grpc)." >&2; \
		echo "  Install Debian 12's protobuf-compiler-grpc, or set GRPC_PYTHON_PLUGIN_VERSION in the Makefile, run make generate and commit gen/ with it." >&2; \
		exit 1; \
	fi

.PHONY: generate
generate: check-generators ## Regenerate gen/ from proto/: Go, then TypeScript and Python
	$(BUF) generate
	$(BUF) generate --template buf.gen.clients.yaml

.PHONY: checkgenerate
checkgenerate: generate ## Fail when gen/ differs from a fresh generation
	@if [ -n "$$(git status --porcelain -- gen)" ]; then \
		git status --porcelain -- gen; git diff --stat -- gen; \
		echo "gen/ is stale: run make generate and commit the result" >&2; exit 1; \
	fi

.PHONY: lint
lint: deps ## Run go vet, gofmt, buf lint, buf format and the TypeScript type check
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt would change the files above" >&2; exit 1; }
	$(BUF) lint
	$(BUF) format -d --exit-code
	node_modules/.bin/tsc -p examples/ts

.PHONY: test
test: deps ## Run every test with the race detector
	go test $(GO_TEST_FLAGS) ./...

.PHONY: build
build: ## Build the server and the fake upstream into bin/
	go build -o $(BIN)/server ./cmd/server
	go build -o $(BIN)/fakeupstream ./cmd/fakeupstream

.PHONY: run
run: build ## Run the server with the environment's configuration
	$(BIN)/server

.PHONY: demo
demo: build ## Cancel a batch over gRPC through the server and the fake upstream
	go build -o $(BIN)/example-go ./examples/go
	scripts/demo.sh $(BIN)

.PHONY: examples
examples: deps ## Run the Go, TypeScript and Python example clients against the server
	go test -count=1 -run TestExampleClients -v ./cmd/server

.PHONY: bench
bench: build ## Compare the service with a bare reverse-proxy hop; see docs/benchmarks.md
	go build -o $(BIN)/benchproxy ./bench/proxy
	go test -run '^$$' -bench . -benchmem ./service/ ./gateway/
	go run ./bench/cmd/loadtest -bin $(BIN)

.PHONY: clean
clean: ## Remove build output
	rm -rf $(BIN)
