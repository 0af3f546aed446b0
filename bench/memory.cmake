# MemoryStore microbenchmarks (issue 6): larder's hit path vs absl::flat_hash_map (the floor),
# std::unordered_map + mutex, an LRU list + mutex and tbb::concurrent_lru_cache.
find_package(absl CONFIG QUIET)
find_package(TBB CONFIG QUIET)
if(absl_FOUND AND TBB_FOUND)
  add_executable(memory_bench memory_bench.cpp)
  target_link_libraries(memory_bench PRIVATE larder::larder benchmark::benchmark absl::flat_hash_map
                                             TBB::tbb)
  larder_target_warnings(memory_bench)
else()
  message(STATUS "larder: memory_bench skipped (needs libabsl-dev and libtbb-dev)")
endif()
