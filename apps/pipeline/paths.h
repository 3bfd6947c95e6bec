// Where the app finds its files: the shipped defaults, and the images named on a command line.
// One rule for every command (predict, recommend, evaluate, and the video and web commands): a
// default path is looked up from the working directory, then from the repository the binary was
// built in; a path the user gave is used as given, so an error names exactly what they typed.
#pragma once
#include <string>
#include <vector>

namespace emotune {

// The model used without --model: the most accurate shipped model (models/README.md).
inline constexpr const char* kDefaultModel = "models/vgg.safetensors";
// The mood table used without --tracks (data/music/README.md).
inline constexpr const char* kDefaultTracks = "data/music/tracks.csv";

// A default data path (models/..., data/music/...): as given when it exists relative to the
// working directory, else relative to the repository the running binary was built in
// (<repo>/build-*/bin/emotune), else as given (so the error names the path the user expects).
std::string resolve_default_path(const std::string& relative);

// The path to open for an option whose default is `default_relative`: `given` unchanged when the
// user changed it, resolve_default_path(default_relative) when it still holds the default.
std::string resolve_option_path(const std::string& given, const char* default_relative);

// Image files named on the command line: files as given, folders expanded to the image files
// directly inside them (by extension: jpg jpeg png bmp gif, the formats base/image decodes),
// sorted by name. Throws emotune::Error for a path that does not exist or a folder with no image.
std::vector<std::string> expand_image_paths(const std::vector<std::string>& args);

}  // namespace emotune
