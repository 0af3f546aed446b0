# Issue 5: pre-serialized JSON (JsonCache), the background warmer, and the HTTP API example run as
# a child process.
larder_add_test(larder_json_tests LABEL json SOURCES json_cache_test.cpp warmer_test.cpp TIMEOUT 120)
