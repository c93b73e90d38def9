# Defines reef::torch, the libtorch every tensor-using layer links.
#
# Two routes:
#  - find_package(Torch): with REEF_CUDA=ON, or when the caller points CMake at a libtorch
#    (CMAKE_PREFIX_PATH / Torch_DIR). This is the route for CUDA builds and any libtorch 2.x.
#  - the pinned `torch` wheel in the venv, linked directly (libtorch_cpu + libc10): the wheel's
#    CMake config insists on a CUDA toolkit matching its build, which a CPU machine lacks.
if(REEF_CUDA OR Torch_DIR OR CMAKE_PREFIX_PATH)
  if(NOT Torch_DIR AND NOT CMAKE_PREFIX_PATH AND EXISTS "${REEF_PYTHON}")
    execute_process(COMMAND "${REEF_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                    OUTPUT_VARIABLE _tp OUTPUT_STRIP_TRAILING_WHITESPACE)
    list(APPEND CMAKE_PREFIX_PATH "${_tp}")
  endif()
  find_package(Torch REQUIRED)
  add_library(reef_torch INTERFACE)
  target_link_libraries(reef_torch INTERFACE ${TORCH_LIBRARIES})
  target_compile_options(reef_torch INTERFACE ${TORCH_CXX_FLAGS})
  if(REEF_CUDA)
    target_compile_definitions(reef_torch INTERFACE REEF_WITH_CUDA=1)
  endif()
  message(STATUS "reef: libtorch via find_package(Torch) ${Torch_VERSION}")
else()
  if(NOT EXISTS "${REEF_PYTHON}")
    message(FATAL_ERROR "reef: no venv python at ${REEF_PYTHON}; run scripts/setup.sh, "
                        "or pass -DCMAKE_PREFIX_PATH=<libtorch>")
  endif()
  execute_process(
    COMMAND "${REEF_PYTHON}" -c "import os, torch; print(os.path.dirname(torch.__file__)); print(int(torch._C._GLIBCXX_USE_CXX11_ABI)); print(torch.__version__)"
    OUTPUT_VARIABLE _out OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "reef: ${REEF_PYTHON} cannot import torch; run scripts/setup.sh")
  endif()
  string(REPLACE "\n" ";" _out "${_out}")
  list(GET _out 0 TORCH_ROOT)
  list(GET _out 1 _abi)
  list(GET _out 2 _ver)
  add_library(reef_torch INTERFACE)
  target_include_directories(reef_torch SYSTEM INTERFACE
      "${TORCH_ROOT}/include" "${TORCH_ROOT}/include/torch/csrc/api/include")
  target_link_libraries(reef_torch INTERFACE
      "${TORCH_ROOT}/lib/libtorch_cpu.so" "${TORCH_ROOT}/lib/libc10.so" Threads::Threads)
  target_link_options(reef_torch INTERFACE "-Wl,-rpath,${TORCH_ROOT}/lib")
  target_compile_definitions(reef_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${_abi})
  message(STATUS "reef: libtorch ${_ver} (CPU) from ${TORCH_ROOT}")
endif()
add_library(reef::torch ALIAS reef_torch)
