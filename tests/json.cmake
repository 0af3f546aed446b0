# Issue 5: pre-serialized JSON (JsonCache), the background warmer, and the HTTP API example run as
# a child process.
larder_add_test(larder_json_tests LABEL json SOURCES json_cache_test.cpp warmer_test.cpp TIMEOUT 120)

# The example's targets come from examples/api; build them here when examples are off (the
# sanitizer builds), so that the service also runs under ASan and TSan.
if(NOT LARDER_BUILD_EXAMPLES)
  add_subdirectory(${PROJECT_SOURCE_DIR}/examples/api ${CMAKE_CURRENT_BINARY_DIR}/api_example)
endif()

include(${PROJECT_SOURCE_DIR}/examples/api/httplib.cmake)
if(TARGET larder_httplib)
  larder_add_test(larder_api_tests LABEL json SOURCES api_test.cpp LIBS api_lib TIMEOUT 300)
  add_dependencies(larder_api_tests api_server)
  target_compile_definitions(larder_api_tests PRIVATE
    LARDER_API_SERVER_BIN="$<TARGET_FILE:api_server>")
endif()

# [redis] JsonCache over a real redis-server, and the API example in --redis mode.
if(TARGET larder_httplib AND TARGET larder_redis)
  larder_add_test(larder_json_redis_tests LABEL redis SOURCES json_redis_test.cpp
    LIBS api_lib larder::redis PkgConfig::hiredis TIMEOUT 300)
  add_dependencies(larder_json_redis_tests api_server)
  target_compile_definitions(larder_json_redis_tests PRIVATE
    LARDER_API_SERVER_BIN="$<TARGET_FILE:api_server>")
endif()
