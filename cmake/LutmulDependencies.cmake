# System dependencies, all from Debian's packages (scripts/install_deps.sh installs them).
find_package(OpenMP REQUIRED COMPONENTS CXX)

# OpenBLAS: BLAS for table construction and the exact baseline, LAPACK for the ridge solve.
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
