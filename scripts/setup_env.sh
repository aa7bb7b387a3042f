#!/usr/bin/env bash
# Create the project's virtual environment (.venv in the checkout) and install requirements/dev.txt
# into it; a second run installs again only when requirements/dev.txt has changed.
# Needs Python 3.11 (the bpy module exists only for 3.11): found as $PYTHON, python3.11 or python3.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/requirements/dev.txt"

is_python_311() {
    command -v "$1" >/dev/null 2>&1 && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null
}

if [ ! -x "$VENV/bin/python" ]; then
    PYTHON_311=""
    for candidate in "${PYTHON:-}" python3.11 python3; do
        if [ -n "$candidate" ] && is_python_311 "$candidate"; then
            PYTHON_311="$candidate"
            break
        fi
    done
    if [ -z "$PYTHON_311" ]; then
        echo "error: Python 3.11 is needed (bpy 5.0.1 is built for 3.11 only): install it, or set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    echo "Creating $VENV with $("$PYTHON_311" --version)"
    "$PYTHON_311" -m venv "$VENV"
fi

STAMP="$VENV/.requirements-dev.sha256"
WANTED="$("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$REQUIREMENTS")"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANTED" ]; then
    echo "Installing requirements/dev.txt into .venv (a few minutes the first time)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$WANTED" >"$STAMP"
fi
