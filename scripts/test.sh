#!/usr/bin/env bash
# The tests, on the oldest and the newest Blender the add-on supports:
# 1. everything, in .venv (Python 3.11: bpy 5.0.1, torch and the engine; scripts/setup_env.sh);
# 2. the add-on's tests (tests/addon) again, in .venv-blender53 (Python 3.13: bpy 5.3, no torch;
#    scripts/setup_env.sh blender53); the jobs they start run on the engine in .venv.
# Extra arguments go to pytest in both runs, e.g. scripts/test.sh -k packaging; test paths given as
# arguments run on bpy 5.3 too where they are in tests/addon.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
"$ROOT/scripts/setup_env.sh" blender53
cd "$ROOT"

newest_args=()
paths=0
addon_paths=0
for arg in "$@"; do
    case "$arg" in
        tests/addon* | ./tests/addon*) paths=$((paths + 1)) addon_paths=$((addon_paths + 1)) newest_args+=("$arg") ;;
        tests* | ./tests*) paths=$((paths + 1)) ;;
        *) newest_args+=("$arg") ;;
    esac
done
[ "$paths" -eq 0 ] && newest_args=(tests/addon "${newest_args[@]}")

# Two test processes (pytest-xdist): tests wait on engines and Blenders they start; -n 0 turns it off.
WORKERS=(-n 2)
status=0
"$ROOT/.venv/bin/python" -m pytest "${WORKERS[@]}" "$@" || status=$?
if [ "$paths" -eq 0 ] || [ "$addon_paths" -gt 0 ]; then
    echo "== the add-on on Blender 5.3 (bpy 5.3.0, Python 3.13)"
    code=0
    MULTISKETCH_ENGINE_PYTHON="$ROOT/.venv/bin/python" "$ROOT/.venv-blender53/bin/python" -m pytest "${WORKERS[@]}" "${newest_args[@]}" || code=$?
    if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then  # 5: no add-on test matched the arguments
        status=$code
    fi
fi
exit "$status"
