#!/usr/bin/env bash
# Install the suite and its stack into the current Python environment (a venv is recommended).
#   bash tools/install.sh
# mmcv 2.1.0 is a source build on PyPI: it imports pkg_resources (setuptools<70) and needs torch
# at build time (--no-build-isolation); torch 2.13 itself wants setuptools>=77 at run time, so the
# old setuptools is installed only for the mmcv build. pip caches the built mmcv wheel, so later
# installs take seconds; the first one compiles mmcv's CPU ops (about 15 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -m pip install --upgrade 'pip>=23' wheel ninja
$PY -m pip install torch==2.13.0 numpy
if ! $PY -c 'import mmcv, mmcv.ops' 2>/dev/null || [ "$($PY -c 'import mmcv; print(mmcv.__version__)')" != 2.1.0 ]; then
  $PY -m pip install 'setuptools<70'
  MAX_JOBS=${MAX_JOBS:-$(nproc)} $PY -m pip install --no-build-isolation mmcv==2.1.0
fi
$PY -m pip install 'setuptools>=77'
$PY -m pip install -e '.[test]'
$PY -c 'import udabench.runner, mmseg, mmcv.ops; print("udabench installed: mmseg", mmseg.__version__, "mmcv", mmcv.__version__)'
