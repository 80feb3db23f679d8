#!/usr/bin/env bash
# Installs what the portal's browser test needs: Debian's Chromium (/usr/bin/chromium, via
# apt-get after apt-get update, only when missing), npm playwright-core (no browser download:
# it drives Debian's Chromium) and @duckdb/node-api (hand-written SQL for expected numbers).
# Versions are exact pins in package.json, and those packages pin their own dependencies
# exactly; there is no package-lock.json because the registry lacks some of DuckDB's optional
# per-platform packages that a lock file would have to list (npm ci then refuses).
# Idempotent. scripts/test runs it before tests/portal/run.sh. Also needs tests/oidc/install.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x /usr/bin/chromium ]; then
    echo "portal/install: installing Debian chromium" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version
command -v npm >/dev/null || { echo "portal/install: ERROR: npm is needed (apt-get install nodejs npm)" >&2; exit 1; }
stamp="$here/node_modules/.installed-lock"
want="$(sha256sum "$here/package.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$here/node_modules/playwright-core" ] && [ -d "$here/node_modules/@duckdb/node-api" ]; then
    echo "portal/install: playwright-core already installed (package.json unchanged)"
    exit 0
fi
echo "portal/install: npm install in $here"
(cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-package-lock --no-audit --no-fund --loglevel=error)
echo "$want" >"$stamp"
