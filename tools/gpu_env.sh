# Sourced by the GPU-machine scripts (tools/gpu_checks.sh,
# tools/gpu_ablation_grid14.sh): installs the carried pure-Python OpenMMLab
# wheels (.whl/, see gpu_checks.sh's header for the download command) into a
# temporary folder on PYTHONPATH, with the repository first so that
# scripts under tools/ import this checkout's mmdidb. Sets
# OPENMMLAB_FOUND=1 when mmengine, mmcv-lite and mmpretrain import.
if compgen -G ".whl/*.whl" > /dev/null; then
  SITE=$(mktemp -d)
  python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$SITE" .whl/*.whl \
    && export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" \
    || echo "installing .whl/*.whl failed; the OpenMMLab steps may be skipped"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if python -c 'import mmdidb.compat as c; raise SystemExit(0 if c.openmmlab_available() else 1)'; then
  echo "OpenMMLab packages: found"
  OPENMMLAB_FOUND=1
else
  echo "OpenMMLab packages: NOT found; model-level steps skip (carry .whl/, see tools/gpu_checks.sh's header)"
  OPENMMLAB_FOUND=0
fi
