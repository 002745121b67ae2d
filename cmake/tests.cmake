find_package(GTest REQUIRED)
include(GoogleTest)

# Where the tests find ../shared/testdata, unpacked once into the build folder.
if(NOT KILN_TESTDATA)
  set(KILN_TESTDATA "$ENV{KILN_TESTDATA}")
endif()
if(NOT KILN_TESTDATA)
  get_filename_component(KILN_TESTDATA ${CMAKE_SOURCE_DIR}/../shared/testdata ABSOLUTE)
endif()
set(KILN_TESTDATA_DIR ${CMAKE_BINARY_DIR}/testdata)
foreach(_archive models onnx-conformance)
  if(EXISTS ${KILN_TESTDATA}/${_archive}.tar.gz AND NOT EXISTS ${KILN_TESTDATA_DIR}/${_archive})
    file(MAKE_DIRECTORY ${KILN_TESTDATA_DIR})
    execute_process(COMMAND ${CMAKE_COMMAND} -E tar xzf ${KILN_TESTDATA}/${_archive}.tar.gz
                    WORKING_DIRECTORY ${KILN_TESTDATA_DIR})
  elseif(EXISTS ${KILN_TESTDATA}/${_archive} AND NOT EXISTS ${KILN_TESTDATA_DIR}/${_archive})
    file(MAKE_DIRECTORY ${KILN_TESTDATA_DIR})
    file(CREATE_LINK ${KILN_TESTDATA}/${_archive} ${KILN_TESTDATA_DIR}/${_archive} SYMBOLIC)
  endif()
endforeach()

# Shared test helpers (tests/util): the test data and comparisons with its references
# (kiln_test_util), and device copies for gpu tests (kiln_cuda_test_util, below).
add_library(kiln_test_util STATIC tests/util/testdata.cc)
target_include_directories(kiln_test_util PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(kiln_test_util PUBLIC kiln kiln_onnx GTest::gtest)
target_compile_definitions(kiln_test_util PRIVATE KILN_TESTDATA_DIR="${KILN_TESTDATA_DIR}")

# Unit tests sit beside the code as foo_test.cc; each layer's tests form one binary.
# Tests needing a GPU are named *_gpu_test.cc and labelled gpu.
function(kiln_test_binary name dir)
  file(GLOB_RECURSE tests CONFIGURE_DEPENDS ${dir}/*_test.cc)
  list(FILTER tests EXCLUDE REGEX "_gpu_test\\.cc$")
  if(NOT tests)
    return()
  endif()
  add_executable(${name} ${tests})
  target_link_libraries(${name} PRIVATE ${ARGN} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE KILN_TESTDATA_DIR="${KILN_TESTDATA_DIR}"
                                             KILN_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  gtest_discover_tests(${name} PROPERTIES LABELS nogpu ENVIRONMENT "KILN_TESTDATA=${KILN_TESTDATA_DIR}"
                       DISCOVERY_TIMEOUT 60)
endfunction()

kiln_test_binary(core_test src/core kiln_core)
kiln_test_binary(platform_test src/platform kiln_platform)
kiln_test_binary(ir_test src/ir kiln_ir)
kiln_test_binary(onnx_test src/onnx kiln_onnx kiln_test_util)
kiln_test_binary(format_test src/format kiln_format kiln_onnx)
kiln_test_binary(cpu_backend_test src/backends/cpu kiln_backend_cpu kiln_onnx)
kiln_test_binary(compiler_test src/compiler kiln kiln_onnx kiln_test_util)
kiln_test_binary(runtime_test src/runtime kiln kiln_onnx kiln_test_util)
kiln_test_binary(model_test tests/models kiln kiln_onnx kiln_test_util)
kiln_test_binary(regress_test tests/regress kiln kiln_onnx)
kiln_test_binary(test_util_test tests/util kiln_test_util)

# Tests that need a GPU: *_gpu_test.cc, labelled gpu (run on the device machine, never in CI).
# Tests are listed when ctest runs (PRE_TEST), so building them needs no GPU either.
function(kiln_gpu_test_binary name)
  set(tests)
  foreach(dir ${KILN_GPU_TEST_DIRS})
    file(GLOB_RECURSE found CONFIGURE_DEPENDS ${dir}/*_gpu_test.cc)
    list(APPEND tests ${found})
  endforeach()
  if(NOT tests)
    return()
  endif()
  add_executable(${name} ${tests})
  target_link_libraries(${name} PRIVATE ${ARGN} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE KILN_TESTDATA_DIR="${KILN_TESTDATA_DIR}"
                                             KILN_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  gtest_discover_tests(${name} PROPERTIES LABELS gpu ENVIRONMENT "KILN_TESTDATA=${KILN_TESTDATA_DIR}"
                       DISCOVERY_MODE PRE_TEST)
endfunction()

if(TARGET kiln_backend_cuda)
  add_library(kiln_cuda_test_util STATIC tests/util/cuda_testing.cc)
  target_include_directories(kiln_cuda_test_util PUBLIC ${CMAKE_SOURCE_DIR})
  target_link_libraries(kiln_cuda_test_util PUBLIC kiln_backend_cuda kiln_core CUDA::cudart GTest::gtest)
  kiln_test_binary(cuda_backend_test src/backends/cuda kiln_backend_cuda kiln_backend_cpu)
  set(KILN_GPU_TEST_DIRS src/backends/cuda tests/models)
  kiln_gpu_test_binary(cuda_gpu_test kiln kiln_onnx kiln_backend_cuda kiln_conformance kiln_test_util
                       kiln_cuda_test_util)
endif()

# The Python package's tests run against the freshly built package in build/python.
if(TARGET _kiln)
  add_test(NAME python_tests
           COMMAND ${Python3_EXECUTABLE} -m pytest -q ${CMAKE_SOURCE_DIR}/tests/python)
  set_tests_properties(python_tests PROPERTIES LABELS nogpu
                       ENVIRONMENT "PYTHONPATH=${CMAKE_BINARY_DIR}/python;KILN_TESTDATA=${KILN_TESTDATA_DIR}")
endif()

# The CLI: unit tests of its pieces, and an end-to-end script over the shared models.
if(TARGET kiln_cli_lib)
  kiln_test_binary(cli_test tools/kiln kiln_cli_lib kiln_test_util)
  add_test(NAME cli_end_to_end
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/cli/cli_end_to_end.py
                   --kiln $<TARGET_FILE:kiln_cli> --models ${KILN_TESTDATA_DIR}/models)
  set_tests_properties(cli_end_to_end PROPERTIES LABELS nogpu TIMEOUT 900)
  add_test(NAME cli_runtime_settings
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/cli/cli_runtime_settings.py
                   --kiln $<TARGET_FILE:kiln_cli> --example ${CMAKE_SOURCE_DIR}/examples/tiny_classifier)
  set_tests_properties(cli_runtime_settings PROPERTIES LABELS nogpu TIMEOUT 600)
endif()

# The ONNX conformance suite on the CPU backend (issue #3): every case passes or is listed with a
# reason in tests/conformance/expected_unsupported.txt.
if(TARGET kiln_cli AND EXISTS ${KILN_TESTDATA_DIR}/onnx-conformance)
  add_test(NAME conformance_cpu
           COMMAND kiln_cli conformance ${KILN_TESTDATA_DIR}/onnx-conformance --backend cpu
                   --expected-unsupported ${CMAKE_SOURCE_DIR}/tests/conformance/expected_unsupported.txt
                   --report ${CMAKE_BINARY_DIR}/conformance_cpu.json)
  set_tests_properties(conformance_cpu PROPERTIES LABELS nogpu TIMEOUT 1800)
endif()
