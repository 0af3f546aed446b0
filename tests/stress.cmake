# Concurrency stress tests of MemoryStore and Cached: bounded by operation counts, meant for the
# sanitizer builds (LARDER_SANITIZE=thread, address;undefined).
larder_add_test(larder_stress_tests LABEL memory SOURCES memory_stress_test.cpp TIMEOUT 120)
# Allocation failures inside MemoryStore (replaces the global operator new: an executable of its own).
larder_add_test(larder_memory_oom_tests LABEL memory SOURCES memory_oom_test.cpp TIMEOUT 60)
