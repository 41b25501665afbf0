# Run by CTest: install the build tree into WORK_DIR/prefix, then configure, build and run the
# consumer project against it with find_package(maas CONFIG REQUIRED).
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "command failed (${result}): ${ARGN}\n${out}\n${err}")
  endif()
  set(LAST_OUTPUT "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install ${MAAS_BINARY_DIR} --prefix ${WORK_DIR}/prefix)
# The prefixes and flags go through an initial cache file: a list cannot pass through run()'s arguments.
string(REPLACE "|" ";" prefixes "${WORK_DIR}/prefix|${DEPENDENCY_PREFIXES}")
file(WRITE ${WORK_DIR}/prefixes.cmake
  "set(CMAKE_PREFIX_PATH \"${prefixes}\" CACHE STRING \"\")\n"
  "set(CMAKE_CXX_FLAGS \"${CONSUMER_CXX_FLAGS}\" CACHE STRING \"\")\n"
  "set(CMAKE_EXE_LINKER_FLAGS \"${CONSUMER_LINKER_FLAGS}\" CACHE STRING \"\")\n")
# The CUDA toolkit this build used (a CUDA LibTorch's config needs one): the consumer uses it too.
if(CONSUMER_CUDA_ROOT)
  file(APPEND ${WORK_DIR}/prefixes.cmake
    "set(CUDAToolkit_ROOT \"${CONSUMER_CUDA_ROOT}\" CACHE PATH \"\")\n"
    "set(CUDA_TOOLKIT_ROOT_DIR \"${CONSUMER_CUDA_ROOT}\" CACHE PATH \"\")\n"
    "set(CMAKE_CUDA_COMPILER \"${CONSUMER_CUDA_ROOT}/bin/nvcc\" CACHE FILEPATH \"\")\n")
endif()
run(${CMAKE_COMMAND} -C ${WORK_DIR}/prefixes.cmake -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build
    -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer ${WORK_DIR}/store)
if(NOT LAST_OUTPUT MATCHES "maas ${EXPECTED_VERSION}")
  message(FATAL_ERROR "consumer printed '${LAST_OUTPUT}', expected 'maas ${EXPECTED_VERSION}'")
endif()
message(STATUS "consumer built against the installed package: ${LAST_OUTPUT}")
