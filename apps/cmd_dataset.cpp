// `emotune dataset stats --data FILE_OR_DIR [--format auto|csv|packed|folders] [--ferplus FILE]
//  [--ferplus-mode majority|distribution] [--classes 7|8] [--skip-bad] [--grid out.png]
//  [--grid-size 8] [--grid-split Training] [--augment full] [--balance none|sampler] [--seed N]`
#include "apps/cmd_dataset.h"

#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "apps/commands.h"
#include "base/error.h"
#include "datasets/augment.h"
#include "datasets/classes.h"
#include "datasets/dataset.h"
#include "datasets/ferplus.h"
#include "datasets/grid.h"
#include "datasets/loader.h"
#include "datasets/sampler.h"

namespace emotune {

namespace {

void print_counts(const Dataset& d, std::ostream& out) {
  std::vector<std::string> names = class_names(d.num_classes);
  out << std::left << std::setw(12) << "split" << std::right;
  for (const std::string& n : names) out << std::setw(std::max<int>(9, (int)n.size() + 1)) << n;
  out << std::setw(9) << "total" << "\n";
  auto row = [&](const std::string& label, const std::vector<int64_t>& counts) {
    int64_t total = 0;
    out << std::left << std::setw(12) << label << std::right;
    for (size_t c = 0; c < counts.size(); ++c) {
      out << std::setw(std::max<int>(9, (int)names[c].size() + 1)) << counts[c];
      total += counts[c];
    }
    out << std::setw(9) << total << "\n";
  };
  int present = 0;
  for (int s = 0; s < kNumSplits; ++s) {
    if (d.count((Split)s) == 0) continue;
    ++present;
    row(split_name((Split)s), d.class_counts((Split)s));
  }
  if (present > 1) row("all", d.class_counts());
}

void print_weights(const Dataset& d, Split s, std::ostream& out) {
  std::vector<float> w = class_weights(d.class_counts(s));
  std::vector<std::string> names = class_names(d.num_classes);
  out << "loss class weights n/(C*count_c) on " << split_name(s) << ":";
  for (size_t c = 0; c < w.size(); ++c)
    out << " " << names[c] << " " << std::fixed << std::setprecision(3) << w[c];
  out << std::defaultfloat << "\n";
}

}  // namespace

void run_dataset_stats(const DatasetStatsOptions& o, std::ostream& out) {
  if (o.classes != 7 && o.classes != 8) throw Error("--classes must be 7 or 8");
  if (o.classes == 8 && o.ferplus.empty())
    throw Error("--classes 8 needs --ferplus (only FER+ has the contempt class)");
  LoadOptions lo;
  lo.format = data_format_from_name(o.format);
  lo.skip_bad = o.skip_bad;
  LoadReport rep;
  Dataset d = load_dataset(o.data, lo, &rep);
  out << "data: " << o.data << " (" << d.size() << " faces";
  if (rep.skipped) out << ", " << rep.skipped << " bad skipped";
  out << ")\n";
  if (!o.ferplus.empty()) {
    FerPlusOptions fo;
    fo.mode = ferplus_mode_from_name(o.ferplus_mode);
    fo.num_classes = o.classes;
    FerPlusJoinReport jr;
    d = apply_ferplus(d, load_ferplus(o.ferplus), fo, &jr);
    out << "FER+ labels (" << o.ferplus_mode << ", " << o.classes << " classes): kept " << jr.kept
        << ", dropped " << jr.dropped << ", label differs from FER-2013 on " << jr.label_changed
        << "\n";
  }
  if (d.size() == 0) throw Error(o.data + ": no faces to describe");
  print_counts(d, out);
  Split weights_split = d.count(Split::training) ? Split::training : d.split(0);
  print_weights(d, weights_split, out);

  if (o.grid.empty()) return;
  if (o.grid_size < 1 || o.grid_size > 32) throw Error("--grid-size must be 1..32");
  if (o.grid_scale < 1 || o.grid_scale > 8) throw Error("--grid-scale must be 1..8");
  Split gs;
  if (!split_from_name(o.grid_split, &gs))
    throw Error("--grid-split: unknown split '" + o.grid_split + "' (" + accepted_split_names() + ")");
  Dataset part = d.select({gs});
  if (part.size() == 0) throw Error("--grid-split " + o.grid_split + ": no faces in that split");

  // The loader itself draws the grid, so the picture is exactly what training would see.
  LoaderOptions lopt;
  lopt.batch_size = o.grid_size * o.grid_size;
  lopt.threads = 0;
  lopt.seed = o.seed;
  lopt.augment = AugmentOptions::parse(o.augment);
  Balance balance = balance_from_name(o.balance);
  if (balance == Balance::sampler) {
    lopt.sampler = SamplerKind::weighted;
    lopt.epoch_samples = std::max<int64_t>((int64_t)part.size(), lopt.batch_size);
  }
  BatchLoader loader(part, lopt);
  loader.start_epoch(o.epoch);
  const Batch* b = loader.next();
  float lo_v = 0, hi_v = 0;
  uint8_t px[2] = {0, 255};
  Preprocess one = lopt.preprocess;
  one.size = 1;
  one.apply(px, &lo_v);
  one.apply(px + 1, &hi_v);
  GrayImage g = face_grid(b->images, b->size, b->side, lo_v, hi_v, o.grid_size, o.grid_scale);
  save_gray_png(g, o.grid);
  std::vector<std::string> names = class_names(d.num_classes);
  out << "grid: " << o.grid << " (" << b->size << " faces from " << split_name(gs) << ", "
      << g.width << "x" << g.height << " px, augment '" << o.augment << "', seed " << o.seed
      << ", epoch " << o.epoch << (balance == Balance::sampler ? ", weighted sampler" : "")
      << "); labels row by row:\n";
  for (int i = 0; i < b->size; ++i) {
    out << (i % o.grid_size == 0 ? "  " : " ") << std::left << std::setw(9) << names[b->labels[i]];
    if (i % o.grid_size == o.grid_size - 1 || i == b->size - 1) out << std::right << "\n";
  }
  loader.release(b);
}

void add_dataset_command(CLI::App& app) {
  CLI::App* dataset = app.add_subcommand("dataset", "Inspect a FER-2013 data set");
  dataset->require_subcommand(1);
  auto opt = std::make_shared<DatasetStatsOptions>();
  CLI::App* stats = dataset->add_subcommand(
      "stats", "Per-split class counts, balancing weights, and a grid of faces as the network sees them");
  stats->add_option("--data", opt->data, "fer2013.csv[.gz|.xz], a packed .u8[.xz] file, or an image folder tree")
      ->required();
  stats->add_option("--format", opt->format, "how to read --data")
      ->check(CLI::IsMember({"auto", "csv", "packed", "folders"}))
      ->capture_default_str();
  stats->add_option("--ferplus", opt->ferplus, "fer2013new.csv: relabel with the FER+ votes");
  stats->add_option("--ferplus-mode", opt->ferplus_mode, "FER+ labels")
      ->check(CLI::IsMember({"majority", "distribution"}))
      ->capture_default_str();
  stats->add_option("--classes", opt->classes, "7, or 8 with FER+ contempt")
      ->check(CLI::IsMember({7, 8}))
      ->capture_default_str();
  stats->add_flag("--skip-bad", opt->skip_bad, "skip malformed rows / unreadable images with a warning");
  stats->add_option("--grid", opt->grid, "write a PNG grid of preprocessed, augmented faces here");
  stats->add_option("--grid-size", opt->grid_size, "faces per grid side")->capture_default_str();
  stats->add_option("--grid-scale", opt->grid_scale, "pixel repetition in the PNG")->capture_default_str();
  stats->add_option("--grid-split", opt->grid_split, "split the grid faces come from")->capture_default_str();
  stats->add_option("--augment", opt->augment,
                    "none, full, or a list such as crop=4,flip,rotate=10,jitter=0.2,erase=0.25")
      ->capture_default_str();
  stats->add_option("--balance", opt->balance, "none, or sampler: draw the grid as the weighted sampler would")
      ->check(CLI::IsMember({"none", "sampler", "loss-weights"}))
      ->capture_default_str();
  stats->add_option("--seed", opt->seed, "seed of the grid's order and augmentation")->capture_default_str();
  stats->add_option("--epoch", opt->epoch, "epoch whose draws the grid shows")->capture_default_str();
  stats->callback([opt]() { run_dataset_stats(*opt, std::cout); });
}

}  // namespace emotune
