# Fails when a built library or program depends on a symbol that the official LibTorch builds
# can shadow or mismatch:
# - an out-of-line std::filesystem operation (path's own members and filesystem_error aside):
#   libtorch.so exports its own copies, and a call may resolve there (lib/util/posix_files.h);
# - anything of fmt's compiled library: maas uses fmt header-only, because those LibTorch builds
#   put fmt headers of another major version ahead of the system's, so that code compiled
#   against them and linked against the system's libfmt does not link, or mixes two versions.
#   cmake -DNM=<nm> -DFILES="<a>;<b>;..." -P check_symbols.cmake
set(offenders "")
foreach(file IN LISTS FILES)
  execute_process(COMMAND ${NM} --undefined-only ${file}
                  OUTPUT_VARIABLE listing RESULT_VARIABLE failed)
  if(failed)
    message(FATAL_ERROR "cannot list the symbols of ${file}")
  endif()
  string(REGEX MATCHALL "U _ZNK?(St10filesystem|3fmt)[A-Za-z0-9_]*" matches "${listing}")
  foreach(match IN LISTS matches)
    string(REGEX REPLACE "^U " "" name "${match}")
    if(name MATCHES "^_ZNK?St10filesystem(7__cxx11)?4path" OR name MATCHES "filesystem_error")
      continue()
    endif()
    list(APPEND offenders "${file}: ${name}")
  endforeach()
endforeach()
list(LENGTH FILES checked)
if(offenders)
  list(REMOVE_DUPLICATES offenders)
  list(JOIN offenders "\n  " text)
  message(FATAL_ERROR "these depend on std::filesystem operations or on fmt's library "
                      "(c++filt names them; see tests/check_symbols.cmake for why):\n  ${text}")
endif()
message(STATUS "${checked} files checked: no std::filesystem operation, no fmt library symbol")
