# Third-party libraries. LibTorch comes from PyTorch's own wheel (found through Python);
# everything else from the system (Debian -dev packages).
find_package(Threads REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(CLI11 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(SENTENCEPIECE IMPORTED_TARGET sentencepiece)

if(TUNE_WITH_TORCH)
  if(NOT Torch_DIR)
    # Prefer the project's virtual environment, then whatever python3 is on PATH.
    find_program(TUNE_PYTHON NAMES python3 HINTS ${PROJECT_SOURCE_DIR}/.venv/bin NO_DEFAULT_PATH)
    if(NOT TUNE_PYTHON)
      find_program(TUNE_PYTHON NAMES python3 REQUIRED)
    endif()
    execute_process(
      COMMAND ${TUNE_PYTHON} -c "import torch; print(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _torch_rc)
    if(NOT _torch_rc EQUAL 0)
      message(FATAL_ERROR "tune: LibTorch not found. Run scripts/setup.sh (installs torch==2.13.0 into .venv) "
                          "or pass -DTorch_DIR=<libtorch>/share/cmake/Torch")
    endif()
    list(PREPEND CMAKE_PREFIX_PATH ${_torch_prefix})
  endif()
  find_package(Torch REQUIRED)
  # TorchConfig appends its flags to CMAKE_CXX_FLAGS (ABI macro); keep them, drop nothing.
  message(STATUS "tune: LibTorch ${Torch_VERSION} (${TORCH_INSTALL_PREFIX})")
  if(TARGET torch_cuda OR CAFFE2_USE_CUDA OR TORCH_CUDA_LIBRARIES)
    set(TUNE_TORCH_HAS_CUDA ON)
  else()
    set(TUNE_TORCH_HAS_CUDA OFF)
  endif()
  message(STATUS "tune: LibTorch CUDA support: ${TUNE_TORCH_HAS_CUDA}")
  # c10d's ProcessGroupGloo.hpp includes gloo's headers, which the torch wheel does not ship; the
  # code itself is libtorch's (no gloo library is linked). Debian: libgloo-dev.
  find_path(TUNE_GLOO_INCLUDE_DIR gloo/config.h)
  if(NOT TUNE_GLOO_INCLUDE_DIR)
    message(FATAL_ERROR "tune: gloo headers (gloo/config.h) not found: install libgloo-dev (scripts/setup.sh does), "
                        "or pass -DTUNE_GLOO_INCLUDE_DIR=<dir>; data parallelism (src/dist) needs them")
  endif()
endif()
