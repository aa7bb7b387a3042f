#!/usr/bin/env bash
# Create .venv-blender53 in the checkout (bpy 5.3 on Python 3.13, for the add-on's tests on the newest
# Blender) and install requirements/blender53.txt into it; a second run installs again only when that
# file has changed. Python 3.13 is found as $PYTHON313, python3.13 or in pyenv's versions.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-blender53"
REQUIREMENTS="$ROOT/requirements/blender53.txt"

is_python_313() {
    command -v "$1" >/dev/null 2>&1 && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null
}

if [ ! -x "$VENV/bin/python" ]; then
    PYTHON_313=""
    PYENV_313=("$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.13*/bin/python3.13)
    for candidate in "${PYTHON313:-}" python3.13 "${PYENV_313[@]}"; do
        if [ -n "$candidate" ] && is_python_313 "$candidate"; then
            PYTHON_313="$candidate"
            break
        fi
    done
    if [ -z "$PYTHON_313" ]; then
        echo "error: Python 3.13 is needed for the tests on Blender 5.3 (bpy 5.3 is built for 3.13 only): install it, or set PYTHON313=/path/to/python3.13" >&2
        exit 1
    fi
    echo "Creating $VENV with $("$PYTHON_313" --version)"
    "$PYTHON_313" -m venv "$VENV"
fi

STAMP="$VENV/.requirements-blender53.sha256"
WANTED="$("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$REQUIREMENTS")"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANTED" ]; then
    echo "Installing requirements/blender53.txt into .venv-blender53 (a minute the first time)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$WANTED" >"$STAMP"
fi
