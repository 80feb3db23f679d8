#!/usr/bin/env bash
# Installs what the SAML end-to-end test (auth/tests/saml_e2e.rs) needs, from the registries only:
#   - Debian: xmlsec1 (pysaml2 signs with it) and the build libraries, via scripts/system-deps
#   - PyPI:   a venv at tests/saml/.venv with pysaml2 (requirements.txt, every transitive
#             package pinned by constraints.txt)
# Idempotent: a second run checks and does nothing. Needs root or sudo for apt-get.
# Environment: PYTHON (default python3) picks the interpreter for the venv.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

say() { echo "saml/install: $*"; }
die() { echo "saml/install: ERROR: $*" >&2; exit 1; }

"$here/../../scripts/system-deps" || die "scripts/system-deps failed"
command -v xmlsec1 >/dev/null || die "xmlsec1 is still missing after scripts/system-deps"

command -v "$python" >/dev/null || die "$python not found (set PYTHON=/path/to/python3)"
if [ ! -x "$venv/bin/python" ]; then
    say "creating venv $venv with $("$python" --version 2>&1)"
    if ! "$python" -m venv "$venv"; then
        rm -rf "$venv"
        if [ "$(command -v "$python")" = /usr/bin/python3 ]; then
            # Debian's own python3 needs python3-venv for `-m venv`
            if [ "$(id -u)" -eq 0 ]; then
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
            else
                sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
            fi
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

"$venv/bin/python" -c 'import saml2, saml2.server; print("saml/install: ok: pysaml2", saml2.__version__ if hasattr(saml2, "__version__") else "")' \
    || die "pysaml2 does not import: see the traceback above"
