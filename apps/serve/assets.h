// The files of the page, compiled into the binary by cmake/embed_assets.cmake (the build writes
// the array source from apps/serve/static/* and docs/openapi.json). The server answers a GET only
// from this set: no path is ever joined onto a folder, so there is nothing to traverse.
#pragma once
#include <cstddef>
#include <span>
#include <string_view>

namespace emotune {

struct Asset {
  std::string_view path;          // "/index.html", "/app.js", "/openapi.json", ...
  std::string_view content_type;  // from the extension
  const unsigned char* data;
  size_t size;
};

std::span<const Asset> embedded_assets();

// The asset served at `path` ("/" is "/index.html"), or nullptr.
inline const Asset* find_asset(std::string_view path) {
  if (path == "/") path = "/index.html";
  for (const Asset& a : embedded_assets())
    if (a.path == path) return &a;
  return nullptr;
}

}  // namespace emotune
