# mk/tools.mk — pinned developer tools under .tools/, multi-language stubs, interop clients.
#
# Included from the main Makefile (which sets SHELL := bash, -eu -o pipefail, VENV, BIN).
# Everything installs into $(TOOLS_DIR) (gitignored) from package registries only, pinned to
# exact versions. Each install writes a stamp named after its version, so a second run is a
# no-op and bumping a version below reinstalls just that tool.
#
#   make tools            grpcurl, ghz, protoc-gen-go(-grpc), protoc-gen-grpc-java, ts-proto
#   make tools-etcd       etcd from Debian (apt, as root) if `etcd` is not on PATH
#   make tools-postgres   PostgreSQL 15 from Debian (apt, as root) if its binaries are missing
#   make tools-prometheus Prometheus from Debian (apt, as root) if `prometheus` is not on PATH
#   make tools-chromium   Chromium from Debian (apt, as root) if /usr/bin/chromium is missing
#   make stubs            generated/{go,ts,java} from protos/ (not committed; regenerate)
#   make interop          build the Go, TypeScript and Java interop clients against the stubs
#   make tools-clean      remove .tools/ (and node_modules, Java target/)
#
# STUBS_PROTO_ROOT=/some/dir overrides the contract root (used to prove the toolchain on a
# scratch proto).

# --- pinned versions ---------------------------------------------------------------
GRPCURL_VERSION            := v1.9.4
GHZ_VERSION                := v0.121.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
# protoc-gen-grpc-java: 1.83.1 is the newest whose linux exe Maven Central serves here (1.84.x, 1.85.x: 404)
GRPC_JAVA_VERSION          := 1.83.1
# protoc for Java: grpc_tools' bundled protoc has only the Python generators, so Java uses
# Maven Central's protoc, same release line as the Python runtime (protobuf 7.36.2 = protoc 36.2).
PROTOC_JAVA_VERSION        := 4.36.2
MVN_DEPENDENCY_PLUGIN      := 3.11.0
ETCD_APT_VERSION           := 3.4.23-4+b4
POSTGRES_APT_VERSION       := 15.18-0+deb12u1
POSTGRES_BIN               := /usr/lib/postgresql/15/bin
PROMETHEUS_APT_VERSION     := 2.42.0+ds-5+deb12u1
# The console's browser tests drive it with Playwright (never `playwright install`).
CHROMIUM_APT_VERSION       := 156.0.8078.114-1~deb12u1
# npm versions live in interop/ts/package.json + package-lock.json (npm ci).
# Go module versions of the stubs/clients live in generated/go/go.mod and interop/go/go.mod.
# Java library versions live in interop/java/pom.xml.

# --- layout -------------------------------------------------------------------------
TOOLS_DIR    := $(abspath .tools)
TOOLS_BIN    := $(TOOLS_DIR)/bin
TOOLS_STAMPS := $(TOOLS_DIR)/stamps
TOOLS_M2     := $(TOOLS_DIR)/m2
TOOLS_VENV_STAMP := $(VENV)/.installed
# grpcio-tools' protoc (the one generated/python uses) for Go and TS.
TOOLS_GRPC_PROTOC := $(abspath $(VENV))/bin/python -m grpc_tools.protoc

# Paths for other targets (bench, interop tests) to use.
GRPCURL := $(TOOLS_BIN)/grpcurl
GHZ     := $(TOOLS_BIN)/ghz

STUBS_PROTO_ROOT ?= protos
STUBS_GO_MODULE  := github.com/switchboard-dev/switchboard/generated/go
GEN_GO   := generated/go
GEN_TS   := generated/ts
GEN_JAVA := generated/java

INTEROP_GO   := interop/go
INTEROP_TS   := interop/ts
INTEROP_JAVA := interop/java
TS_NODE_BIN  := $(INTEROP_TS)/node_modules/.bin

# Go: module and build caches inside .tools (CI-like, never ~/go). -modcacherw lets
# `rm -rf .tools` work. GOTOOLCHAIN defaults to the local Go (never auto-downloads one).
TOOLS_GOTOOLCHAIN := $(if $(filter environment% command% file override,$(origin GOTOOLCHAIN)),$(GOTOOLCHAIN),local)
TOOLS_GOENV := GOBIN=$(TOOLS_BIN) GOMODCACHE=$(TOOLS_DIR)/go/mod GOCACHE=$(TOOLS_DIR)/go/cache \
  GOFLAGS='-modcacherw -buildvcs=false' GOTOOLCHAIN=$(TOOLS_GOTOOLCHAIN) CGO_ENABLED=0
