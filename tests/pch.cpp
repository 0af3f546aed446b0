// The object whose build makes the tests' precompiled header (tests/CMakeLists.txt).
