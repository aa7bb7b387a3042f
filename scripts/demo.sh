#!/usr/bin/env bash
# The demo: set up .venv if needed (scripts/setup_env.sh), then animate an example sketch headless in
# Blender and save demo-output/<example>.blend and demo-output/<example>.gif.
#   scripts/demo.sh            the real ModelScope model on the GPU
#   scripts/demo.sh --quick    the tiny test model on the CPU, a few minutes
# Other options: scripts/demo.sh --help
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/demo.py" "$@"
