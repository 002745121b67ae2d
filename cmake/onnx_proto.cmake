# Finds onnx.proto (from the installed onnx Python package, or Debian's libonnx-dev) and compiles
# it with protoc at build time, so every machine builds the importer the same way.
set(KILN_ONNX_PROTO "" CACHE FILEPATH "Path to onnx.proto (found automatically when empty)")
if(NOT KILN_ONNX_PROTO)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'onnx.proto'))"
    OUTPUT_VARIABLE _onnx_proto OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_onnx_proto AND EXISTS "${_onnx_proto}")
    set(KILN_ONNX_PROTO "${_onnx_proto}")
  elseif(EXISTS /usr/include/onnx/onnx.proto)
    set(KILN_ONNX_PROTO /usr/include/onnx/onnx.proto)
  else()
    message(FATAL_ERROR "onnx.proto not found: pip install onnx, or pass -DKILN_ONNX_PROTO=/path/to/onnx.proto")
  endif()
endif()
message(STATUS "kiln: onnx.proto from ${KILN_ONNX_PROTO}")

set(_proto_dir ${CMAKE_BINARY_DIR}/generated/onnxproto)
file(MAKE_DIRECTORY ${_proto_dir}/kiln_onnx)
# Copy under a private name so the generated header cannot clash with an installed onnx.pb.h.
configure_file(${KILN_ONNX_PROTO} ${_proto_dir}/kiln_onnx/onnx.proto COPYONLY)
add_custom_command(
  OUTPUT ${_proto_dir}/kiln_onnx/onnx.pb.cc ${_proto_dir}/kiln_onnx/onnx.pb.h
  COMMAND protobuf::protoc --cpp_out=${_proto_dir} -I${_proto_dir} ${_proto_dir}/kiln_onnx/onnx.proto
  DEPENDS ${_proto_dir}/kiln_onnx/onnx.proto
  COMMENT "protoc onnx.proto")
add_library(kiln_onnx_proto STATIC ${_proto_dir}/kiln_onnx/onnx.pb.cc)
target_include_directories(kiln_onnx_proto SYSTEM PUBLIC ${_proto_dir})
target_link_libraries(kiln_onnx_proto PUBLIC protobuf::libprotobuf)
target_compile_options(kiln_onnx_proto PRIVATE -w)
