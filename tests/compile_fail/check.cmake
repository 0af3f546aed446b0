# Compiles SOURCE and passes only if compilation fails with EXPECT in the diagnostics.
execute_process(
  COMMAND ${CXX} -std=c++20 -fsyntax-only ${FLAGS} ${SOURCE}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but must not")
endif()
string(FIND "${out}${err}" "${EXPECT}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "${SOURCE} failed without the expected message '${EXPECT}':\n${err}")
endif()
message(STATUS "${SOURCE}: refused with '${EXPECT}'")
