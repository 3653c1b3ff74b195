#!/usr/bin/env bash
# Build .whl/device-site.tar.xz: pandas, pyarrow and adbc-driver-sqlite for the GPU
# machine's Python 3.12 (it has numpy and no network), slimmed and xz-compressed so
# that it fits the 64 MiB a device call may carry next to the ~38 MB working tree.
# Run here (with network), from the repository root: bash benchmarks/device_site.sh
set -euo pipefail
PY=${PY:-/work/venv/bin/python}
site=$(mktemp -d)/site
"$PY" -m pip install -q --no-compile --target "$site" --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --abi cp312 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  pandas pyarrow adbc-driver-sqlite adbc-driver-manager tzdata
# what nsysparse never loads: Arrow Flight, S3, Substrait, Gandiva, ORC, test suites, headers
rm -rf "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/_flight*.so "$site"/pyarrow/libarrow_s3.so* \
       "$site"/pyarrow/_s3fs*.so "$site"/pyarrow/libarrow_substrait.so* "$site"/pyarrow/_substrait*.so \
       "$site"/pyarrow/libgandiva.so* "$site"/pyarrow/gandiva*.so "$site"/pyarrow/_orc*.so \
       "$site"/pyarrow/tests "$site"/pyarrow/include "$site"/pyarrow/src "$site"/pandas/tests \
       "$site"/bin
find "$site" -name __pycache__ -prune -exec rm -rf {} +
find "$site" -name '*.so*' -type f -exec strip --strip-unneeded {} + 2>/dev/null || true  # symbols: -20%
mkdir -p .whl
tar -C "$site" -cf - . | xz -9e -T2 > .whl/device-site.tar.xz
ls -la .whl/device-site.tar.xz
