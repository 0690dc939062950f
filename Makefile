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
	@$(TOOLS_DIR)/build.sh $@ k8s.io/kubernetes/cmd/$(notdir $@) $(TOOLS_DIR)

$(BIN)/kwok:
	@$(TOOLS_DIR)/build.sh $@ sigs.k8s.io/kwok/cmd/kwok $(TOOLS_DIR)

$(BIN)/etcd:
	@$(TOOLS_DIR)/build.sh $@ go.etcd.io/etcd/server/v3 $(TOOLS_DIR)

$(BIN)/benchmark:
	@$(TOOLS_DIR)/build.sh $@ go.etcd.io/etcd/v3/tools/benchmark $(TOOLS_DIR)

$(BIN)/kine:
	@$(TOOLS_DIR)/build.sh $@ github.com/k3s-io/kine $(TOOLS_DIR)/kine

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
