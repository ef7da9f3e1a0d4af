#!/usr/bin/env bash
# One-command environment for mae_seg: creates .venv in the checkout and installs torch,
# mmcv with its compiled ops, mmengine, mmsegmentation, timm and mae_seg (editable, with
# its test extra). Idempotent: a second run only checks and installs what is missing.
#
# mmcv publishes no wheels for current PyTorch, so it is built from its sdist once and the
# wheel is cached outside the checkout, keyed by the torch build it was compiled against and
# by the kind of ops. mae_seg's configs call no mmcv op (tests/test_mmcv_ops.py), so only the
# CPU ops are built by default, also where CUDA is present: minutes instead of the hour a CUDA
# build takes. mmseg imports mmcv.ops at import time, so the extension must exist.
#
# Offline nodes (no package registry, a torch already installed):
#   on a connected machine:  bash tools/setup_env.sh --download-wheelhouse DIR \
#                                [--python-version 3.12] [--have NODE_FREEZE.txt]
#     fetches into DIR everything the set-up installs that the node lacks (NODE_FREEZE.txt:
#     the node's `pip freeze`; default: it has torch and torchvision), mmcv as its sdist;
#   on the node:             MAE_SEG_WHEELHOUSE=DIR MAE_SEG_SYSTEM_SITE=1 bash tools/setup_env.sh
#     installs from DIR alone (pip --no-index --find-links DIR) and builds mmcv there.
#
# Environment:
#   PYTHON                 interpreter for the venv (default: python3)
#   MAE_SEG_TORCH          pip requirement(s) for torch when the venv has none
#                          (default: "torch==2.14.1 torchvision==0.29.1")
#   MAE_SEG_SYSTEM_SITE=1  create the venv with --system-site-packages, so that a torch
#                          already installed for PYTHON is reused instead of downloaded
#   MAE_SEG_CACHE          cache directory (default: ${XDG_CACHE_HOME:-$HOME/.cache}/mae_seg)
#   MAE_SEG_WHEELHOUSE     install only from this folder (made by --download-wheelhouse)
#   MAE_SEG_MMCV_CUDA=1    build mmcv's CUDA ops too (for other mmseg models; needs nvcc)
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
BUILD_TOOLS=("setuptools<70" wheel ninja)
WHEELHOUSE=${MAE_SEG_WHEELHOUSE:-}
MMCV_CUDA=${MAE_SEG_MMCV_CUDA:-0}
PIP=("$VPY" -m pip --disable-pip-version-check -q)

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'setup_env: error: %s\n' "$*" >&2; exit 1; }
trap 'fail "step failed (line $LINENO): see the output above"' ERR

start=$SECONDS

if [[ ${1:-} == --download-wheelhouse ]]; then
  [[ -n ${2:-} ]] || fail "--download-wheelhouse needs a folder: --download-wheelhouse DIR"
  dest=$2
  shift 2
  # pip prepares mmcv's sdist metadata by running its setup.py, which needs pkg_resources and
  # wheel: a throwaway venv has them whatever the connected machine's Python holds.
  helper=$(mktemp -d)
  trap 'rm -rf "$helper"' EXIT
  step "helper environment for the download"
  "$PYTHON" -m venv "$helper" || fail "could not create a venv with $PYTHON"
  "$helper/bin/python" -m pip --disable-pip-version-check -q install "${BUILD_TOOLS[@]}" packaging \
    || fail "could not install the download helper's packages"
  step "downloading into $dest"
  extras=()
  for tool in "${BUILD_TOOLS[@]}" "$SETUPTOOLS_SPEC"; do extras+=(--extra "$tool"); done
  "$helper/bin/python" "$ROOT/tools/wheelhouse.py" "$dest" --sdist "mmcv==$MMCV_VERSION" \
    "${extras[@]}" "$@" || exit $?
  printf '\nsetup_env: wheelhouse written in %ds\n' $((SECONDS - start))
  exit 0
