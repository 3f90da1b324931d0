# LUTMUL_CUDA=ON: look for a CUDA compiler; if there is one, enable CUDA and set
# LUTMUL_HAVE_CUDA so that kernels/cuda/ builds lutmul_cuda. Without one the build goes on
# without the GPU library and says why.
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(WARNING "LUTMUL_CUDA is ON but no CUDA compiler was found (put nvcc on PATH, or set "
                  "CMAKE_CUDA_COMPILER or CUDACXX): building without lutmul_cuda.")
  return()
endif()
# Ampere (sm_80; sm_86/89 run its code) and Hopper (sm_90, the H100). CUDA 13 alone would
# default to sm_75. Each entry also embeds PTX, so newer GPUs JIT-compile it.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 80 90)
endif()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit REQUIRED)
set(LUTMUL_HAVE_CUDA ON)
message(STATUS "lutmul_cuda: CUDA ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
