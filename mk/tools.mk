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
#   make stubs            generated/{go,ts,java} from protos/: a Go module, an npm package and a
#                         Maven artifact installed into .tools/m2 (not committed; regenerated)
#   make interop          build the Go, TypeScript and Java interop clients on those packages
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
# The stubs packages' versions live in tools/stubs/{go/go.mod,ts/package-lock.json,java/pom.xml};
# the clients' in interop/go/go.mod, interop/ts/package-lock.json, interop/java/pom.xml.

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
# Maven 3.8's jansi (2.4) writes ESC[0m to stdout and stderr when it uninstalls, even with -B
# and -Dstyle.color=never (checked with `| cat -A`); jansi.noreset=true is what stops it.
TOOLS_MVN := MAVEN_OPTS='$(strip $(MAVEN_OPTS) -Djansi.noreset=true)' \
  mvn -B -q -Dstyle.color=never -Dmaven.repo.local=$(TOOLS_M2)

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
# generated/ts's own node_modules (ts-proto, typescript, the runtime): survives `make stubs`.
STAMP_NPM       := $(GEN_TS)/node_modules/.switchboard-npm-ci
STAMP_M2_JAVA   := $(TOOLS_STAMPS)/m2-interop-java
STAMP_M2_STUBS  := $(TOOLS_STAMPS)/m2-stubs-java

.PHONY: tools-grpcurl tools-ghz tools-protoc-gen-go tools-protoc-gen-grpc-java tools-ts tools
tools-grpcurl: $(STAMP_GRPCURL) ## grpcurl into .tools/bin (pinned)
tools-ghz: $(STAMP_GHZ) ## ghz load generator into .tools/bin (pinned)
tools-protoc-gen-go: $(STAMP_GEN_GO) ## protoc-gen-go and protoc-gen-go-grpc into .tools/bin
tools-protoc-gen-grpc-java: $(STAMP_GEN_JAVA) ## protoc + protoc-gen-grpc-java from Maven Central into .tools/bin
tools-ts: $(STAMP_NPM) ## ts-proto, typescript, grpc-js (npm ci in generated/ts)
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

# --- etcd (Debian package; the one tool not under .tools) ----------------------------
# The registry's etcd store and its tests (3-member clusters on loopback) need etcd >= 3.4
# (v3 gRPC API: Txn, LeaseKeepAlive, Watch with prev_kv, Compact); `make test` depends on this.
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

# --- stubs: generated/{go,ts,java} as packages ------------------------------------------
# Each language's stubs become a package another project depends on as it would on a
# published one (as Buf's generated SDKs are): generated/go is a Go module (go.mod with the
# protos' go_package path), generated/ts an npm package (@switchboard/contracts: .js + .d.ts
# built by tsc), generated/java a Maven project that `mvn install` puts into .tools/m2
# (dev.switchboard:switchboard-contracts). Nothing under generated/{go,ts,java} is committed:
# the packaging files are copied from tools/stubs/<lang>/ and everything else is generated.
# Go and TS use grpc_tools' bundled protoc (as generated/python does); Java needs protoc's
# built-in java generator, which grpc_tools lacks, so it uses .tools/bin/protoc with
# grpc_tools' copy of the well-known types.
.PHONY: stubs stubs-go stubs-ts stubs-java
stubs: stubs-go stubs-ts stubs-java ## Generate the Go module, npm package and Maven artifact from protos/

STUBS_TEMPLATES := tools/stubs

# Expanded inside each recipe after `cd $(STUBS_PROTO_ROOT)`.
TOOLS_PROTO_LIST = $$(find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)

# $(call stubs_clean,DIR,KEEP...): empty DIR except the names in KEEP (its .gitignore at least).
stubs_clean = find $(1) -mindepth 1 -maxdepth 1 $(foreach k,$(2),! -name $(k)) -exec rm -rf {} +

stubs-go: $(TOOLS_VENV_STAMP) $(STAMP_GEN_GO)
	@$(call stubs_clean,$(GEN_GO),.gitignore)
	cp $(STUBS_TEMPLATES)/go/go.mod $(STUBS_TEMPLATES)/go/go.sum $(GEN_GO)/
	cd $(STUBS_PROTO_ROOT) && $(TOOLS_GRPC_PROTOC) -I . \
	  --plugin=protoc-gen-go=$(TOOLS_BIN)/protoc-gen-go \
	  --plugin=protoc-gen-go-grpc=$(TOOLS_BIN)/protoc-gen-go-grpc \
	  --go_out=$(abspath $(GEN_GO)) --go_opt=module=$(STUBS_GO_MODULE) \
	  --go-grpc_out=$(abspath $(GEN_GO)) --go-grpc_opt=module=$(STUBS_GO_MODULE) \
	  $(TOOLS_PROTO_LIST)
	cd $(GEN_GO) && $(TOOLS_GOENV) go build ./... && $(TOOLS_GOENV) go mod verify >/dev/null

