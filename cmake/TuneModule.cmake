# tune_add_module(<name> [TORCH] [DEPS tune_x ...] [LIBS ...])
# One static library per module, from src/<name>/*.cpp. Public headers live in include/tune/<name>/.
# Listing only the modules a module may use lets the link graph enforce the dependency direction.
# TORCH modules reuse the single LibTorch precompiled header (tune_pch).
function(tune_add_module name)
  cmake_parse_arguments(M "TORCH" "" "DEPS;LIBS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${name}/*.cpp)
  if(NOT srcs)
    # A module with headers only (or not yet written) is an INTERFACE target with the same deps.
    add_library(tune_${name} INTERFACE)
    target_include_directories(tune_${name} INTERFACE ${PROJECT_SOURCE_DIR}/include)
    target_link_libraries(tune_${name} INTERFACE ${M_DEPS} ${M_LIBS})
    if(M_TORCH)
      target_link_libraries(tune_${name} INTERFACE ${TORCH_LIBRARIES})
    endif()
    return()
  endif()
  add_library(tune_${name} STATIC ${srcs})
  target_include_directories(tune_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(tune_${name} PUBLIC ${M_DEPS} ${M_LIBS})
  target_compile_options(tune_${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(M_TORCH)
    target_link_libraries(tune_${name} PUBLIC ${TORCH_LIBRARIES})
    target_precompile_headers(tune_${name} REUSE_FROM tune_pch)
    tune_unity(tune_${name})
  endif()
endfunction()

# A LibTorch translation unit spends most of its compile time on the precompiled header (loading
# it, then generating the inline code it instantiates): ~15 s before the file's own code. Unity
# batches compile several sources as one, paying that once per batch (TUNE_UNITY=OFF for one object
# per source, e.g. while editing one file of a large module).
function(tune_unity target)
  if(TUNE_UNITY)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE ${TUNE_UNITY_BATCH})
  endif()
endfunction()

# Executables that use LibTorch share the same precompiled header.
# Executables would get -fPIE, which GCC refuses to mix with the -fPIC header, so they are
# compiled -fPIC too (linking an executable from PIC objects is fine).
function(tune_use_pch target)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
  target_compile_options(${target} PRIVATE -fPIC -Wall -Wextra -Wno-unused-parameter)
  target_precompile_headers(${target} REUSE_FROM tune_pch)
endfunction()
