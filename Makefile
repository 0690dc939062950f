# Keelson. `make demo` builds what is missing and starts a local cluster;
# `make test` runs the whole test suite (what CI runs).

SHELL      := /bin/bash
BIN        := $(CURDIR)/bin
TOOLS_DIR  := $(CURDIR)/hack/tools
GO         ?= go

K8S_TOOLS  := kube-apiserver kube-controller-manager kube-scheduler
# The Kubernetes binaries report the pinned version (go build alone leaves it unset).
K8S_VERSION := v1.36.3
K8S_LDFLAGS := -ldflags=-X=k8s.io/component-base/version.gitVersion=$(K8S_VERSION)

.PHONY: all build tools demo test test-short fuzz bench clean

all: build

build: $(BIN)/keelson

$(BIN)/keelson: FORCE
	@mkdir -p $(BIN)
	$(GO) build -o $@ ./cmd/keelson

FORCE:

# Each tool is built once; an existing binary is reused.
tools:
	@for t in $(K8S_TOOLS); do \
		GOFLAGS="$$GOFLAGS $(K8S_LDFLAGS)" $(TOOLS_DIR)/build.sh $(BIN)/$$t k8s.io/kubernetes/cmd/$$t $(TOOLS_DIR) || exit 1; \
	done
	@$(TOOLS_DIR)/build.sh $(BIN)/kwok sigs.k8s.io/kwok/cmd/kwok $(TOOLS_DIR)
	@$(TOOLS_DIR)/build.sh $(BIN)/etcd go.etcd.io/etcd/server/v3 $(TOOLS_DIR)
	@$(TOOLS_DIR)/build.sh $(BIN)/benchmark go.etcd.io/etcd/v3/tools/benchmark $(TOOLS_DIR)
	@$(TOOLS_DIR)/build.sh $(BIN)/kine github.com/k3s-io/kine $(TOOLS_DIR)/kine

demo: build tools
	$(BIN)/keelson up

test: build tools
	KEELSON_BIN=$(BIN) $(GO) test -count=1 -timeout 25m ./...
	cd hack/schedcompat && $(GO) test -count=1 ./...

test-short: build
	$(GO) test -short -count=1 ./...

bench: build tools
	$(GO) run ./bench/store --bin $(BIN) --out docs/benchmarks.md

clean:
	rm -rf $(BIN)
