# json_bench (issue 5): the API example's endpoints, serialize-per-request against JsonCache, on the
# same data in the same run; prints the ratios. Run it pinned with bench/run_json_bench.sh.
if(NOT TARGET api_lib AND EXISTS ${PROJECT_SOURCE_DIR}/examples/api/CMakeLists.txt)
  add_subdirectory(${PROJECT_SOURCE_DIR}/examples/api ${CMAKE_CURRENT_BINARY_DIR}/api_example)
endif()
if(TARGET api_lib)
  add_executable(json_bench json_bench.cpp)
  target_link_libraries(json_bench PRIVATE api_lib benchmark::benchmark)
  larder_target_warnings(json_bench)
endif()
