#!/usr/bin/env bash
# Runs the portal's browser test (portal.test.mjs, node's test runner) against the release
# binary. scripts/test calls it after building the binaries and running tests/portal/install.sh
# and tests/oidc/install.sh. Screenshots and downloads go to tests/portal/artifacts/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${DATAKUBE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/datakube/target}/release/datakube}"
[ -x "$bin" ] || { echo "portal/run: no datakube binary at $bin (cargo build --release first)" >&2; exit 1; }
[ -d "$here/node_modules/playwright-core" ] || { echo "portal/run: run tests/portal/install.sh first" >&2; exit 1; }
[ -d "$here/../oidc/node_modules/oidc-provider" ] || { echo "portal/run: run tests/oidc/install.sh first" >&2; exit 1; }
cd "$here"
DATAKUBE_BIN="$bin" node --test --test-reporter=spec portal.test.mjs
