# Issue 4: bulk get-or-compute, the rehydrating wrapper (with a repository double and with the
# bookshop's SQLite repository), and the bookshop demo run in its short mode.
larder_add_test(larder_bulk_tests LABEL bookshop SOURCES bulk_test.cpp TIMEOUT 120)

# The demo's targets come from examples/bookshop; build them here when examples are off (the
# sanitizer builds), so that the demo also runs under ASan and TSan.
if(NOT LARDER_BUILD_EXAMPLES)
  add_subdirectory(${PROJECT_SOURCE_DIR}/examples/bookshop ${CMAKE_CURRENT_BINARY_DIR}/bookshop_demo)
endif()

larder_add_test(larder_rehydrate_tests LABEL bookshop SOURCES rehydrate_test.cpp LIBS bookshop_lib
  TIMEOUT 120)

larder_add_test(larder_bookshop_tests LABEL bookshop SOURCES bookshop_test.cpp TIMEOUT 240)
add_dependencies(larder_bookshop_tests bookshop)
target_compile_definitions(larder_bookshop_tests PRIVATE LARDER_BOOKSHOP_BIN="$<TARGET_FILE:bookshop>")
target_link_libraries(larder_bookshop_tests PRIVATE nlohmann_json::nlohmann_json)
