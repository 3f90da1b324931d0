#!/usr/bin/env bash
# Installs what lutmul needs to build and test, from Debian's packages. Idempotent: asks
# apt only for what is missing.
set -euo pipefail

packages=(build-essential cmake pkg-config libopenblas-dev libdnnl-dev ocl-icd-opencl-dev libxsimd-dev libgtest-dev libgmock-dev
          libbenchmark-dev libeigen3-dev nlohmann-json3-dev python3 python3-venv python3-dev
          g++-aarch64-linux-gnu qemu-user
          clang libclang-rt-14-dev libomp-dev)  # clang, libFuzzer and its sanitizers, OpenMP: the fuzz targets
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
