# LibTorch from a Python environment's torch package (a PyPI wheel, as scripts/install-deps
# installs): included by the top-level CMakeLists.txt when MAAS_TORCH_PYTHON names that Python.
#
# It adds the wheel's CMake config to CMAKE_PREFIX_PATH. A CUDA wheel's config also needs a CUDA
# toolkit: when the environment holds NVIDIA's toolkit wheels beside torch (nvidia/cu*/bin/nvcc,
# from nvidia-cuda-nvcc and nvidia-nvvm), the build uses them, so that it needs no system CUDA
# and links the very CUDA libraries the wheel runs with. Their library folder lacks the
# unversioned names (libcudart.so) that find_library looks for: a view of the toolkit in the
# build folder adds them, leaving the environment untouched.

execute_process(
  COMMAND "${MAAS_TORCH_PYTHON}" -c
          "import os, torch; print(torch.utils.cmake_prefix_path); print(os.path.dirname(os.path.dirname(torch.__file__))); print(torch.__version__)"
  OUTPUT_VARIABLE torch_python_out
  ERROR_VARIABLE torch_python_err
  RESULT_VARIABLE torch_python_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT torch_python_rc EQUAL 0)
  message(FATAL_ERROR "MAAS_TORCH_PYTHON=${MAAS_TORCH_PYTHON} cannot import torch:\n${torch_python_err}")
endif()
string(REPLACE "\n" ";" torch_python_out "${torch_python_out}")
list(GET torch_python_out 0 torch_cmake_prefix)
list(GET torch_python_out 1 torch_site_packages)
list(GET torch_python_out 2 torch_python_version)
message(STATUS "maas: LibTorch of torch ${torch_python_version} from ${MAAS_TORCH_PYTHON}")
list(PREPEND CMAKE_PREFIX_PATH "${torch_cmake_prefix}")

file(GLOB torch_wheel_nvccs "${torch_site_packages}/nvidia/cu*/bin/nvcc")
if(torch_wheel_nvccs AND NOT CUDAToolkit_ROOT AND NOT CMAKE_CUDA_COMPILER)
  list(GET torch_wheel_nvccs 0 torch_wheel_nvcc)
  get_filename_component(torch_wheel_cuda "${torch_wheel_nvcc}" DIRECTORY)
  get_filename_component(torch_wheel_cuda "${torch_wheel_cuda}" DIRECTORY)
  set(cuda_view "${CMAKE_BINARY_DIR}/cuda-toolkit")
  file(MAKE_DIRECTORY "${cuda_view}/lib")
  foreach(part bin include nvvm)
    if(EXISTS "${torch_wheel_cuda}/${part}" AND NOT EXISTS "${cuda_view}/${part}")
      file(CREATE_LINK "${torch_wheel_cuda}/${part}" "${cuda_view}/${part}" SYMBOLIC)
    endif()
  endforeach()
  file(GLOB cuda_libs RELATIVE "${torch_wheel_cuda}/lib" "${torch_wheel_cuda}/lib/*")
  foreach(lib ${cuda_libs})
    if(NOT EXISTS "${cuda_view}/lib/${lib}")
      file(CREATE_LINK "${torch_wheel_cuda}/lib/${lib}" "${cuda_view}/lib/${lib}" SYMBOLIC)
    endif()
    # libcudart.so.13 -> also libcudart.so
    string(REGEX REPLACE "\\.so\\.[0-9.]+$" ".so" unversioned "${lib}")
    if(NOT unversioned STREQUAL lib AND NOT EXISTS "${cuda_view}/lib/${unversioned}")
      file(CREATE_LINK "${torch_wheel_cuda}/lib/${lib}" "${cuda_view}/lib/${unversioned}" SYMBOLIC)
    endif()
  endforeach()
  set(CUDAToolkit_ROOT "${cuda_view}" CACHE PATH "The CUDA toolkit (from the torch wheel's environment)")
  set(CUDA_TOOLKIT_ROOT_DIR "${cuda_view}" CACHE PATH "The CUDA toolkit, for LibTorch's FindCUDA")
  set(CMAKE_CUDA_COMPILER "${cuda_view}/bin/nvcc" CACHE FILEPATH "nvcc (from the torch wheel's environment)")
  message(STATUS "maas: the CUDA toolkit of the same environment: ${torch_wheel_cuda}")
endif()
