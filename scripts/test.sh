#!/usr/bin/env bash
# The tests: set up .venv if needed (scripts/setup_env.sh), then run pytest on tests/.
# Extra arguments go to pytest, e.g. scripts/test.sh -k packaging
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
