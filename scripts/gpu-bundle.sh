#!/usr/bin/env bash
# Packs a CUDA build made here for the lent GPU machine, whose image has CUDA, cuBLAS and cuDNN
# but none of our Debian libraries: the executables the GPU steps run, plus every shared library
# they need except glibc/libstdc++ and the CUDA libraries the GPU image provides.
#   scripts/gpu-bundle.sh BUILD_DIR OUT_DIR      -> OUT_DIR/bundle.tar.xz (bin/, tests/, lib/)
# The CUDA backend plugin goes to lib/emotune/, where bin/emotune and tests/test_*_cuda look for it
# (base/plugin.h; the tests' run path is $ORIGIN/../lib/emotune).
# On the GPU machine: tar xf OUT_DIR/bundle.tar.xz -C DIR; LD_LIBRARY_PATH=DIR/lib:...
set -euo pipefail
build=$1
out=$2
stage=$(mktemp -d)
mkdir -p "$stage/bin" "$stage/tests" "$stage/lib/emotune" "$out"
cp "$build"/lib/emotune/libemotune_kernels_cuda.so "$stage/lib/emotune/"
for f in "$build"/bin/emotune "$build"/bin/bench_cuda_* "$build"/bin/bench_train_step; do
  [ -f "$f" ] && cp "$f" "$stage/bin/"
done
for f in "$build"/tests/test_*_cuda; do
  [ -x "$f" ] && [ -f "$f" ] && cp "$f" "$stage/tests/"
done
skip='libemotune_|linux-vdso|ld-linux|/libc\.so|/libm\.so|/libstdc\+\+|/libgcc_s|/libdl\.|/libpthread|/librt\.|libcuda\.|libcudart|libcublas|libcudnn'
for exe in "$stage"/bin/* "$stage"/tests/* "$stage"/lib/emotune/*; do
  ldd "$exe" | awk '{print $3}' | grep '^/' | grep -Ev "$skip" || true
done | sort -u | while read -r lib; do cp -L "$lib" "$stage/lib/"; done
strip --strip-unneeded "$stage"/bin/* "$stage"/tests/* "$stage"/lib/emotune/* 2>/dev/null || true
tar -C "$stage" -cJf "$out/bundle.tar.xz" bin tests lib
du -sh "$stage"/bin "$stage"/tests "$stage"/lib "$out/bundle.tar.xz"
rm -rf "$stage"