TOOLS_MVN := mvn -B -q -Dstyle.color=never -Dmaven.repo.local=$(TOOLS_M2)

# protoc-gen-grpc-java is published per platform; map uname -m to Maven's classifier.
TOOLS_ARCH := $(shell uname -m)
TOOLS_MVN_CLASSIFIER := linux-$(if $(filter aarch64 arm64,$(TOOLS_ARCH)),aarch_64,x86_64)

$(TOOLS_STAMPS) $(TOOLS_BIN):
	@mkdir -p $@

# --- Go tools (go install, pinned) --------------------------------------------------
# $(call tools_go_install,NAME,PACKAGE,VERSION[,LDFLAGS]) -> stamp .tools/stamps/NAME-VERSION
define tools_go_install
$(TOOLS_STAMPS)/$(1)-$(3): | $(TOOLS_STAMPS) $(TOOLS_BIN)
	@echo "install $(1) $(3): building from the Go module proxy (about a minute the first time)"
	@rm -f $(TOOLS_STAMPS)/$(1)-v*
	@log=$(TOOLS_DIR)/$(1).install.log; \
	if ! $(TOOLS_GOENV) go install -trimpath -ldflags='-s -w $(4)' $(2)@$(3) >"$$$$log" 2>&1; then \
	  cat "$$$$log" >&2; echo "install $(1) $(3) failed (log: $$$$log)" >&2; exit 1; fi
	@test -x $(TOOLS_BIN)/$(1)
	@touch $$@
endef

$(eval $(call tools_go_install,grpcurl,github.com/fullstorydev/grpcurl/cmd/grpcurl,$(GRPCURL_VERSION),-X main.version=$(GRPCURL_VERSION)))
$(eval $(call tools_go_install,ghz,github.com/bojand/ghz/cmd/ghz,$(GHZ_VERSION),-X main.version=$(GHZ_VERSION)))
$(eval $(call tools_go_install,protoc-gen-go,google.golang.org/protobuf/cmd/protoc-gen-go,$(PROTOC_GEN_GO_VERSION)))
$(eval $(call tools_go_install,protoc-gen-go-grpc,google.golang.org/grpc/cmd/protoc-gen-go-grpc,$(PROTOC_GEN_GO_GRPC_VERSION)))

STAMP_GRPCURL   := $(TOOLS_STAMPS)/grpcurl-$(GRPCURL_VERSION)
STAMP_GHZ       := $(TOOLS_STAMPS)/ghz-$(GHZ_VERSION)
STAMP_GEN_GO    := $(TOOLS_STAMPS)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION) \
                   $(TOOLS_STAMPS)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)
STAMP_GEN_JAVA  := $(TOOLS_STAMPS)/protoc-$(PROTOC_JAVA_VERSION) \
                   $(TOOLS_STAMPS)/protoc-gen-grpc-java-$(GRPC_JAVA_VERSION)
STAMP_NPM       := $(TOOLS_STAMPS)/npm-interop-ts
STAMP_M2_JAVA   := $(TOOLS_STAMPS)/m2-interop-java

.PHONY: tools-grpcurl tools-ghz tools-protoc-gen-go tools-protoc-gen-grpc-java tools-ts tools
tools-grpcurl: $(STAMP_GRPCURL) ## grpcurl into .tools/bin (pinned)
tools-ghz: $(STAMP_GHZ) ## ghz load generator into .tools/bin (pinned)
tools-protoc-gen-go: $(STAMP_GEN_GO) ## protoc-gen-go and protoc-gen-go-grpc into .tools/bin
tools-protoc-gen-grpc-java: $(STAMP_GEN_JAVA) ## protoc + protoc-gen-grpc-java from Maven Central into .tools/bin
tools-ts: $(STAMP_NPM) ## ts-proto, grpc-js, typescript (npm ci in interop/ts)
tools: tools-grpcurl tools-ghz tools-protoc-gen-go tools-protoc-gen-grpc-java tools-ts ## Every pinned tool except etcd

