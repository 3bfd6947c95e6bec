// Image folder trees as the Kaggle image release ships FER-2013:
//   <root>/<split>/<class>/*.{png,jpg,jpeg,bmp}
// <split> is train|training, test|val|validation|publictest or privatetest (Dataset::split
// mapping; note Kaggle's "test" folder holds PublicTest and PrivateTest together). When every
// folder under <root> is a class name, <root> itself is one split (named by its own folder name,
// Training when that is not a split name). <class> is any name class_from_name() accepts.
// Every image is decoded with the app's decoder (base/image.h) and resized to 48x48 gray
// with resize_gray (stb_image_resize v1), so training sees faces prepared exactly as inference
// prepares them. Files with other extensions are ignored; folders and files are visited in
// sorted order so the sample order is the same on every machine.
// Errors: a missing root, an unknown split or class folder (listing accepted names), an
// unreadable or non-image file (named) — or, with skip_bad, image errors are counted and skipped.
#pragma once
#include <string>

#include "datasets/dataset.h"

namespace emotune {

Dataset load_image_folders(const std::string& root, const LoadOptions& options, LoadReport& report);

}  // namespace emotune
