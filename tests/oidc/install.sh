#!/usr/bin/env bash
# Installs the test OpenID provider (npm `oidc-provider`, pinned by package-lock.json) into
# tests/oidc/node_modules from the npm registry. Idempotent: does nothing when the lock file
# is unchanged since the last install. scripts/test runs it before `cargo test`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
command -v npm >/dev/null || { echo "oidc/install: ERROR: npm is needed (apt-get install nodejs npm)" >&2; exit 1; }
stamp="$here/node_modules/.installed-lock"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$here/node_modules/oidc-provider" ]; then
    echo "oidc/install: oidc-provider already installed (package-lock.json unchanged)"
    exit 0
fi
echo "oidc/install: npm ci in $here"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
echo "$want" >"$stamp"
node -e "import('$here/node_modules/oidc-provider/lib/index.js').then(() => console.log('oidc/install: ok: oidc-provider loads'))"
