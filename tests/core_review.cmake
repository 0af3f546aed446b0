# Regression tests of the core review (Cached, single-flight, held arguments, codec): each one
# failed before the fix it names.
larder_add_test(larder_core_review_tests LABEL core SOURCES core_review_test.cpp TIMEOUT 300)
# Its own executable: it replaces the global operator new (tests/support/failing_new.hpp).
larder_add_test(larder_core_oom_tests LABEL core SOURCES core_oom_test.cpp TIMEOUT 120)
