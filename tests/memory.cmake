# MemoryStore policy tests (issue 6): bounds, weights, TTL, scan resistance, concurrency.
larder_add_test(larder_memory_tests LABEL memory SOURCES memory_policy_test.cpp TIMEOUT 120)
