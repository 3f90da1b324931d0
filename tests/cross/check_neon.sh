#!/usr/bin/env bash
# Cross-compiles the NEON kernels (MADDNESS and the pruned products) and their check for AArch64 and runs it under qemu-user.
# Needs g++-aarch64-linux-gnu and qemu-user (scripts/install_deps.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/cross
mkdir -p "$out/include"
ln -sfn /usr/include/xsimd "$out/include/xsimd"  # header-only, the same for every target; a system header (its own warnings are not ours)
aarch64-linux-gnu-g++ -std=c++17 -O2 -static -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion \
  -Werror -ffp-contract=off -I. -Iinclude -isystem "$out/include" \
  kernels/cpu/maddness/maddness_scalar.cpp kernels/cpu/isa/maddness_neon.cpp kernels/cpu/pruned/sparse_scalar.cpp kernels/cpu/pruned/sparse24_scalar.cpp \
  kernels/cpu/isa/pruned_neon.cpp tests/cross/neon_kernel_check.cpp -o "$out/neon_kernel_check"
qemu-aarch64 "$out/neon_kernel_check"
