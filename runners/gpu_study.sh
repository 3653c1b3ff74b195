#!/usr/bin/env bash
# The GPU study of issue 4 (item 7): deepseek cut to 5 layers (1 dense + 4 MoE = 256 experts,
# 4.43 GB of store), the GPU expert cache at 70% of those experts -- the share of DeepSeek-V2-Lite's
# 28.8 GB of routed experts that a 24 GB card holds beside ~4 GB of everything else -- in disk and
# host modes with stream and event sync: four traces. Routing is left uniform (--skew 0), as
# DeepSeek's load-balanced router roughly is, so decode steps miss about 30% of the time. Run from the project root on a GPU machine:
#   OUT=somewhere bash runners/gpu_study.sh
# Leaves under $OUT: the four .sqlite traces, runs.tgz (manifests, engine/overhead/bandwidth JSON,
# nsys logs) and log.txt.
set -u
OUT=${OUT:-gpu-study-out}
RUNS=${RUNS:-nsysparse-out/runs}
STORE=${STORE:-$PWD/nsysparse-out/expert-store}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$RUNS"
COMMON=(--layers 5 --prompt-len 16 --batch 1 --decode-steps 12 --skew 0 --gpu-cache 70% --store "$STORE")
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.max,pcie.link.width.max --format=csv
  df -h . /tmp; findmnt -T . || true
  $PY -c "import torch, nvtx; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nvtx', nvtx.__file__)"
  echo "== smoke: tiny on cuda, no nsys; then write the deepseek store outside any trace"
  $PY -m runners.engine tiny --device cuda --store "$STORE" --decode-steps 3 --mode disk --sync event
  $PY -m runners.engine deepseek --layers 5 --prompt-len 1 --decode-steps 0 --store "$STORE" --device cuda
  for run in disk_stream disk_event host_stream host_event; do
    mode=${run%_*}; sync=${run#*_}
    extra=(--no-overhead --no-bandwidth --no-report)
    [ "$run" = disk_stream ] && extra=(--no-overhead)            # bandwidth probe + nsysparse report once
    [ "$run" = host_event ] && extra=(--no-bandwidth --no-report --overhead-steps 40)  # annotation cost once
    echo "== deepseek $mode/$sync"
    t0=$(date +%s)
    $PY -m runners.profile deepseek "${COMMON[@]}" --mode "$mode" --sync "$sync" --out "$RUNS/deepseek_$run" "${extra[@]}"
    echo "rc=$? in $(( $(date +%s) - t0 )) s"; ls -la "$RUNS/deepseek_$run"
    cp "$RUNS/deepseek_$run/deepseek_$run.sqlite" "$OUT/" 2>/dev/null
  done
  cat "$RUNS"/*/overhead.json "$RUNS"/*/bandwidth.json 2>/dev/null
  echo "== does O_DIRECT bypass the page cache? the same 64 expert files read direct, then buffered twice"
  files=$(ls "$STORE"/deepseek-*/L002_E0*.bin | head -64)
  for how in iflag=direct "" ""; do
    t0=$(date +%s.%N); for f in $files; do dd if="$f" of=/dev/null bs=16M $how status=none; done
    echo "${how:-buffered}: $($PY -c "print(round(64 * 17305600 / ($(date +%s.%N) - $t0) / 1e9, 2))") GB/s"
  done
} 2>&1 | tee "$OUT/log.txt"
tar czf "$OUT/runs.tgz" --exclude='*.sqlite' --exclude='*.nsys-rep' --exclude='*.qdstrm' --exclude='*.parquet' \
  --exclude='*.png' -C "$RUNS" .
ls -la "$OUT"
