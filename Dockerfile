# datakube image. Build: docker build -t datakube .   Run: docker run -p 8443:8443 datakube
# (Not built in the project's CI: the CI machine has no Docker engine.)
# Until an identity provider is configured, the server only offers its public development users,
# which it refuses on a network address; for a demo add -e DATAKUBE_DEV_IDENTITY_ON_NETWORK=1.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV DATAKUBE_CACHE=/cache
RUN scripts/system-deps && rm -rf /var/lib/apt/lists/*
RUN bash -c 'source scripts/env.sh && cargo build --release --locked -p datakube && \
    mkdir -p /out/lib && cp "$CARGO_TARGET_DIR/release/datakube" /out/ && cp "$DUCKDB_LIB_DIR/libduckdb.so" /out/lib/'

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/datakube --create-home datakube
COPY scripts/system-deps /usr/local/lib/datakube/system-deps
RUN /usr/local/lib/datakube/system-deps --runtime && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/datakube /usr/local/bin/datakube
COPY --from=build /out/lib/libduckdb.so /usr/local/lib/libduckdb.so
COPY cube-definitions /etc/datakube/cube-definitions
RUN ldconfig
USER datakube
WORKDIR /var/lib/datakube
ENV DATAKUBE_DATA_DIR=/var/lib/datakube/data \
    DATAKUBE_CUBE_DEFINITIONS=/etc/datakube/cube-definitions \
    DATAKUBE_LISTEN=0.0.0.0:8443 \
    DATAKUBE_LOG_FORMAT=json
EXPOSE 8443
VOLUME /var/lib/datakube/data
HEALTHCHECK --interval=30s --timeout=5s CMD curl -fsk https://127.0.0.1:8443/health || exit 1
ENTRYPOINT ["datakube"]
CMD ["serve"]
