# churn: every routine task has a target here. `make help` lists them.
GO        ?= go
TOOL      := $(GO) tool -modfile=internal/tools/go.mod
TEST_CMD  := $(GO) test -race -count=1 ./...
# The version both binaries report (--version, go_build_info): the nearest tag, commits since and
# the commit, "-dirty" with local changes; the commit alone without tags.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/churnhq/churn/internal/buildinfo.version=$(VERSION)
SOAK_DURATION ?= 2m
SOAK_FLAGS    ?=

.PHONY: help run build install test test-short bench fuzz soak generate generate-check lint golearn-check docker model quality stack stack-check deploy-check speed-table

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

run: ## run churnd with the embedded default model
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/churnd

build: ## build churnd and churnctl into bin/ (churnd without cgo)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/churnd ./cmd/churnd
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/churnctl ./cmd/churnctl

install: ## go install churnctl and churnd into $(go env GOPATH)/bin, with the version stamped
	$(GO) install -ldflags '$(LDFLAGS)' ./cmd/churnctl
	CGO_ENABLED=0 $(GO) install -ldflags '$(LDFLAGS)' ./cmd/churnd

test: ## the whole test suite (the README's test command)
	$(TEST_CMD)

test-short: ## unit tests only, no race detector
	$(GO) test -short ./...

bench: ## benchmarks, 6 runs each, for benchstat
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./internal/... | tee bench.txt

fuzz: ## run every fuzz target for a short while
	$(GO) test -run '^$$' -fuzz '^FuzzMap$$' -fuzztime 20s ./internal/features/
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime 20s ./internal/modelstore/
	$(GO) test -run '^$$' -fuzz '^FuzzSpec$$' -fuzztime 20s ./internal/train/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRules$$' -fuzztime 20s ./internal/retention/
	$(GO) test -run '^$$' -fuzz '^FuzzParseTokens$$' -fuzztime 20s ./internal/server/
	$(GO) test -run '^$$' -fuzz '^FuzzFit$$' -fuzztime 20s ./internal/golearntree/
	$(GO) test -run '^$$' -fuzz '^FuzzRecord$$' -fuzztime 20s ./internal/outcomes/
	for f in FuzzXGBoost FuzzLightGBM FuzzSklearn FuzzSchema FuzzRows; do \
	  $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime 20s ./internal/importer/ || exit 1; done

soak: ## churnd under load for SOAK_DURATION (2m) while models swap, Redis restarts and streams are abandoned; fails on errors or growth (docs/PERFORMANCE.md)
	$(GO) run ./internal/soak -duration $(SOAK_DURATION) $(SOAK_FLAGS)

generate: ## regenerate api/ (Go, HTTP gateway, OpenAPI in api/openapi) from proto/ with the pinned tools
	$(TOOL) buf generate

generate-check: generate ## fail when the committed generated code is stale
	@git diff --exit-code -- api || { echo "api/ is stale: run 'make generate' and commit the result" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- api)" || { echo "api/ has untracked generated files: run 'make generate' and commit them" >&2; git status --porcelain -- api >&2; exit 1; }

lint: ## go vet, staticcheck, gofmt and buf lint
	$(GO) vet ./...
	$(TOOL) staticcheck ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^api/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^api/'); echo "gofmt: files above need formatting" >&2; exit 1; }
	$(TOOL) buf lint

golearn-check: ## churnd must build without cgo and must not depend on golearn
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/churnd
	@! $(GO) list -deps ./cmd/churnd | grep -q sjwhitworth/golearn || { echo "churnd depends on golearn" >&2; exit 1; }

docker: ## build the container image
	docker build --build-arg VERSION=$(VERSION) -t churnd .

model: ## retrain the embedded default model (needs ../shared/data); see models/README.md
	$(GO) run ./cmd/churnctl train \
	  --data ../shared/data/iranian_churn.csv --spec models/specs/iranian_churn.json \
	  --test-idx ../shared/bench/splits/iranian_churn_test_idx.csv --trainer gbdt-leafwise \
	  --name churn-default --version iranian-gbdt-2026.11.23 --created 2026-11-23T00:00:00Z \
	  --out models/default.json --golden-out testdata/golden/default_model.json

quality: ## the quality bar on all four datasets in ../shared/data, the hostile datasets at full size and logistic parity with scikit-learn (docs/MODELS.md); the normal suite checks two datasets and small hostile ones
	CHURN_QUALITY=all CHURN_CORPUS=full $(GO) test -count=1 -timeout 30m -run '^(TestQualityBar|TestHostileCorpus|TestLogisticParity)$$' -v ./internal/train/

stack: ## the local stack: Redis, two churnd replicas and Prometheus with the rules, on loopback (Ctrl-C stops it)
	deploy/local/stack.sh

stack-check: ## start the local stack, check through Prometheus's API that both replicas are up and the rules loaded, stop it
	deploy/local/stack.sh --check

deploy-check: ## check the deployment kit: promtool checks and unit-tests the rules; the deploy/ module's tests check manifests, dashboard and rules against churnd
	@command -v promtool >/dev/null || { echo "promtool not found: install prometheus (apt-get install -y prometheus)" >&2; exit 1; }
	promtool check rules deploy/prometheus/rules.yml
	promtool test rules deploy/prometheus/rules_test.yml
	cd deploy && $(GO) vet ./... && $(GO) test -race -count=1 ./...

speed-table: ## training speed beside scikit-learn's HistGradientBoosting on ../shared/data (docs/MODELS.md); needs python3-sklearn
	/usr/bin/python3 internal/tools/speed-table.py
