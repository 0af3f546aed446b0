// model.hpp: the API's entities: a Foo has Bars, a Bar has Zabs, a Zab has Bazs. One Foo serializes
// to 1 KB - 2 MB of JSON. to_json is nlohmann's: serializing a Foo is `nlohmann::json(foo).dump()`.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace api {

struct Baz {
  std::int64_t id = 0;
  std::string code;
  double amount = 0;
  std::int64_t qty = 0;
};

struct Zab {
  std::int64_t id = 0;
  std::string label;
  std::int64_t rank = 0;
  std::vector<Baz> bazs;
};

struct Bar {
  std::int64_t id = 0;
  std::string name;
  std::string status;
  std::vector<Zab> zabs;
};

struct Foo {
  std::int64_t id = 0;
  std::string name;
  std::string description;
  std::int64_t touched = 0;  // bumped by POST /foos/{id}/touch
  std::vector<Bar> bars;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Baz, id, code, amount, qty)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Zab, id, label, rank, bazs)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Bar, id, name, status, zabs)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Foo, id, name, description, touched, bars)

}  // namespace api
