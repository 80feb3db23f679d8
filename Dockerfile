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
# The shipped cube definitions (the default); to use and hot-reload your own, mount them and set
# cube-definitions = "/config/cube-definitions" (or DATAKUBE_CUBE_DEFINITIONS).
COPY cube-definitions /usr/share/datakube/cube-definitions
RUN ldconfig
# The image's defaults are a configuration file, not environment variables, so that a mounted
# /config/datakube.toml (DATAKUBE_CONFIG=/config/datakube.toml) can change every one of them
# (environment variables would take precedence over any file). DATAKUBE_* variables and
# command-line options still override the file.
RUN mkdir -p /etc/datakube && printf '%s\n' \
      'data-dir = "/data"' \
      'cube-definitions = "/usr/share/datakube/cube-definitions"' \
      'listen = "0.0.0.0:8443"' \
      'log-format = "json"' > /etc/datakube/datakube.toml
ENV DATAKUBE_CONFIG=/etc/datakube/datakube.toml
USER datakube:datakube
WORKDIR /data
EXPOSE 8443
# /data: datasets (Parquet snapshots), TLS certificate, tokens and the audit log (state/).
# /config: cube definitions, datakube.toml, certificates, IdP metadata (read-only is fine).
VOLUME ["/data", "/config"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD curl -fsk https://127.0.0.1:8443/health || exit 1
ENTRYPOINT ["datakube"]
CMD ["serve"]
