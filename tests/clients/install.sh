#!/usr/bin/env bash
# Installs what the real-client tests need, from the package registries only:
#   - Debian: mono-complete (ADOMD.NET runs on Mono), only if it is missing
#   - PyPI:   a venv at tests/clients/.venv with the pinned clients (requirements.txt,
#             every transitive package pinned by constraints.txt)
# Idempotent: a second run checks and does nothing. Needs root or sudo for apt-get.
# Environment: PYTHON (default python3) picks the interpreter for the venv.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

say() { echo "clients/install: $*"; }
die() { echo "clients/install: ERROR: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "'$*' needs root, and sudo is not installed"
    fi
}

deb_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found: these tests need Debian's packages ($*)"
    if [ "$apt_updated" -eq 0 ]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || die "apt-get update failed"
        apt_updated=1
    fi
    say "apt-get install -y $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
        || die "apt-get install $* failed"
}

# --- Mono ----------------------------------------------------------------------------------------
# The whole mono-complete closure: smaller sets fail on the netstandard facade, then on
# Microsoft.CSharp (see /work/shared/reference/clients.md).
if deb_installed mono-complete; then
    say "mono-complete already installed ($(mono --version | head -n1))"
else
    apt_install mono-complete
    deb_installed mono-complete || die "mono-complete is still not installed after apt-get"
    say "installed $(mono --version | head -n1)"
fi

# --- Python venv ---------------------------------------------------------------------------------
command -v "$python" >/dev/null || die "$python not found (set PYTHON=/path/to/python3)"
if [ ! -x "$venv/bin/python" ]; then
    say "creating venv $venv with $("$python" --version 2>&1)"
    if ! "$python" -m venv "$venv"; then
        rm -rf "$venv"
        # Debian's own python3 needs python3-venv for `-m venv`
        if [ "$(command -v "$python")" = /usr/bin/python3 ]; then
            apt_install python3-venv
            "$python" -m venv "$venv" || die "python3 -m venv failed even with python3-venv"
        else
            die "$python -m venv failed"
        fi
    fi
fi

stamp="$venv/.installed-requirements"
want="$(cat "$here/requirements.txt" "$here/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "venv packages already installed (requirements.txt and constraints.txt unchanged)"
else
    say "pip install -r requirements.txt -c constraints.txt into $venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q \
        -r "$here/requirements.txt" -c "$here/constraints.txt" \
        || die "pip install failed (see the messages above)"
    echo "$want" >"$stamp"
fi

# --- Smoke check: the clients load -------------------------------------------------------------
say "checking that ADOMD.NET loads on Mono and the XMLA client imports"
(
    cd "$here"
    "$venv/bin/python" -W ignore -c '
import adomd, olap.xmla.xmla, duckdb, yaml
print("clients/install: ok: ADOMD.NET", adomd.AdomdConnection().GetType().Assembly.GetName().Version,
      "from", adomd.DLL_DIR, "| netas-xmla-with-dax | duckdb", duckdb.__version__)
'
) || die "the clients do not load: see the traceback above"
