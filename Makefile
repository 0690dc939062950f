# Keelson. `make demo` builds what is missing and starts a local cluster;
# `make test` runs the whole test suite (what CI runs).

SHELL      := /bin/bash
BIN        := $(CURDIR)/bin
TOOLS_DIR  := $(CURDIR)/hack/tools
GO         ?= go

K8S_TOOLS  := kube-apiserver kube-controller-manager kube-scheduler
TOOLS      := $(addprefix $(BIN)/,$(K8S_TOOLS) kwok etcd benchmark kine)

.PHONY: all build tools demo test test-short fuzz bench clean

all: build

build: $(BIN)/keelson

$(BIN)/keelson: FORCE
	@mkdir -p $(BIN)
	$(GO) build -o $@ ./cmd/keelson

FORCE:

# Each tool is built once; an existing binary is reused.
tools: $(TOOLS)

$(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/kube-scheduler:
	@mkdir -p $(BIN)
	cd $(TOOLS_DIR) && $(GO) build -o $@ k8s.io/kubernetes/cmd/$(notdir $@)

$(BIN)/kwok:
	@mkdir -p $(BIN)
	cd $(TOOLS_DIR) && $(GO) build -o $@ sigs.k8s.io/kwok/cmd/kwok

$(BIN)/etcd:
	@mkdir -p $(BIN)
	cd $(TOOLS_DIR) && $(GO) build -o $@ go.etcd.io/etcd/server/v3

$(BIN)/benchmark:
	@mkdir -p $(BIN)
	cd $(TOOLS_DIR) && $(GO) build -o $@ go.etcd.io/etcd/v3/tools/benchmark

$(BIN)/kine:
	@mkdir -p $(BIN)
	cd $(TOOLS_DIR)/kine && $(GO) build -o $@ github.com/k3s-io/kine

demo: build tools
	$(BIN)/keelson up

test: build tools
	KEELSON_BIN=$(BIN) $(GO) test -count=1 -timeout 25m ./...

test-short: build
	$(GO) test -short -count=1 ./...

bench: build tools
	$(GO) run ./bench/store --bin $(BIN) --out docs/benchmarks.md

clean:
	rm -rf $(BIN)
