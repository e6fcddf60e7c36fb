# churnd: a static binary on distroless, running as non-root.
# Build: make docker (stamps the version), or docker build --build-arg VERSION=v1.2.3 -t churnd .
# Run:   docker run -p 50051:50051 -p 50052:50052 churnd   (gRPC; HTTP/JSON API, health, metrics)
# Bases are pinned by version tag; pin them by digest (image@sha256:...) in your registry mirror,
# which these build machines cannot reach to resolve.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api ./api
COPY cmd ./cmd
COPY internal ./internal
COPY models ./models
# The build context has no .git, so the version comes in as an argument (go_build_info, --version).
ARG VERSION=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/churnhq/churn/internal/buildinfo.version=${VERSION}" -o /out/churnd ./cmd/churnd
# The disk model store (uploaded versions and the active one); distroless has no mkdir.
RUN mkdir -p /out/store

FROM ghcr.io/grpc-ecosystem/grpc-health-probe:v0.4.49 AS probe

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=probe /ko-app/grpc-health-probe /bin/grpc_health_probe
COPY --from=build /out/churnd /bin/churnd
COPY --from=build --chown=65532:65532 /out/store /var/lib/churn/models
# Uploaded models survive a restart when this is a volume; with --model-store redis it stays empty.
ENV CHURN_STORE_DIR=/var/lib/churn/models
VOLUME /var/lib/churn/models
USER nonroot:nonroot
EXPOSE 50051 50052
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/bin/grpc_health_probe", "-addr=127.0.0.1:50051"]
ENTRYPOINT ["/bin/churnd"]