# --- Java: protoc + protoc-gen-grpc-java (Maven Central executables, pinned) ----------
# $(call tools_mvn_exe,NAME,GROUP:ARTIFACT,VERSION) -> .tools/bin/NAME, stamp NAME-VERSION
define tools_mvn_exe
$(TOOLS_STAMPS)/$(1)-$(3): | $(TOOLS_STAMPS) $(TOOLS_BIN)
	@echo "install $(1) $(3) ($(TOOLS_MVN_CLASSIFIER)) from Maven Central"
	@rm -f $(TOOLS_STAMPS)/$(1)-[0-9]*
	$(TOOLS_MVN) org.apache.maven.plugins:maven-dependency-plugin:$(MVN_DEPENDENCY_PLUGIN):copy \
	  -Dartifact=$(2):$(3):exe:$(TOOLS_MVN_CLASSIFIER) \
	  -DoutputDirectory=$(TOOLS_DIR)/tmp-$(1) -Dmdep.overWriteReleases=true
	mv -f $(TOOLS_DIR)/tmp-$(1)/$(lastword $(subst :, ,$(2)))-$(3)-$(TOOLS_MVN_CLASSIFIER).exe $(TOOLS_BIN)/$(1)
	@rmdir $(TOOLS_DIR)/tmp-$(1)
	chmod 0755 $(TOOLS_BIN)/$(1)
	@touch $$@
endef

$(eval $(call tools_mvn_exe,protoc,com.google.protobuf:protoc,$(PROTOC_JAVA_VERSION)))
$(eval $(call tools_mvn_exe,protoc-gen-grpc-java,io.grpc:protoc-gen-grpc-java,$(GRPC_JAVA_VERSION)))

# --- TypeScript (npm ci from the committed lock) -------------------------------------
$(STAMP_NPM): $(INTEROP_TS)/package.json $(INTEROP_TS)/package-lock.json | $(TOOLS_STAMPS)
	cd $(INTEROP_TS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# --- etcd (Debian package; the one tool not under .tools) ----------------------------
.PHONY: tools-etcd
tools-etcd: ## etcd-server + etcd-client from Debian, only if `etcd` is missing
	@if command -v etcd >/dev/null 2>&1; then exit 0; fi; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	echo "install etcd-server/etcd-client $(ETCD_APT_VERSION) (apt)"; \
	$$sudo apt-get update -qq; \
	apt="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"; \
	$$apt etcd-server=$(ETCD_APT_VERSION) etcd-client=$(ETCD_APT_VERSION) >/dev/null || { \
	  echo "etcd $(ETCD_APT_VERSION) is no longer served by Debian: installing its current etcd" >&2; \
	  $$apt etcd-server etcd-client >/dev/null; }; \
	etcd --version | head -1

# --- PostgreSQL (Debian package; the tests start their own server from its binaries) ------
.PHONY: tools-postgres
tools-postgres: ## postgresql-15 from Debian, only if $(POSTGRES_BIN)/postgres is missing
	@if [ -x $(POSTGRES_BIN)/postgres ]; then exit 0; fi; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	echo "install postgresql-15 $(POSTGRES_APT_VERSION) (apt)"; \
	$$sudo apt-get update -qq; \
	apt="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"; \
	$$apt postgresql-15=$(POSTGRES_APT_VERSION) >/dev/null || { \
	  echo "postgresql-15 $(POSTGRES_APT_VERSION) is no longer served by Debian: installing its current one" >&2; \
	  $$apt postgresql-15 >/dev/null; }; \
	$(POSTGRES_BIN)/postgres --version

# --- Prometheus (Debian package; tests/observability scrape the processes with it) ----
.PHONY: tools-prometheus
tools-prometheus: ## prometheus from Debian (apt, pinned), only if `prometheus` is missing
	@if command -v prometheus >/dev/null 2>&1; then exit 0; fi; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	echo "install prometheus $(PROMETHEUS_APT_VERSION) (apt)"; \
	$$sudo apt-get update -qq; \
	apt="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"; \
	$$apt prometheus=$(PROMETHEUS_APT_VERSION) >/dev/null || { \
	  echo "prometheus $(PROMETHEUS_APT_VERSION) is no longer served by Debian: installing its current one" >&2; \
	  $$apt prometheus >/dev/null; }; \
	prometheus --version 2>&1 | head -1

# --- Chromium (Debian package; tests/console drive the registry console with it) -----
.PHONY: tools-chromium
tools-chromium: ## chromium from Debian (apt, pinned) for the console's browser tests, if missing
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	echo "install chromium $(CHROMIUM_APT_VERSION) (apt)"; \
	$$sudo apt-get update -qq; \
	apt="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"; \
	$$apt chromium=$(CHROMIUM_APT_VERSION) >/dev/null || { \
	  echo "chromium $(CHROMIUM_APT_VERSION) is no longer served by Debian: installing its current one" >&2; \
	  $$apt chromium >/dev/null; }; \
	/usr/bin/chromium --version

# --- stubs: generated/{go,ts,java} ---------------------------------------------------
# Not committed (each dir's .gitignore): regenerated by every `make stubs` in ~1 s. Only what is
# generated here is removed: generated/go keeps its committed go.mod/go.sum. Go and TS use
# grpc_tools' bundled protoc (as generated/python does); Java needs protoc's built-in java
# generator, which grpc_tools lacks, so it uses .tools/bin/protoc with grpc_tools' copy of the
# well-known types. Plugins come from .tools/bin and interop/ts/node_modules/.bin only.
.PHONY: stubs stubs-go stubs-ts stubs-java
stubs: stubs-go stubs-ts stubs-java ## Generate Go, TypeScript and Java client stubs from protos/

# Expanded inside each recipe after `cd $(STUBS_PROTO_ROOT)`.
TOOLS_PROTO_LIST = $$(find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)

stubs-go: $(TOOLS_VENV_STAMP) $(STAMP_GEN_GO)
	@find $(GEN_GO) -mindepth 1 -maxdepth 1 ! -name go.mod ! -name go.sum ! -name .gitignore \
	  -exec rm -rf {} +
	cd $(STUBS_PROTO_ROOT) && $(TOOLS_GRPC_PROTOC) -I . \
	  --plugin=protoc-gen-go=$(TOOLS_BIN)/protoc-gen-go \
	  --plugin=protoc-gen-go-grpc=$(TOOLS_BIN)/protoc-gen-go-grpc \
	  --go_out=$(abspath $(GEN_GO)) --go_opt=module=$(STUBS_GO_MODULE) \
	  --go-grpc_out=$(abspath $(GEN_GO)) --go-grpc_opt=module=$(STUBS_GO_MODULE) \
	  $(TOOLS_PROTO_LIST)

stubs-ts: $(TOOLS_VENV_STAMP) $(STAMP_NPM)
	@find $(GEN_TS) -mindepth 1 -maxdepth 1 ! -name .gitignore -exec rm -rf {} +
	cd $(STUBS_PROTO_ROOT) && $(TOOLS_GRPC_PROTOC) -I . \
	  --plugin=protoc-gen-ts_proto=$(abspath $(TS_NODE_BIN))/protoc-gen-ts_proto \
	  --ts_proto_out=$(abspath $(GEN_TS)) \
	  --ts_proto_opt=outputServices=grpc-js,env=node,esModuleInterop=true,useOptionals=messages \
	  $(TOOLS_PROTO_LIST)
	@# The stubs import @grpc/grpc-js and @bufbuild/protobuf: resolve them from interop/ts.
	ln -sfn ../../$(INTEROP_TS)/node_modules $(GEN_TS)/node_modules

stubs-java: $(TOOLS_VENV_STAMP) $(STAMP_GEN_JAVA)
	@find $(GEN_JAVA) -mindepth 1 -maxdepth 1 ! -name .gitignore -exec rm -rf {} +
	wkt=$$($(VENV)/bin/python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))'); \
	cd $(STUBS_PROTO_ROOT) && $(TOOLS_BIN)/protoc -I . -I "$$wkt" \
	  --plugin=protoc-gen-grpc-java=$(TOOLS_BIN)/protoc-gen-grpc-java \
	  --java_out=$(abspath $(GEN_JAVA)) --grpc-java_out=$(abspath $(GEN_JAVA)) \
	  $(TOOLS_PROTO_LIST)

