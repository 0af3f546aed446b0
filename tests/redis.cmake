# [redis] tests: a real redis-server started by the tests themselves (tests/support/redis_server.hpp).
# `ctest -L redis` runs them, `ctest -LE redis` leaves them out. They need the larder_redis target.
if(TARGET larder_redis)
  add_executable(redis_stampede_helper redis_stampede_helper.cpp)
  target_link_libraries(redis_stampede_helper PRIVATE larder::redis)
  larder_target_warnings(redis_stampede_helper)

  larder_add_test(larder_redis_tests LABEL redis TIMEOUT 120
    SOURCES redis_store_test.cpp
    LIBS larder::redis PkgConfig::hiredis)
  add_dependencies(larder_redis_tests redis_stampede_helper)
  target_compile_definitions(larder_redis_tests PRIVATE
    LARDER_STAMPEDE_HELPER="$<TARGET_FILE:redis_stampede_helper>")

  # Invalidation across instances (RedisStore's bus): in-process instances, and another process.
  add_executable(redis_invalidation_helper redis_invalidation_helper.cpp)
  target_link_libraries(redis_invalidation_helper PRIVATE larder::redis)
  larder_target_warnings(redis_invalidation_helper)
  larder_add_test(larder_redis_invalidation_tests LABEL redis TIMEOUT 120
    SOURCES redis_invalidation_test.cpp
    LIBS larder::redis PkgConfig::hiredis)
  add_dependencies(larder_redis_invalidation_tests redis_invalidation_helper)
  target_compile_definitions(larder_redis_invalidation_tests PRIVATE
    LARDER_INVALIDATION_HELPER="$<TARGET_FILE:redis_invalidation_helper>")
endif()

# RedisStore out of memory or out of threads: its own executable (it replaces operator new and
# pthread_create), and a FakeRedis for a server. Sanitizer runtimes intercept pthread_create
# themselves: with one, the thread test is left out.
if(TARGET larder_redis)
  larder_add_test(larder_redis_fault_tests LABEL redis TIMEOUT 60
    SOURCES redis_fault_test.cpp
    LIBS larder::redis ${CMAKE_DL_LIBS})
  if(LARDER_SANITIZE)
    target_compile_definitions(larder_redis_fault_tests PRIVATE LARDER_NO_THREAD_INTERPOSITION)
  endif()
endif()
