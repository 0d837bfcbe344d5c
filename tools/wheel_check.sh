#!/usr/bin/env bash
# wheel_check.sh — `make wheel`: build the release wheel the way users get it and
# prove that it works on its own.
#
#   1. build the wheel in an isolated build (fresh build requirements from PyPI),
#      in its own build directory build/wheel, so the editable install's
#      persistent build/<wheel tag>/ cache is not touched;
#   2. repair it with auditwheel into dist/repaired/ (checks the extensions use only
#      what the manylinux policy allows and retags the wheel; print the tag);
#   3. install the repaired wheel with its `test` extra into a fresh venv,
#      build/wheel-venv, and run tests/test_smoke.py from a temporary directory,
#      after checking that `import trusswork` resolves inside that venv, not src/.
#
# The same checks cibuildwheel runs (see [tool.cibuildwheel] in pyproject.toml),
# for this machine's Python and without containers. Uses only build/wheel,
# build/wheel-venv and dist/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY="$ROOT/.venv/bin/python"
AUDITWHEEL="$ROOT/.venv/bin/auditwheel"
BUILD_DIR="build/wheel"
WHEEL_VENV="$ROOT/build/wheel-venv"
DIST="$ROOT/dist"
REPAIRED="$DIST/repaired"

step() { printf '\n== %s\n' "$*"; }

for tool in "$PY" "$AUDITWHEEL"; do
  [[ -x "$tool" ]] || { echo "wheel_check: $tool is missing; run it through 'make wheel'" >&2; exit 2; }
done

step "building the wheel (isolated build in $BUILD_DIR)"
# A fresh build directory: an isolated build's tools live in a temporary environment
# that is gone by the next run, so a cached CMake configuration would point at them.
rm -rf "$BUILD_DIR" "$REPAIRED"
rm -f "$DIST"/trusswork-*.whl
"$PY" -m pip wheel --no-deps -w "$DIST/" . -Cbuild-dir="$BUILD_DIR"
shopt -s nullglob
built=("$DIST"/trusswork-*.whl)
[[ ${#built[@]} -eq 1 ]] || { echo "wheel_check: expected one wheel in dist/, found ${#built[@]}" >&2; exit 1; }
wheel="${built[0]}"
echo "built: ${wheel#"$ROOT"/}"

step "auditwheel show"
"$AUDITWHEEL" show "$wheel"

step "auditwheel repair -> ${REPAIRED#"$ROOT"/}"
# patchelf is needed only to graft outside libraries into the wheel; trusswork links its
# kernels statically and needs none, so without patchelf the no-op patcher suffices
# (auditwheel still fails if a library would have to be grafted).
patcher=()
if ! command -v patchelf > /dev/null; then
  echo "(patchelf not found: repairing with --patcher none)"
  patcher=(--patcher none)
fi
"$AUDITWHEEL" repair "${patcher[@]}" -w "$REPAIRED" "$wheel"
repaired=("$REPAIRED"/trusswork-*.whl)
[[ ${#repaired[@]} -eq 1 ]] || { echo "wheel_check: auditwheel produced ${#repaired[@]} wheels" >&2; exit 1; }
repaired_wheel="${repaired[0]}"
name="$(basename "$repaired_wheel" .whl)"
tag="${name#*-*-*-*-}"  # name-version-python-abi-platform
case "$tag" in
  *manylinux*) ;;
  *) echo "wheel_check: repaired wheel has no manylinux tag: $tag" >&2; exit 1 ;;
esac
echo "repaired: ${repaired_wheel#"$ROOT"/}"
echo "platform tag: $tag"

step "fresh venv in ${WHEEL_VENV#"$ROOT"/}, installing the repaired wheel"
rm -rf "$WHEEL_VENV"
"$PY" -m venv "$WHEEL_VENV"
"$WHEEL_VENV/bin/python" -m pip install -q "${repaired_wheel}[test]"

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
cd "$workdir"

step "import trusswork resolves to the installed wheel"
location="$("$WHEEL_VENV/bin/python" -c '
import trusswork, trusswork.core._common as compiled
print(trusswork.__version__, trusswork.__file__, compiled.__file__, sep="\n")
')"
echo "$location"
venv_real="$(realpath "$WHEEL_VENV")"
while IFS= read -r path; do
  [[ "$path" == /* ]] || continue  # the version line
  case "$(realpath "$path")" in
    "$venv_real"/*) ;;
    *) echo "wheel_check: $path is not inside the wheel venv $venv_real" >&2; exit 1 ;;
  esac
done <<< "$location"

step "smoke tests against the installed wheel"
# The same command cibuildwheel's test-command runs.
"$WHEEL_VENV/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/tests/test_smoke.py"

step "ok: ${repaired_wheel#"$ROOT"/} ($tag)"
