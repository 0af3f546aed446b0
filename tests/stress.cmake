# Concurrency stress tests of MemoryStore and Cached: bounded by operation counts, meant for the
# sanitizer builds (LARDER_SANITIZE=thread, address;undefined).
larder_add_test(larder_stress_tests LABEL memory SOURCES memory_stress_test.cpp TIMEOUT 120)
