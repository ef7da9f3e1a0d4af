#!/usr/bin/env bash
# One-command environment for mae_seg: creates .venv in the checkout and installs torch,
# mmcv with its compiled ops, mmengine, mmsegmentation, timm and mae_seg (editable, with
# its test extra). Idempotent: a second run only checks and installs what is missing.
#
# mmcv publishes no wheels for current PyTorch, so it is built from its sdist once and the
# wheel is cached outside the checkout, keyed by the torch build it was compiled against.
#
# Environment:
#   PYTHON                 interpreter for the venv (default: python3)
#   MAE_SEG_TORCH          pip requirement(s) for torch when the venv has none
#                          (default: "torch==2.14.1 torchvision==0.29.1")
#   MAE_SEG_SYSTEM_SITE=1  create the venv with --system-site-packages, so that a torch
#                          already installed for PYTHON is reused instead of downloaded
#   MAE_SEG_CACHE          cache directory (default: ${XDG_CACHE_HOME:-$HOME/.cache}/mae_seg)
#   MAX_JOBS               parallel compile jobs for mmcv (default: number of cores)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${MAE_SEG_TORCH:-"torch==2.14.1 torchvision==0.29.1"}
CACHE=${MAE_SEG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mae_seg}
MMCV_VERSION=2.1.0
# torch >= 2.14 wants setuptools >= 77. mmengine 0.10 resolves `mmseg::` config bases with
# pkg_resources, which setuptools 81 removed: mae_seg.compat answers those look-ups instead.
SETUPTOOLS_SPEC="setuptools>=77"
PIP=("$VPY" -m pip --disable-pip-version-check -q)

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'setup_env: error: %s\n' "$*" >&2; exit 1; }
trap 'fail "step failed (line $LINENO): see the output above"' ERR

start=$SECONDS

step "virtual environment: $VENV"
if [[ ! -x $VPY ]]; then
  command -v "$PYTHON" >/dev/null || fail "no interpreter '$PYTHON' (set PYTHON=...)"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
    || fail "$PYTHON is older than Python 3.9"
  venv_args=()
  [[ ${MAE_SEG_SYSTEM_SITE:-0} == 1 ]] && venv_args+=(--system-site-packages)
  "$PYTHON" -m venv "${venv_args[@]}" "$VENV" || fail "could not create $VENV"
else
  echo "exists: $("$VPY" --version)"
fi

step "torch"
if "$VPY" -c 'import torch, torchvision' 2>/dev/null; then
  echo "keeping the installed torch $("$VPY" -c 'import torch; print(torch.__version__)')"
else
  # shellcheck disable=SC2086  # TORCH_SPEC holds several requirements
  "${PIP[@]}" install $TORCH_SPEC || fail "could not install '$TORCH_SPEC'"
fi
torch_tag=$("$VPY" -c '
import torch
accel = f"cu{torch.version.cuda}" if torch.cuda.is_available() and torch.version.cuda else "cpu"
version = torch.__version__.split("+")[0]
print(f"torch{version}-{accel}")')
echo "torch build: $torch_tag"

step "mmcv $MMCV_VERSION with compiled ops"
if "$VPY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
  echo "already installed"
else
  wheel_dir="$CACHE/wheels/$torch_tag"
  mkdir -p "$wheel_dir" || fail "cannot create the wheel cache $wheel_dir"
  wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
  if [[ -z $wheel ]]; then
    echo "no cached wheel in $wheel_dir: building from the sdist (about 15-20 minutes on 2 cores)"
    build=$(mktemp -d)
    restore_setuptools() { "${PIP[@]}" install "$SETUPTOOLS_SPEC" >/dev/null 2>&1 || true; rm -rf "$build"; }
    trap restore_setuptools EXIT
    # mmcv 2.1.0's setup.py imports pkg_resources, which setuptools >= 70 dropped. pip warns
    # that torch wants a newer setuptools: expected, it is restored right after the build.
    echo "(temporarily installing setuptools<70 for the build; pip's conflict warning is expected)"
    "${PIP[@]}" install "setuptools<70" wheel ninja
    "${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation \
      "mmcv==$MMCV_VERSION" -d "$build" || fail "could not download the mmcv sdist"
    tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
    # torch >= 2.14 headers need C++20; mmcv hard-codes -std=c++17.
    if "$VPY" -c 'import sys, torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(v < (2, 14))'; then
      sed -i 's/-std=c++17/-std=c++20/g' "$build/mmcv-$MMCV_VERSION/setup.py"
    fi
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" wheel --no-build-isolation \
      --no-deps "$build/mmcv-$MMCV_VERSION" -w "$build/dist" || fail "the mmcv build failed"
    built=$(ls "$build"/dist/mmcv-*.whl)
    wheel="$wheel_dir/$(basename "$built")"
    # Copy, then rename: an interrupted copy never looks like a cached wheel.
    cp "$built" "$wheel.partial" && mv "$wheel.partial" "$wheel"
    restore_setuptools
    trap - EXIT
  else
    echo "using the cached wheel $wheel"
  fi
  "${PIP[@]}" install "$wheel" "opencv-python<5" || fail "could not install $wheel"
fi

step "mmengine, mmsegmentation, timm and mae_seg (editable, with tests)"
"${PIP[@]}" install -e "$ROOT[tests]" "$SETUPTOOLS_SPEC" || fail "could not install mae_seg"

step "check"
"$VPY" -c "import mae_seg, mmseg, mmcv.ops, timm; print('mae_seg', mae_seg.__version__, '| mmseg', mmseg.__version__, '| mmcv', mmcv.__version__, '| timm', timm.__version__)" \
  || fail "the installed packages do not import"
printf '\nsetup_env: done in %ds. Python: %s\n' $((SECONDS - start)) "$VPY"
