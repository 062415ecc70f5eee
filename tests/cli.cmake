# tests/cli.cmake — the example programs end to end: every tool's --help, errors on bad input,
# golden greedy generation, perplexity, quantize-then-generate, and a tmux chat session.
# Included by tests/CMakeLists.txt; registered only when the examples are built.
# (The helpers' unit tests, test_chat_templates and test_example_common, need nothing from here.)
if(TARGET gptq-chat)
  add_test(NAME test_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_cli.sh $<TARGET_FILE_DIR:gptq-chat>)
  set_tests_properties(test_cli PROPERTIES SKIP_RETURN_CODE 77 LABELS "cli" TIMEOUT 900
      ENVIRONMENT "GPTQ_SHARED_DIR=${GPTQ_SHARED_DIR};OMP_NUM_THREADS=2")
endif()
