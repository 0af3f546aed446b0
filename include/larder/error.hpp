// error.hpp: the exceptions larder throws.
// A miss is never an exception (it is std::nullopt); these name failures.
#pragma once

#include <stdexcept>

namespace larder {

/// Base of every exception larder itself throws (not of those your function throws: they propagate
/// unchanged).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// I/O or protocol failure of a store. `Cached` catches it, counts it, reports it to `on_error`,
/// and computes the value itself: a caller of `Cached` never sees it.
class StoreError : public Error {
 public:
  using Error::Error;
};

/// Cached bytes did not decode (garbage, another deploy's format, a key collision). Counted as a
/// miss.
class DecodeError : public Error {
 public:
  using Error::Error;
};

/// The key is cold, another caller is computing it, and the policy says not to wait (or the wait
/// bound ran out). Nothing was computed by this call.
class ColdCacheError : public Error {
 public:
  using Error::Error;
};

}  // namespace larder