elif [[ $# -gt 0 ]]; then
  fail "unknown argument '$1' (the only one is --download-wheelhouse DIR; settings are variables, see the header)"
fi

if [[ -n $WHEELHOUSE ]]; then
  [[ -f $WHEELHOUSE/requirements.txt ]] \
    || fail "MAE_SEG_WHEELHOUSE=$WHEELHOUSE has no requirements.txt: fill it with --download-wheelhouse"
  WHEELHOUSE=$(cd "$WHEELHOUSE" && pwd)
  # As variables, not options: pip takes --no-index only after its subcommand, and the
  # variables also reach the pip that fills an isolated build environment.
  export PIP_NO_INDEX=1 PIP_FIND_LINKS=$WHEELHOUSE
  echo "installing from $WHEELHOUSE only (no package index)"
fi

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
elif [[ -n $WHEELHOUSE ]]; then
  fail "no torch in $VPY, and a wheelhouse brings none: run with MAE_SEG_SYSTEM_SITE=1 PYTHON=<a Python that has torch>"
else
  # shellcheck disable=SC2086  # TORCH_SPEC holds several requirements
  "${PIP[@]}" install $TORCH_SPEC || fail "could not install '$TORCH_SPEC'"
fi
# The mmcv wheel fits one torch version and build (CUDA or not); the ops kind says whether
# it holds CUDA kernels.
ops_kind=$([[ $MMCV_CUDA == 1 ]] && echo cuda-ops || echo cpu-ops)
torch_tag=$("$VPY" -c '
import torch
version = torch.__version__.split("+")[0]
build = f"cu{torch.version.cuda}" if torch.version.cuda else "cpu"
print(f"torch{version}-{build}")')
echo "torch build: $torch_tag; mmcv ops: $ops_kind"

step "mmcv $MMCV_VERSION with compiled ops ($ops_kind)"
if "$VPY" -c "
import sys, mmcv, mmcv.ops
has_cuda = mmcv.ops.get_compiling_cuda_version() != 'not available'
sys.exit(mmcv.__version__ != '$MMCV_VERSION' or ('$MMCV_CUDA' == '1' and not has_cuda))" 2>/dev/null; then
  echo "already installed"
else
  wheel_dir="$CACHE/wheels/$torch_tag-$ops_kind"
  mkdir -p "$wheel_dir" || fail "cannot create the wheel cache $wheel_dir"
  wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
  if [[ -z $wheel ]]; then
    echo "no cached wheel in $wheel_dir: building from the sdist (CPU ops: about 15 minutes on 2 cores)"
    build=$(mktemp -d)
    restore_setuptools() { "${PIP[@]}" install "$SETUPTOOLS_SPEC" >/dev/null 2>&1 || true; rm -rf "$build"; }
    trap restore_setuptools EXIT
    # mmcv 2.1.0's setup.py imports pkg_resources, which setuptools >= 70 dropped. pip warns
    # that torch wants a newer setuptools: expected, it is restored right after the build.
    echo "(temporarily installing setuptools<70 for the build; pip's conflict warning is expected)"
    "${PIP[@]}" install "${BUILD_TOOLS[@]}"
    "${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation \
      "mmcv==$MMCV_VERSION" -d "$build" || fail "could not download the mmcv sdist"
    tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
    # torch >= 2.14 headers need C++20; mmcv hard-codes -std=c++17.
    if "$VPY" -c 'import sys, torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(v < (2, 14))'; then
      sed -i 's/-std=c++17/-std=c++20/g' "$build/mmcv-$MMCV_VERSION/setup.py"
    fi
    # mmcv compiles its CUDA kernels whenever torch sees a GPU or FORCE_CUDA=1: hiding the
    # GPUs keeps the default build to the CPU ops.
    if [[ $MMCV_CUDA == 1 ]]; then
      gpu_env=(FORCE_CUDA=1)
    else
      gpu_env=(CUDA_VISIBLE_DEVICES= FORCE_CUDA=0)
    fi
    env "${gpu_env[@]}" MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" wheel \
      --no-build-isolation --no-deps "$build/mmcv-$MMCV_VERSION" -w "$build/dist" \
      || fail "the mmcv build failed"
    built=$(ls "$build"/dist/mmcv-*.whl)
    wheel="$wheel_dir/$(basename "$built")"
    # Copy, then rename: an interrupted copy never looks like a cached wheel.
    cp "$built" "$wheel.partial" && mv "$wheel.partial" "$wheel"
    restore_setuptools
    trap - EXIT
  else
    echo "using the cached wheel $wheel"
  fi
  if [[ -n $WHEELHOUSE ]]; then
    # The wheelhouse holds what the node lacks, resolved when it was made; pip's resolver
    # would also ask for opencv-python where the node has opencv-python-headless.
    "${PIP[@]}" install --no-deps "$wheel" || fail "could not install $wheel"
  else
    "${PIP[@]}" install "$wheel" "opencv-python<5" || fail "could not install $wheel"
  fi
fi

step "mmengine, mmsegmentation, timm and mae_seg (editable, with tests)"
if [[ -n $WHEELHOUSE ]]; then
  "${PIP[@]}" install --no-deps -r "$WHEELHOUSE/requirements.txt" "$SETUPTOOLS_SPEC" wheel \
    || fail "could not install from $WHEELHOUSE"
  # Built with the venv's setuptools and wheel: an isolated build environment would not see
  # the node's packages (wheel needs packaging), and the wheelhouse leaves those out.
  "${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT" \
    || fail "could not install mae_seg"
else
  "${PIP[@]}" install -e "$ROOT[tests]" "$SETUPTOOLS_SPEC" || fail "could not install mae_seg"
fi

step "check"
"$VPY" -c "import mae_seg, mmseg, mmcv.ops, timm; print('mae_seg', mae_seg.__version__, '| mmseg', mmseg.__version__, '| mmcv', mmcv.__version__, '| timm', timm.__version__)" \
  || fail "the installed packages do not import"
printf '\nsetup_env: done in %ds. Python: %s\n' $((SECONDS - start)) "$VPY"
printf 'setup_env: run `source %s/bin/activate` first: the `python ...` commands of README.md assume it\n' \
  "$VENV"
