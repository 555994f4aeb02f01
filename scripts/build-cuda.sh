#!/usr/bin/env bash
# Build flowvae's CUDA binary on a machine without a GPU or a system CUDA toolkit, and pack it
# small enough to carry to the GPU machine (DESIGN.md §11).
#
# What it does, all under target/ (ignored by git), never in the system:
#   1. a Python venv with CUDA 13.0's compiler and libraries from PyPI, pinned to 13.0.x
#      (PTX from a newer nvcc is refused by a CUDA 13.0 driver). The CUDA 13 wheels all unpack
#      into one tree, site-packages/nvidia/cu13/{bin,include,lib,nvvm}, which is the CUDA root.
#   2. a link folder: unversioned symlinks to the libraries candle 0.11 links at build time
#      (cudart, cublas, cublasLt, curand, nvrtc) and a stub libcuda.so (SONAME libcuda.so.1)
#      defining every driver-API function cuda.h declares; the real driver replaces it at run time.
#   3. `cargo build --release -p flowvae --features cuda` in its own target folder, so the CPU
#      build in target/release is untouched, at lower priority (nice).
#   4. the binary stripped and xz-compressed, with sizes, sha256 and what the GPU side needs.
#
# Re-running reuses the toolchain (a stamp records the pins) and cargo's incremental state. The
# build folder belongs to this checkout: cargo's fingerprints name its source files, so a
# FLOWVAE_CUDA_TARGET_DIR shared with another checkout builds stale code.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/build-cuda.sh [options]

Compile flowvae with `--features cuda` for an H200 (compute capability 9.0) on a machine with
no GPU and no CUDA install, using CUDA 13.0 from PyPI in a local prefix under target/.

