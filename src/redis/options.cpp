// redis/options.cpp: RedisOptions from a URL, and their validation. Every message says what is
// wrong and shows the URL with its credentials replaced by "***".
#include "redis/options.hpp"

#include <fmt/format.h>

#include <charconv>
#include <stdexcept>
#include <string_view>

namespace larder {

namespace {

/// The URL with everything between "://" and the last '@' of the authority replaced by "***".
std::string redact(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == url.npos) {
    // Not a URL at all: it might be a bare secret, so do not echo it.
    return "<not a URL>";
  }
  const auto start = scheme_end + 3;
  const auto at = url.rfind('@');
  if (at == url.npos || at < start) return std::string(url);
  return fmt::format("{}***{}", url.substr(0, start), url.substr(at));
}

[[noreturn]] void bad_url(std::string_view url, std::string_view why) {
  throw std::invalid_argument(
      fmt::format("larder::RedisStore: bad URL '{}': {}", redact(url), why));
}

bool parse_int(std::string_view text, long long lo, long long hi, int& out) {
  long long v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || v < lo || v > hi)
    return false;
  out = static_cast<int>(v);
  return true;
}

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    unsigned v = 0;
    if (i + 2 >= in.size()) return false;
    auto [ptr, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16);
    if (ec != std::errc{} || ptr != in.data() + i + 3) return false;
    out += static_cast<char>(v);
    i += 2;
  }
  return true;
}

/// userinfo "user:password", ":password" or "password" (no ':' means a password, as redis-cli -u).
void parse_userinfo(std::string_view url, std::string_view info, RedisOptions& o) {
  const auto colon = info.find(':');
  std::string_view user = colon == info.npos ? std::string_view{} : info.substr(0, colon);
  std::string_view pass = colon == info.npos ? info : info.substr(colon + 1);
  if (!percent_decode(user, o.user) || !percent_decode(pass, o.password))
    bad_url(url, "bad %-escape in the user or password");
  if (o.password.empty()) bad_url(url, "empty password before '@'");
}

}  // namespace

RedisOptions RedisStore::parse_url(std::string_view url, RedisOptions o) {
  if (url.starts_with("redis://")) {
    std::string_view rest = url.substr(8);
    // The userinfo ends at the last '@' (a host, port or db has none), as redact() sees it: a
    // password with '/' or '?' (base64 secrets) is the password, never parsed (and echoed in an
    // error) as a host, port or database.
    if (const auto at = rest.rfind('@'); at != rest.npos) {
      parse_userinfo(url, rest.substr(0, at), o);
      rest = rest.substr(at + 1);
    }
    if (rest.find('?') != rest.npos) bad_url(url, "redis:// URLs take no query string");
    const auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == rest.npos ? std::string_view{} : rest.substr(slash + 1);
    std::string_view host = authority;
    std::string_view port;
    if (authority.starts_with('[')) {  // [IPv6]:port
      const auto close = authority.find(']');
      if (close == authority.npos) bad_url(url, "unclosed '[' in the host");
      host = authority.substr(1, close - 1);
      std::string_view after = authority.substr(close + 1);
      if (!after.empty()) {
        if (after[0] != ':') bad_url(url, "expected ':port' after ']'");
        port = after.substr(1);
        if (port.empty()) bad_url(url, "empty port after ':'");
      }
    } else if (const auto colon = authority.rfind(':'); colon != authority.npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (port.empty()) bad_url(url, "empty port after ':'");
    }
    if (host.empty()) bad_url(url, "no host");
    o.host = std::string(host);
    o.unix_socket.clear();
    if (!port.empty() && !parse_int(port, 1, 65535, o.port))
      bad_url(url, fmt::format("port '{}' is not a number in 1-65535", port));
    if (port.empty()) o.port = 6379;
    if (!path.empty() && !parse_int(path, 0, 1'000'000, o.db))
      bad_url(url, fmt::format("database '{}' is not a number >= 0", path));
  } else if (url.starts_with("unix://")) {
    std::string_view rest = url.substr(7);
    if (!rest.starts_with('/')) {
      // The userinfo ends at the last "@/", as redact() sees it (at the last '@'): a password
      // containing "@/" is the password, never part of the socket path echoed in errors.
      const auto at = rest.rfind("@/");
      if (at == rest.npos) bad_url(url, "the socket path must be absolute (unix:///path)");
      parse_userinfo(url, rest.substr(0, at), o);
      rest = rest.substr(at + 1);
    }
    std::string_view path = rest;
    if (const auto q = rest.find('?'); q != rest.npos) {
      path = rest.substr(0, q);
      std::string_view query = rest.substr(q + 1);
      if (!query.starts_with("db=")) bad_url(url, "the only query parameter is db=N");
      if (!parse_int(query.substr(3), 0, 1'000'000, o.db))
        bad_url(url, fmt::format("database '{}' is not a number >= 0", query.substr(3)));
    }
    if (path.size() < 2) bad_url(url, "no socket path");
    o.unix_socket = std::string(path);
  } else {
    bad_url(url, "must start with redis:// or unix://");
  }
  return o;
}

namespace redis {

void validate(const RedisOptions& o) {
  auto bad = [](const std::string& what) {
    throw std::invalid_argument("larder::RedisOptions: " + what);
  };
  using std::chrono::milliseconds;
  if (o.unix_socket.empty()) {
    if (o.host.empty()) bad("host must not be empty (or set unix_socket)");
    if (o.port < 1 || o.port > 65535) bad(fmt::format("port must be in 1-65535 (got {})", o.port));
  } else if (o.unix_socket.front() != '/') {
    bad("unix_socket must be an absolute path (got '" + o.unix_socket + "')");
  }
  if (o.password.empty() && !o.user.empty()) bad("user '" + o.user + "' needs a password");
  if (o.db < 0) bad(fmt::format("db must be >= 0 (got {})", o.db));
  if (o.connect_timeout <= milliseconds{0})
    bad(fmt::format("connect_timeout must be > 0 (got {} ms)", o.connect_timeout.count()));
  if (o.command_timeout <= milliseconds{0})
    bad(fmt::format("command_timeout must be > 0 (got {} ms)", o.command_timeout.count()));
  if (o.pool_size < 1) bad("pool_size must be >= 1 (got 0)");
  if (o.pool_wait_timeout < milliseconds{0})
    bad(fmt::format("pool_wait_timeout must be >= 0 (got {} ms)", o.pool_wait_timeout.count()));
  if (o.breaker_failures < 1)
    bad(fmt::format("breaker_failures must be >= 1 (got {})", o.breaker_failures));
  if (o.breaker_cooldown <= milliseconds{0})
    bad(fmt::format("breaker_cooldown must be > 0 (got {} ms)", o.breaker_cooldown.count()));
  if (o.key_prefix.size() > 256)
    bad(fmt::format("key_prefix must be at most 256 bytes (got {})", o.key_prefix.size()));
}

std::string endpoint_of(const RedisOptions& o) {
  if (!o.unix_socket.empty()) return "unix:" + o.unix_socket;
  if (o.host.find(':') != std::string::npos) return fmt::format("[{}]:{}", o.host, o.port);
  return fmt::format("{}:{}", o.host, o.port);
}

}  // namespace redis
}  // namespace larder
