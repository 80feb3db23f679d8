# shellcheck shell=bash
# Shared environment for scripts/run, scripts/test and .ci/run. Source it, do not execute it.
#
# - One persistent cargo target directory outside the clone, shared by the shell, the run
#   command and CI, so CI reuses what a developer already built.
# - DuckDB is DuckDB's own prebuilt libduckdb.so (1.5.6), fetched once from the npm registry
#   (package @duckdb/node-bindings-linux-x64) into the cache; see docs/ARCHITECTURE.md.
# (no `set -e` here: this file is also sourced into interactive shells)
DATAKUBE_CACHE="${DATAKUBE_CACHE:-$HOME/.cache/datakube}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$DATAKUBE_CACHE/target}"
DUCKDB_NPM_PACKAGE="@duckdb/node-bindings-linux-x64@1.5.6-r.1"
DUCKDB_SHA256="${DUCKDB_SHA256:-}"
export DUCKDB_LIB_DIR="${DUCKDB_LIB_DIR:-$DATAKUBE_CACHE/duckdb-1.5.6}"

datakube_fetch_duckdb() {
    if [ -f "$DUCKDB_LIB_DIR/libduckdb.so" ]; then return 0; fi
    command -v npm >/dev/null || { echo "datakube: npm is needed once to fetch libduckdb.so ($DUCKDB_NPM_PACKAGE)" >&2; return 1; }
    echo "datakube: fetching DuckDB library ($DUCKDB_NPM_PACKAGE) into $DUCKDB_LIB_DIR" >&2
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$DUCKDB_NPM_PACKAGE" >/dev/null && tar xzf ./*.tgz)
    mkdir -p "$DUCKDB_LIB_DIR"
    cp "$tmp/package/libduckdb.so" "$tmp/package/LICENSE" "$DUCKDB_LIB_DIR/"
    rm -rf "$tmp"
}
datakube_fetch_duckdb
export LD_LIBRARY_PATH="$DUCKDB_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