Options:
  --toolchain-only   install/check the toolchain and link folder, do not build
  --jobs N           cargo jobs and parallel nvcc compiles (default: cargo's, all cores)
  --no-nice          do not lower the priority (default: nice -n 10)
  -h, --help         this text

Environment (all optional):
  CUDA_COMPUTE_CAP           target GPU (default 90: H100/H200)
  FLOWVAE_CUDA_PREFIX        toolchain prefix   (default target/cuda-toolchain)
  FLOWVAE_CUDA_TARGET_DIR    cargo target dir   (default target/cuda-build)
  FLOWVAE_CUDA_OUT           packed output      (default target/cuda)

Outputs: $FLOWVAE_CUDA_OUT/flowvae (stripped), flowvae.xz, SHA256SUMS, RUNTIME.txt.
The first run downloads ~0.7 GB of wheels (~1.6 GB installed); the compile takes 30-60 min on
2 cores (candle-kernels' nvcc step dominates).
EOF
}

# ---- options ------------------------------------------------------------------------------
TOOLCHAIN_ONLY=0
JOBS=""
USE_NICE=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --toolchain-only) TOOLCHAIN_ONLY=1 ;;
        --no-nice) USE_NICE=0 ;;
        --jobs) [[ $# -ge 2 ]] || { echo "--jobs needs a number" >&2; exit 2; }; JOBS=$2; shift ;;
        --jobs=*) JOBS=${1#--jobs=} ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [[ -n "$JOBS" && ! "$JOBS" =~ ^[1-9][0-9]*$ ]]; then
    echo "--jobs wants a positive integer, got '$JOBS'" >&2; exit 2
fi

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${FLOWVAE_CUDA_PREFIX:-$REPO/target/cuda-toolchain}
TARGET_DIR=${FLOWVAE_CUDA_TARGET_DIR:-$REPO/target/cuda-build}
OUT=${FLOWVAE_CUDA_OUT:-$REPO/target/cuda}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}

# CUDA 13.0 (the GA release, 13.0.0), the line the GPU machine's driver (580) speaks. All
# these wheels unpack into nvidia/cu13/. Bump together, and only within 13.0.x.
PINS=(
    nvidia-cuda-nvcc==13.0.48      # nvcc, ptxas, fatbinary, nvlink
    nvidia-nvvm==13.0.48           # cicc, libdevice (nvcc's front half)
    nvidia-cuda-crt==13.0.48       # crt/host_config.h and friends
    nvidia-cuda-runtime==13.0.48   # cuda.h, cuda_runtime.h, libcudart.so.13
    nvidia-cuda-cccl==13.0.50      # cub/thrust/libcu++ headers
    nvidia-cuda-nvrtc==13.0.48     # libnvrtc.so.13 (linked by candle/cudarc)
    nvidia-cublas==13.0.0.19       # libcublas.so.13, libcublasLt.so.13
    nvidia-curand==10.4.0.35       # libcurand.so.10 (CUDA 13.0's curand)
)
# The libraries candle 0.11 (cudarc's dynamic-linking, candle-kernels' libmoe) link by name.
LINK_LIBS=(cudart cublas cublasLt curand nvrtc)

if [[ $USE_NICE -eq 1 ]]; then
    # Everything this script starts inherits the lower priority.
    renice -n 10 -p $$ >/dev/null || echo "note: renice failed; running at normal priority"
fi

for tool in python3 cargo cc strip xz sha256sum nm file; do
    command -v "$tool" >/dev/null || die "'$tool' not found on PATH"
done

# ---- 1. toolchain from PyPI -----------------------------------------------------------------
VENV=$PREFIX/venv
STAMP=$PREFIX/pins.txt
want_pins=$(printf '%s\n' "${PINS[@]}")
if [[ -x $VENV/bin/python && -f $STAMP && "$(cat "$STAMP")" == "$want_pins" ]]; then
    log "CUDA toolchain: reusing $VENV"
else
    log "CUDA toolchain: installing pinned 13.0 wheels into $VENV (first run: ~0.7 GB download)"
    mkdir -p "$PREFIX"
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    # --no-deps: the wheels have none, and nothing else may slip in; no cache: disk is tight.
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-cache-dir --no-deps \
        --only-binary=:all: $want_pins
    printf '%s\n' "$want_pins" >"$STAMP"
fi
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
CUDA_ROOT=$SITE/nvidia/cu13
[[ -x $CUDA_ROOT/bin/nvcc ]] || die "no nvcc at $CUDA_ROOT/bin/nvcc (did the wheel layout change?)"
[[ -x $CUDA_ROOT/bin/cicc ]] || die "no cicc at $CUDA_ROOT/bin/cicc (nvidia-nvvm)"
[[ -f $CUDA_ROOT/include/crt/host_config.h ]] || die "no crt/host_config.h (nvidia-cuda-crt)"
# nvcc.profile looks for cicc in $TOP/nvvm/bin, the wheel ships it in bin/.
mkdir -p "$CUDA_ROOT/nvvm/bin"
ln -sfn ../../bin/cicc "$CUDA_ROOT/nvvm/bin/cicc"

export CUDA_HOME=$CUDA_ROOT CUDA_PATH=$CUDA_ROOT
export PATH=$CUDA_ROOT/bin:$PATH
export NVCC=$CUDA_ROOT/bin/nvcc
nvcc_release=$(nvcc --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
[[ $nvcc_release == 13.0 ]] || die "nvcc reports release '$nvcc_release', want 13.0"
echo "nvcc: $(nvcc --version | tail -n 2 | head -n 1)"

# ---- 2. link folder: unversioned symlinks + driver stub ------------------------------------
LINK=$PREFIX/link
mkdir -p "$LINK"
for lib in "${LINK_LIBS[@]}"; do
    real=$(cd "$CUDA_ROOT/lib" && ls "lib$lib.so."[0-9]* 2>/dev/null | grep -E "^lib$lib\.so\.[0-9]+$" | head -n 1) \
        || die "lib$lib.so.N not found in $CUDA_ROOT/lib"
    ln -sfn "$CUDA_ROOT/lib/$real" "$LINK/lib$lib.so"
done

# The driver (libcuda.so.1) has no PyPI package. Define every cu* function cuda.h declares,
# under each name the header can map it to (default, per-thread-stream, legacy); each returns
# CUDA_ERROR_STUB_LIBRARY (34). --as-needed keeps only the NEEDED entry; the symbols the binary
# actually binds are listed after the build.
stub_src=$PREFIX/stub/libcuda_stub.c
mkdir -p "$PREFIX/stub"
{
    for defs in "" "-DCUDA_API_PER_THREAD_DEFAULT_STREAM" "-D__CUDA_API_VERSION_INTERNAL"; do
        # shellcheck disable=SC2086
        echo '#include <cuda.h>' | cc -E -P $defs -I"$CUDA_ROOT/include" -x c - 2>/dev/null
    done
} | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d '( \t' | sort -u >"$PREFIX/stub/symbols.all"
n_syms=$(wc -l <"$PREFIX/stub/symbols.all")
[[ $n_syms -gt 300 ]] || die "only $n_syms driver functions found in cuda.h; preprocessing failed?"
{
    echo "/* Generated by scripts/build-cuda.sh: link-time stand-in for the CUDA driver. */"
    while read -r s; do echo "int $s(void) { return 34; }"; done <"$PREFIX/stub/symbols.all"
} >"$stub_src.new"
if [[ ! -f $LINK/libcuda.so ]] || ! cmp -s "$stub_src.new" "$stub_src"; then
    mv "$stub_src.new" "$stub_src"
    cc -shared -fPIC -fno-builtin -O0 -Wl,-soname,libcuda.so.1 -o "$LINK/libcuda.so" "$stub_src"
    echo "stub libcuda.so: $n_syms driver symbols, SONAME libcuda.so.1"
else
    rm -f "$stub_src.new"
fi
# Only for trying the binary on this machine; never carried.
ln -sfn libcuda.so "$LINK/libcuda.so.1"

# ---- smoke test of the compiler: a kernel to PTX and to an sm_XX object ---------------------
smoke=$PREFIX/smoke
mkdir -p "$smoke"
cat >"$smoke/k.cu" <<'EOF'
#include <cuda_runtime.h>
#include <cuda_fp16.h>
extern "C" __global__ void axpy(float a, const float *x, float *y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
EOF
nvcc --ptx -arch=compute_"$CUDA_COMPUTE_CAP" -o "$smoke/k.ptx" "$smoke/k.cu" \
    || die "nvcc cannot compile a trivial kernel to PTX"
nvcc -c -arch=sm_"$CUDA_COMPUTE_CAP" -Xcompiler -fPIC -o "$smoke/k.o" "$smoke/k.cu" \
    || die "nvcc cannot compile a trivial kernel to an object"
echo "nvcc smoke test: ok ($(grep -m1 '^\.version' "$smoke/k.ptx"), $(grep -m1 '^\.target' "$smoke/k.ptx"))"

# Link search path for rustc, appended to any RUSTFLAGS the caller has. (This workspace has no
# .cargo/config rustflags; if one is added, note that RUSTFLAGS overrides it.)
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-L native=$LINK"

if [[ $TOOLCHAIN_ONLY -eq 1 ]]; then
    log "toolchain ready"
    echo "export CUDA_HOME=$CUDA_ROOT CUDA_PATH=$CUDA_ROOT CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP"
    echo "export PATH=$CUDA_ROOT/bin:\$PATH RUSTFLAGS='$RUSTFLAGS'"
    exit 0
fi

# ---- 3. build ---------------------------------------------------------------------------------
log "cargo build --release -p flowvae --features cuda (target dir $TARGET_DIR; 30-60 min on 2 cores)"
cargo_args=(build --release -p flowvae --features cuda --manifest-path "$REPO/Cargo.toml")
if [[ -n $JOBS ]]; then
    cargo_args+=(-j "$JOBS")
    export CUDAFORGE_THREADS=$JOBS
fi
t0=$(date +%s)
CARGO_TARGET_DIR=$TARGET_DIR cargo "${cargo_args[@]}"
t1=$(date +%s)
echo "build took $(( (t1 - t0) / 60 )) min $(( (t1 - t0) % 60 )) s"

BIN=$TARGET_DIR/release/flowvae
[[ -x $BIN ]] || die "no binary at $BIN"

# ---- 4. strip, compress, describe ---------------------------------------------------------
log "packing into $OUT"
mkdir -p "$OUT"
strip -o "$OUT/flowvae.tmp" "$BIN"
mv "$OUT/flowvae.tmp" "$OUT/flowvae"
xz -9 -T1 -c "$OUT/flowvae" >"$OUT/flowvae.xz.tmp"
mv "$OUT/flowvae.xz.tmp" "$OUT/flowvae.xz"
(cd "$OUT" && sha256sum flowvae flowvae.xz >SHA256SUMS)

# Every embedded PTX module must be for the 13.0 driver (ISA 9.0) and the target arch
# (candle's cudaforge turns CUDA_COMPUTE_CAP=90 into sm_90a: runs on compute capability 9.0 only).
ptx_versions=$(grep -a -oE '^\.version [0-9]+\.[0-9]+' "$OUT/flowvae" | sort | uniq -c | tr -s ' ' || true)
ptx_targets=$(grep -a -oE '^\.target sm_[0-9a-z]+' "$OUT/flowvae" | sort | uniq -c | tr -s ' ' || true)
needed=$(readelf -d "$OUT/flowvae" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
cuda_needed=$(printf '%s\n' $needed | { grep -E '^lib(cu|nv)' || true; } | { grep -v '^libcuda\.so' || true; } | tr '\n' ' ' | sed 's/ $//')
used_driver=$(nm -D --undefined-only "$OUT/flowvae" | awk '{print $2}' | sed 's/@.*//' \
    | { grep -xF -f "$PREFIX/stub/symbols.all" || true; } | sort)
printf '%s\n' "$used_driver" >"$OUT/driver-symbols.txt"

size() { stat -c %s "$1" | awk '{printf "%.1f MB (%d bytes)", $1 / 1e6, $1}'; }
cat >"$OUT/RUNTIME.txt" <<EOF
flowvae CUDA build ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)), compute capability $CUDA_COMPUTE_CAP, CUDA $nvcc_release
Unpack:  xz -dc flowvae.xz > flowvae && chmod +x flowvae && sha256sum -c SHA256SUMS
Needs (NEEDED): $needed
  libcuda.so.1 comes with the NVIDIA driver (580 = CUDA 13.0 or newer).
  The others ($cuda_needed, and libcublasLt.so.13 which libcublas loads) come from the
  pip packages nvidia-cuda-runtime, nvidia-cublas, nvidia-curand (CUDA 13.x), which PyTorch cu130
  installs, all into site-packages/nvidia/cu13/lib:
    export LD_LIBRARY_PATH="\$(python3 -c 'import nvidia.cu13 as m; print(list(m.__path__)[0])')/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
  Check with: ldd ./flowvae | grep 'not found'
EOF

log "done"
echo "binary:   $BIN  $(size "$BIN")"
echo "stripped: $OUT/flowvae  $(size "$OUT/flowvae")"
echo "xz:       $OUT/flowvae.xz  $(size "$OUT/flowvae.xz")"
sed 's/^/sha256:   /' "$OUT/SHA256SUMS"
echo "PTX:      ${ptx_versions:-none found}; ${ptx_targets:-}"
echo "NEEDED:   $needed"
echo "driver symbols bound: $(grep -c . "$OUT/driver-symbols.txt") (listed in $OUT/driver-symbols.txt)"
echo
echo "On the GPU machine (libraries from its PyTorch cu130 pip packages):"
sed -n '2,$p' "$OUT/RUNTIME.txt" | sed 's/^/  /'
echo
echo "Try it here without a GPU (stub driver; any CUDA call fails with error 34):"
echo "  LD_LIBRARY_PATH=$LINK:$CUDA_ROOT/lib $OUT/flowvae --help"
