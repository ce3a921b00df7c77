# CUDA kernels in kernels/ are torch-free and compile whenever nvcc is found (even beside a CPU
# LibTorch). Their LibTorch bindings (src/ops) compile only when LibTorch itself has CUDA.
include(CheckLanguage)
if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
check_language(CUDA)
if(CMAKE_CUDA_COMPILER)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80 90)  # A100, H100/H200
  endif()
  enable_language(CUDA)
  # C++17: CMake 3.25 (Debian 12) knows no C++20 flag for nvcc, and the kernels need nothing newer.
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  set(TUNE_HAVE_NVCC ON)
  message(STATUS "tune: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
else()
  set(TUNE_HAVE_NVCC OFF)
  message(STATUS "tune: nvcc not found; CUDA kernels are not built (CPU paths only)")
endif()
