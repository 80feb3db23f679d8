# datakube image (see docs/deploy.md).
#   Build: docker build -t datakube .
#   Run:   docker run -p 8443:8443 -v datakube-data:/data -v ./config:/config:ro datakube
# Not built in the project's CI (the CI machine has no Docker engine); the steps are the ones
# scripts/test runs: scripts/system-deps for the Debian libraries, scripts/env.sh for DuckDB's
# own libduckdb.so from the npm package @duckdb/node-bindings-linux-x64.
# Until an identity provider is configured the server only offers its public development users,
# which it refuses on a network address; for a demo add -e DATAKUBE_DEV_IDENTITY_ON_NETWORK=1.

# ---- build: the release binary and libduckdb.so ----------------------------------------------
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV DATAKUBE_CACHE=/cache
RUN scripts/system-deps && rm -rf /var/lib/apt/lists/*
RUN bash -c 'source scripts/env.sh && cargo build --release --locked -p datakube && \
    mkdir -p /out/lib && cp "$CARGO_TARGET_DIR/release/datakube" /out/ && \
    cp "$DUCKDB_LIB_DIR/libduckdb.so" "$DUCKDB_LIB_DIR/LICENSE" /out/lib/'

# ---- runtime: Debian slim, the shared libraries, a non-root user -----------------------------
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 datakube \
    && useradd --system --uid 10001 --gid datakube --home-dir /data --no-create-home datakube \
    && mkdir -p /data /config \
    && chown datakube:datakube /data
COPY scripts/system-deps /usr/local/lib/datakube/system-deps
RUN /usr/local/lib/datakube/system-deps --runtime && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/datakube /usr/local/bin/datakube
COPY --from=build /out/lib/libduckdb.so /usr/local/lib/libduckdb.so
COPY --from=build /out/lib/LICENSE /usr/local/share/doc/duckdb/LICENSE
# The shipped cube definitions; mount your own at /config/cube-definitions.
COPY cube-definitions /config/cube-definitions
RUN ldconfig
USER datakube:datakube
WORKDIR /data
# Every option can also come from /config/datakube.toml (mounted) or DATAKUBE_* variables.
ENV DATAKUBE_DATA_DIR=/data \
    DATAKUBE_CUBE_DEFINITIONS=/config/cube-definitions \
    DATAKUBE_LISTEN=0.0.0.0:8443 \
    DATAKUBE_LOG_FORMAT=json
EXPOSE 8443
# /data: datasets (Parquet snapshots), TLS certificate, tokens and the audit log (state/).
# /config: cube definitions, datakube.toml, certificates, IdP metadata (read-only is fine).
VOLUME ["/data", "/config"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD curl -fsk https://127.0.0.1:8443/health || exit 1
ENTRYPOINT ["datakube"]
CMD ["serve"]
