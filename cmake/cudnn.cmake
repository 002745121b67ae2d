# cuDNN 9 for the CUDA backend's convolutions (docs/cuda_backend.md, "Convolution").
#
# KILN_WITH_CUDNN: AUTO (default: use cuDNN when found), ON (fail when not found), OFF.
# Hints, first match wins: -DCUDNN_ROOT=DIR (or the environment variable CUDNN_ROOT / CUDNN_PATH),
# the CUDA toolkit's own folders, the Python package nvidia.cudnn (PyTorch's wheels carry it), then
# the system paths. DIR holds include/cudnn.h and lib/ or lib64/ with libcudnn.so[.9].
#
# kiln compiles against cuDNN's headers and loads the library at run time (dlopen): first the file
# found here (KILN_CUDNN_LIBRARY, baked into the binary), then "libcudnn.so.9" through the normal
# search path (the binaries also get the library's folder as an rpath). A machine without cuDNN
# runs the JIT convolution kernels instead. Sets KILN_CUDNN_FOUND, KILN_CUDNN_INCLUDE_DIR,
# KILN_CUDNN_LIBRARY, KILN_CUDNN_VERSION.

set(KILN_WITH_CUDNN AUTO CACHE STRING "Use cuDNN for CUDA convolutions: AUTO, ON or OFF")
set_property(CACHE KILN_WITH_CUDNN PROPERTY STRINGS AUTO ON OFF)
set(CUDNN_ROOT "" CACHE PATH "Folder holding cuDNN 9 (include/, lib/ or lib64/)")

set(KILN_CUDNN_FOUND OFF)
set(_kiln_cudnn_why "")

if(KILN_WITH_CUDNN STREQUAL "OFF")
  set(_kiln_cudnn_why "KILN_WITH_CUDNN=OFF")
else()
  set(_hints ${CUDNN_ROOT} $ENV{CUDNN_ROOT} $ENV{CUDNN_PATH})
  if(CUDAToolkit_INCLUDE_DIRS)
    list(APPEND _hints ${CUDAToolkit_LIBRARY_ROOT})
    foreach(_inc ${CUDAToolkit_INCLUDE_DIRS})
      get_filename_component(_up ${_inc} DIRECTORY)
      list(APPEND _hints ${_up})
    endforeach()
  endif()
  if(Python3_EXECUTABLE)
    execute_process(
      COMMAND ${Python3_EXECUTABLE} -c
              "import nvidia.cudnn as m, os; print(os.path.dirname(m.__file__ or '') or list(m.__path__)[0])"
      OUTPUT_VARIABLE _py_cudnn OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _py_rc)
    if(_py_rc EQUAL 0 AND IS_DIRECTORY "${_py_cudnn}")
      list(APPEND _hints ${_py_cudnn})
    endif()
  endif()
  # Not cached: a later configure with another hint searches again.
  unset(KILN_CUDNN_INCLUDE_DIR)
  unset(KILN_CUDNN_INCLUDE_DIR CACHE)
  unset(KILN_CUDNN_LIBRARY)
  unset(KILN_CUDNN_LIBRARY CACHE)
  find_path(KILN_CUDNN_INCLUDE_DIR cudnn.h HINTS ${_hints} PATH_SUFFIXES include NO_CACHE)
  if(KILN_CUDNN_INCLUDE_DIR)
    string(REGEX REPLACE "/+$" "" KILN_CUDNN_INCLUDE_DIR "${KILN_CUDNN_INCLUDE_DIR}")
    # The library beside these headers: the wheel ships only libcudnn.so.9 (no unversioned link).
    get_filename_component(_root ${KILN_CUDNN_INCLUDE_DIR} DIRECTORY)
    find_library(KILN_CUDNN_LIBRARY NAMES libcudnn.so.9 cudnn
                 HINTS ${_root} ${_hints} PATH_SUFFIXES lib64 lib lib/x64 NO_CACHE)
  endif()
  if(NOT KILN_CUDNN_INCLUDE_DIR)
    set(_kiln_cudnn_why "cudnn.h not found (searched: ${_hints} and the system paths; set CUDNN_ROOT)")
  elseif(NOT EXISTS ${KILN_CUDNN_INCLUDE_DIR}/cudnn_version.h)
    set(_kiln_cudnn_why "${KILN_CUDNN_INCLUDE_DIR} has no cudnn_version.h (cuDNN older than 8)")
  elseif(NOT KILN_CUDNN_LIBRARY)
    set(_kiln_cudnn_why "headers at ${KILN_CUDNN_INCLUDE_DIR} but no libcudnn.so.9 beside them")
  else()
    file(READ ${KILN_CUDNN_INCLUDE_DIR}/cudnn_version.h _ver)
    string(REGEX MATCH "define CUDNN_MAJOR +([0-9]+)" _m "${_ver}")
    set(_major ${CMAKE_MATCH_1})
    string(REGEX MATCH "define CUDNN_MINOR +([0-9]+)" _m "${_ver}")
    set(_minor ${CMAKE_MATCH_1})
    string(REGEX MATCH "define CUDNN_PATCHLEVEL +([0-9]+)" _m "${_ver}")
    set(KILN_CUDNN_VERSION "${_major}.${_minor}.${CMAKE_MATCH_1}")
    if(NOT _major EQUAL 9)
      set(_kiln_cudnn_why "cuDNN ${KILN_CUDNN_VERSION} at ${KILN_CUDNN_INCLUDE_DIR}: kiln needs cuDNN 9")
    else()
      set(KILN_CUDNN_FOUND ON)
    endif()
  endif()
endif()

if(KILN_CUDNN_FOUND)
  message(STATUS "kiln: cuDNN ${KILN_CUDNN_VERSION}: headers ${KILN_CUDNN_INCLUDE_DIR}, "
                 "library ${KILN_CUDNN_LIBRARY} (loaded at run time)")
elseif(KILN_WITH_CUDNN STREQUAL "ON")
  message(FATAL_ERROR "kiln: KILN_WITH_CUDNN=ON but no usable cuDNN: ${_kiln_cudnn_why}")
else()
  message(STATUS "kiln: no cuDNN (${_kiln_cudnn_why}); CUDA convolutions use the JIT kernels only")
endif()

# kiln_use_cudnn(target): compiles `target` against cuDNN (PRIVATE) when found; always links the
# dynamic loader, which the run-time loading needs.
function(kiln_use_cudnn target)
  target_link_libraries(${target} PRIVATE ${CMAKE_DL_LIBS})
  if(NOT KILN_CUDNN_FOUND)
    return()
  endif()
  target_include_directories(${target} PRIVATE ${KILN_CUDNN_INCLUDE_DIR})
  target_compile_definitions(${target} PRIVATE KILN_HAVE_CUDNN=1
                             KILN_CUDNN_LIBRARY="${KILN_CUDNN_LIBRARY}"
                             KILN_CUDNN_BUILD_VERSION="${KILN_CUDNN_VERSION}")
  get_filename_component(_dir ${KILN_CUDNN_LIBRARY} DIRECTORY)
  target_link_options(${target} INTERFACE "LINKER:-rpath,${_dir}")
endfunction()