# --- interop clients: build each against the stubs -----------------------------------
.PHONY: interop interop-go interop-ts interop-java
interop: interop-go interop-ts interop-java ## Build the Go, TS and Java interop clients (after stubs)

interop-go: stubs-go ## go build interop/go -> interop/go/bin/interop-go
	cd $(GEN_GO) && $(TOOLS_GOENV) go build ./...
	cd $(INTEROP_GO) && $(TOOLS_GOENV) go build -o bin/interop-go .

interop-ts: stubs-ts ## Type-check interop/ts (tsc --noEmit) against generated/ts
	cd $(INTEROP_TS) && node_modules/.bin/tsc --noEmit -p .

# The first build (and any after pom.xml changes) resolves plugins and libraries from Maven
# Central into .tools/m2; every later build runs offline (-o).
interop-java: stubs-java | $(TOOLS_STAMPS) ## mvn package interop/java (classpath in target/classpath.txt)
	cd $(INTEROP_JAVA) && if [ $(STAMP_M2_JAVA) -nt pom.xml ]; then $(TOOLS_MVN) -o package; \
	  else $(TOOLS_MVN) package && touch $(STAMP_M2_JAVA); fi

.PHONY: tools-clean
tools-clean: ## Remove .tools/, interop/ts/node_modules and interop/java/target
	rm -rf $(TOOLS_DIR) $(INTEROP_TS)/node_modules $(INTEROP_JAVA)/target $(INTEROP_GO)/bin
