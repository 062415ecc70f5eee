# bindings.cmake — one ctest test per language binding (bindings/rust, go, csharp, python).
#
# Included from tests/CMakeLists.txt (after GPTQ_SHARED_DIR is set). Each test builds its binding
# with that language's own toolchain and runs its tests against the libgptq.so of this build.
# bindings/run_tests.sh exits 77 (skipped) with a message when the toolchain (cargo, go,
# mcs + mono, python3) is missing. Labelled "bindings" and "slow", so the sanitizer run (which
# leaves out "slow") does not load the sanitized library into foreign runtimes.
find_program(GPTQ_BASH bash)
if(NOT GPTQ_BASH)
  message(STATUS "bash not found: the bindings tests are not registered")
  return()
endif()

foreach(lang rust go csharp python)
  set(name bindings_${lang})
  add_test(NAME ${name} COMMAND ${GPTQ_BASH} ${CMAKE_SOURCE_DIR}/bindings/run_tests.sh ${lang})
  set_tests_properties(${name} PROPERTIES
      LABELS "bindings;slow"
      SKIP_RETURN_CODE 77
      TIMEOUT 600
      ENVIRONMENT "GPTQ_LIB_DIR=$<TARGET_FILE_DIR:gptq>;GPTQ_LIB=$<TARGET_FILE_DIR:gptq>/libgptq.so;GPTQ_SHARED_DIR=${GPTQ_SHARED_DIR};GPTQ_SOURCE_DIR=${CMAKE_SOURCE_DIR};GPTQ_BINDINGS_BUILD_DIR=${CMAKE_CURRENT_BINARY_DIR}/bindings;OMP_NUM_THREADS=2")
endforeach()