# generated/ts/node_modules: the package's own toolchain (ts-proto, typescript) and runtime
# (@grpc/grpc-js, @bufbuild/protobuf), `npm ci` from tools/stubs/ts's lock; kept across runs.
$(STAMP_NPM): $(STUBS_TEMPLATES)/ts/package.json $(STUBS_TEMPLATES)/ts/package-lock.json
	@mkdir -p $(GEN_TS)
	cp $(STUBS_TEMPLATES)/ts/package.json $(STUBS_TEMPLATES)/ts/package-lock.json $(GEN_TS)/
	cd $(GEN_TS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

stubs-ts: $(TOOLS_VENV_STAMP) $(STAMP_NPM)
	@$(call stubs_clean,$(GEN_TS),.gitignore node_modules)
	cp $(STUBS_TEMPLATES)/ts/package.json $(STUBS_TEMPLATES)/ts/package-lock.json \
	  $(STUBS_TEMPLATES)/ts/tsconfig.json $(GEN_TS)/
	@mkdir -p $(GEN_TS)/src
	cd $(STUBS_PROTO_ROOT) && $(TOOLS_GRPC_PROTOC) -I . \
	  --plugin=protoc-gen-ts_proto=$(abspath $(GEN_TS))/node_modules/.bin/protoc-gen-ts_proto \
	  --ts_proto_out=$(abspath $(GEN_TS))/src \
	  --ts_proto_opt=outputServices=grpc-js,env=node,esModuleInterop=true,useOptionals=messages \
	  $(TOOLS_PROTO_LIST)
	cd $(GEN_TS) && node_modules/.bin/tsc -p .

stubs-java: $(TOOLS_VENV_STAMP) $(STAMP_GEN_JAVA) | $(TOOLS_STAMPS)
	@$(call stubs_clean,$(GEN_JAVA),.gitignore)
	cp $(STUBS_TEMPLATES)/java/pom.xml $(GEN_JAVA)/
	@mkdir -p $(GEN_JAVA)/src/main/java
	wkt=$$($(VENV)/bin/python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))'); \
	cd $(STUBS_PROTO_ROOT) && $(TOOLS_BIN)/protoc -I . -I "$$wkt" \
	  --plugin=protoc-gen-grpc-java=$(TOOLS_BIN)/protoc-gen-grpc-java \
	  --java_out=$(abspath $(GEN_JAVA))/src/main/java \
	  --grpc-java_out=$(abspath $(GEN_JAVA))/src/main/java \
	  $(TOOLS_PROTO_LIST)
	cd $(GEN_JAVA) && $(TOOLS_MVN) $(call tools_mvn_offline,$(STAMP_M2_STUBS),$(abspath $(STUBS_TEMPLATES)/java/pom.xml)) install
	@touch $(STAMP_M2_STUBS)

# $(call tools_mvn_offline,STAMP,POM): -o once STAMP is newer than POM (its plugins and
# libraries are in .tools/m2), so only the first build (and one after a pom change) is online.
tools_mvn_offline = $$([ $(1) -nt $(2) ] && echo -o)

# --- interop clients: each depends on the stubs package as an outside project would ----
# Go: interop/go/go.work puts generated/go in the workspace (Go's way to build against an
# unpublished module: no `replace`, no require of a version the proxy lacks). TS:
# `"@switchboard/contracts": "file:../../generated/ts"` with install-links (interop/ts/.npmrc),
# so npm copies the package into node_modules as it would a registry one (no symlink).
# Java: a plain <dependency> on the artifact stubs-java installed into .tools/m2.
.PHONY: interop interop-go interop-ts interop-java
interop: interop-go interop-ts interop-java ## Build the Go, TS and Java interop clients (after stubs)

interop-go: stubs-go ## go build interop/go -> interop/go/bin/interop-go
	cd $(INTEROP_GO) && $(TOOLS_GOENV) go build -o bin/interop-go .

# npm ci only when the lock changed or the installed copy of the package differs from the
# one just built (a regeneration with no proto change keeps node_modules).
INTEROP_TS_CONTRACTS := $(INTEROP_TS)/node_modules/@switchboard/contracts
interop-ts: stubs-ts ## npm ci + type-check interop/ts against the @switchboard/contracts package
	@if [ $(INTEROP_TS)/node_modules/.package-lock.json -nt $(INTEROP_TS)/package-lock.json ] \
	  && diff -rq $(GEN_TS)/dist $(INTEROP_TS_CONTRACTS)/dist >/dev/null 2>&1 \
	  && cmp -s $(GEN_TS)/package.json $(INTEROP_TS_CONTRACTS)/package.json; then \
	  echo "interop/ts/node_modules: @switchboard/contracts is up to date"; \
	else echo "cd $(INTEROP_TS) && npm ci"; \
	  cd $(INTEROP_TS) && npm ci --no-audit --no-fund --loglevel=error --prefer-offline; fi
	cd $(INTEROP_TS) && node_modules/.bin/tsc --noEmit -p .

interop-java: stubs-java | $(TOOLS_STAMPS) ## mvn package interop/java (classpath in target/classpath.txt)
	cd $(INTEROP_JAVA) && $(TOOLS_MVN) $(call tools_mvn_offline,$(STAMP_M2_JAVA),pom.xml) package
	@touch $(STAMP_M2_JAVA)

.PHONY: tools-clean
tools-clean: ## Remove .tools/, the node_modules of interop/ts and generated/ts, interop/java/target
	rm -rf $(TOOLS_DIR) $(INTEROP_TS)/node_modules $(GEN_TS)/node_modules $(INTEROP_JAVA)/target $(INTEROP_GO)/bin
