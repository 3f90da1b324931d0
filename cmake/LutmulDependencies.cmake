# System dependencies, all from Debian's packages (scripts/install_deps.sh installs them).
find_package(OpenMP REQUIRED COMPONENTS CXX)

# oneDNN: every exact f32 product (src/core/sgemm.h says why not the BLAS). Debian builds it
# with its OpenCL GPU engine, so its CMake package also looks for OpenCL (ocl-icd-opencl-dev).
find_package(dnnl CONFIG REQUIRED)

# OpenBLAS: the double-precision BLAS and LAPACK of training (ridge solve, whitening, SVD), and
# a peer in the benchmarks.
find_package(OpenBLAS CONFIG REQUIRED)
add_library(lutmul_blas INTERFACE)
target_include_directories(lutmul_blas INTERFACE ${OpenBLAS_INCLUDE_DIRS})
target_link_libraries(lutmul_blas INTERFACE ${OpenBLAS_LIBRARIES})

# Debian's xsimd 8.1 names a target `xtl` in its CMake package that it never finds.
if(NOT TARGET xtl)
  add_library(xtl INTERFACE IMPORTED)
endif()
find_package(xsimd 8 REQUIRED)

# JSON for the safetensors headers and PEFT adapter configs (header-only, a private build dependency).
find_package(nlohmann_json 3 REQUIRED)
