#!/usr/bin/env bash
# Create one of the project's virtual environments in the checkout and install its requirements into it;
# a second run installs again only when the requirements file has changed.
#   scripts/setup_env.sh            .venv: Python 3.11, requirements/dev.txt (bpy 5.0.1, torch, the engine);
#                                   Python 3.11 is found as $PYTHON, python3.11 or python3
#   scripts/setup_env.sh blender53  .venv-blender53: Python 3.13, requirements/blender53.txt (bpy 5.3, no
#                                   torch, for the add-on's tests on the newest Blender); Python 3.13 is
#                                   found as $PYTHON313, python3.13 or in pyenv's versions
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-dev}" in
    dev)
        NAME=dev VENV="$ROOT/.venv" VERSION=3.11 HINT=PYTHON
        WHY="bpy 5.0.1 is built for 3.11 only" WAIT="a few minutes"
        CANDIDATES=("${PYTHON:-}" python3.11 python3)
        ;;
    blender53)
        NAME=blender53 VENV="$ROOT/.venv-blender53" VERSION=3.13 HINT=PYTHON313
        WHY="the tests on Blender 5.3 need it: bpy 5.3 is built for 3.13 only" WAIT="a minute"
        CANDIDATES=("${PYTHON313:-}" python3.13 "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.13*/bin/python3.13)
        ;;
    *)
        echo "usage: scripts/setup_env.sh [dev|blender53]" >&2
        exit 2
        ;;
esac
REQUIREMENTS="$ROOT/requirements/$NAME.txt"

is_wanted_python() {
    command -v "$1" >/dev/null 2>&1 && "$1" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$VERSION'.split('.'))))" 2>/dev/null
}

if [ ! -x "$VENV/bin/python" ]; then
    FOUND=""
    for candidate in "${CANDIDATES[@]}"; do
        if [ -n "$candidate" ] && is_wanted_python "$candidate"; then
            FOUND="$candidate"
            break
        fi
    done
    if [ -z "$FOUND" ]; then
        echo "error: Python $VERSION is needed ($WHY): install it, or set $HINT=/path/to/python$VERSION" >&2
        exit 1
    fi
    echo "Creating $VENV with $("$FOUND" --version)"
    "$FOUND" -m venv "$VENV"
fi

STAMP="$VENV/.requirements-$NAME.sha256"
WANTED="$("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$REQUIREMENTS")"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANTED" ]; then
    echo "Installing requirements/$NAME.txt into $(basename "$VENV") ($WAIT the first time)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$WANTED" >"$STAMP"
fi
