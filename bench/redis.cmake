# redis_bench: a Redis hit through Cached against a raw hiredis GET of the same bytes, and a batch
# read (MGET) against N single reads. Starts its own redis-server; run it pinned with
# bench/run_redis_bench.sh.
if(TARGET larder_redis)
  add_executable(redis_bench redis_bench.cpp)
  target_link_libraries(redis_bench PRIVATE larder::redis PkgConfig::hiredis benchmark::benchmark)
  target_include_directories(redis_bench PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  larder_target_warnings(redis_bench)
endif()
