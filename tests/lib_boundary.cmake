# Fails when a program outside lib/ (maasd, the CLI, the benchmarks) includes a private header of
# lib/ beyond the small part they may use: lib/util (JSON, POSIX files, logging, the annotated
# mutex, UTF-8, histograms, cores), the store's manifest (the CLI prints signatures) and SHA-256
# (a benchmark). Everything else they reach through the public headers (include/maas), so that
# the library's parts can change without breaking them.
#   cmake -DSOURCE_DIR=<repository root> -P lib_boundary.cmake
set(allowed "^(util/[a-z0-9_]+\\.h|store/manifest\\.h|store/sha256\\.h)$")
set(offenders "")
file(GLOB_RECURSE sources ${SOURCE_DIR}/maasd/*.h ${SOURCE_DIR}/maasd/*.cc ${SOURCE_DIR}/cli/*.h
     ${SOURCE_DIR}/cli/*.cc ${SOURCE_DIR}/bench/*.h ${SOURCE_DIR}/bench/*.cc)
foreach(source IN LISTS sources)
  file(STRINGS ${source} includes REGEX "^#include \"(store|session|batching|serving|util)/")
  foreach(line IN LISTS includes)
    string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" header "${line}")
    if(NOT header MATCHES "${allowed}")
      file(RELATIVE_PATH where ${SOURCE_DIR} ${source})
      list(APPEND offenders "${where}: ${header}")
    endif()
  endforeach()
endforeach()
if(offenders)
  list(JOIN offenders "\n  " text)
  message(FATAL_ERROR "these include lib/ headers beyond lib/util (see tests/lib_boundary.cmake):"
                      "\n  ${text}")
endif()
list(LENGTH sources checked)
message(STATUS "${checked} files outside lib/ checked: lib/util and the allowed store headers only")
