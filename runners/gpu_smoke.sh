#!/usr/bin/env bash
# On the GPU machine (device tool, carrying .device-libs): the runner end to end under nsys,
# with the nvtx package and without it (the torch.cuda.nvtx fallback), ending in the report.
#   source .device-libs/nsys-env.sh && OUT=$OUT bash runners/gpu_smoke.sh
set -u
OUT=${OUT:-/tmp/smoke}
mkdir -p "$OUT" /tmp/smoke-runs
export PYTHONPATH=".:${PYTHONPATH:-}"
nvidia-smi -L
keep() { # RUN TAG: the files worth reading back from a run folder
    cp "$1/manifest.json" "$OUT/$2.manifest.json" 2>/dev/null
    cp "$1/report/summary.json" "$OUT/$2.summary.json" 2>/dev/null
}
# 1. deepseek, 5 layers, disk mode, event sync, with the nvtx package (payloads)
timeout 330 python -m runners.profile deepseek --layers 5 --gpu-cache 70% --mode disk --sync event \
    --out /tmp/smoke-runs/ds > "$OUT/ds.txt" 2>&1; echo "deepseek rc=$?" | tee -a "$OUT/ds.txt"
keep /tmp/smoke-runs/ds ds
# 2. tiny without the nvtx package on the path: torch.cuda.nvtx ranges and the I/O log
PYTHONPATH=. timeout 150 python -m runners.profile tiny --out /tmp/smoke-runs/tiny > "$OUT/tiny.txt" 2>&1
echo "tiny rc=$?" | tee -a "$OUT/tiny.txt"
keep /tmp/smoke-runs/tiny tiny
ls "$OUT"
