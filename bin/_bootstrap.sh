# Shared by bin/dev and bin/test: create .venv with Python 3.11+ and install
# the requirements file given as $1 whenever it (or base.txt) changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

pick_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Lia needs Python 3.11 or newer on PATH (or set PYTHON=/path/to/python)." >&2
  return 1
}

VENV="${LIA_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$(pick_python)" -m venv "$VENV"
fi
REQ="$1"
STAMP="$VENV/.requirements-$(basename "$REQ" .txt)"
WANT="$(cat requirements/*.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ"
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
