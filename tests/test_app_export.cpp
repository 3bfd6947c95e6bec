// `emotune export --format onnx`: the ModelProto bytes are decoded here with a small, independent
// protobuf wire-format reader and checked field by field against onnx.proto's numbering: every
// byte parses, the graph chains from "input" to "probabilities" through the layers in order, each
// weight is an initialiser with the model's own numbers, the attributes carry the padding and
// epsilon, and the metadata is there. ONNX's own checker and ONNX Runtime's parity run in
// tests/onnx/run.sh (they need Python packages from PyPI).
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string_view>

#include <nlohmann/json.hpp>

#include "apps/cmd_export.h"
#include "apps/export/onnx.h"
#include "base/error.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "layers/model.h"
#include "layers/nets/nets.h"
#include "tests/testing.h"

using namespace emotune;

namespace {

struct Field {
  int num = 0, wire = 0;
  uint64_t v = 0;         // varint, or the fixed32 bits
  std::string_view data;  // length-delimited payload
};

uint64_t read_varint(std::string_view s, size_t& i) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (i >= s.size()) throw Error("truncated varint");
    const uint8_t b = (uint8_t)s[i++];
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  throw Error("varint longer than 10 bytes");
}

// Every field of one message; throws on anything malformed (truncation, unknown wire type).
std::vector<Field> parse(std::string_view s) {
  std::vector<Field> out;
  size_t i = 0;
  while (i < s.size()) {
    const uint64_t key = read_varint(s, i);
    Field f;
    f.num = (int)(key >> 3);
    f.wire = (int)(key & 7);
    if (f.num == 0) throw Error("field number 0");
    if (f.wire == 0) {
      f.v = read_varint(s, i);
    } else if (f.wire == 2) {
      const uint64_t n = read_varint(s, i);
      if (n > s.size() - i) throw Error("length-delimited field runs past the end");
      f.data = s.substr(i, n);
      i += n;
    } else if (f.wire == 5) {
      if (s.size() - i < 4) throw Error("truncated fixed32");
      uint32_t b;
      std::memcpy(&b, s.data() + i, 4);
      f.v = b;
      i += 4;
    } else {
      throw Error("wire type " + std::to_string(f.wire) + " not used by the exporter");
    }
    out.push_back(f);
  }
  return out;
}

std::vector<Field> all(const std::vector<Field>& fs, int num) {
  std::vector<Field> r;
  for (const auto& f : fs)
    if (f.num == num) r.push_back(f);
  return r;
}
Field one(const std::vector<Field>& fs, int num) {
  auto r = all(fs, num);
  REQUIRE_MESSAGE(r.size() == 1, "field " << num << " appears " << r.size() << " times");
  return r[0];
}
std::string str(const Field& f) { return std::string(f.data); }

// A random-weight network with trained-looking BN statistics, as load_model would return it.
LoadedModel make_model(const std::string& arch) {
  LoadedModel m;
  m.info.arch = arch;
  m.info.classes = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};
  m.net = make_network(arch, 7, 5);
  m.net->set_training(true);
  {
    NoGradGuard no_grad;
    std::vector<float> x = testing::random_vector(2 * 48 * 48, 9, 0.0f, 1.0f);
    (void)m.net->forward(Tensor::from_vector({2, 1, 48, 48}, x));
  }
  m.net->set_training(false);
  return m;
}

struct Decoded {
  std::vector<Field> model, graph;
  std::vector<std::vector<Field>> nodes;
  std::map<std::string, std::vector<Field>> inits;  // by name
  std::map<std::string, std::string> meta;
};

// The fields are views into `bytes`: it must outlive the result (a temporary may not be passed).
Decoded decode(std::string&& bytes) = delete;
Decoded decode(const std::string& bytes) {
  Decoded d;
  d.model = parse(bytes);
  d.graph = parse(one(d.model, 7).data);
  for (const auto& n : all(d.graph, 1)) d.nodes.push_back(parse(n.data));
  for (const auto& t : all(d.graph, 5)) {
    auto fs = parse(t.data);
    d.inits[str(one(fs, 8))] = fs;
  }
  for (const auto& e : all(d.model, 14)) {
    auto fs = parse(e.data);
    d.meta[str(one(fs, 1))] = str(one(fs, 2));
  }
  return d;
}

// [dim_param or dim_value...] of a ValueInfoProto.
std::vector<std::string> dims_of(const Field& value_info) {
  auto vi = parse(value_info.data);
  auto tensor = parse(one(parse(one(vi, 2).data), 1).data);
  CHECK(one(tensor, 1).v == 1);  // FLOAT
  std::vector<std::string> dims;
  for (const auto& d : all(parse(one(tensor, 2).data), 1)) {
    auto fs = parse(d.data);
    dims.push_back(all(fs, 2).empty() ? std::to_string(one(fs, 1).v) : str(one(fs, 2)));
  }
  return dims;
}

std::map<std::string, Field> attrs_of(const std::vector<Field>& node) {
  std::map<std::string, Field> m;
  for (const auto& a : all(node, 5)) {
    auto fs = parse(a.data);
    m[str(one(fs, 1))] = a;
  }
  return m;
}
std::vector<int64_t> ints(const Field& attr) {
  std::vector<int64_t> v;
  for (const auto& f : all(parse(attr.data), 8)) v.push_back((int64_t)f.v);
  return v;
}

}  // namespace

TEST_CASE("onnx export: the paper network decodes to a well-formed opset-17 graph with its weights") {
  LoadedModel m = make_model("paper");
  const std::string bytes = onnx_export_model(m, {{"emotune_version", "0.1"}, {"emotune_commit", "abc"}});
  Decoded d = decode(bytes);
  CHECK(one(d.model, 1).v == 8);  // ir_version
  auto opset = parse(one(d.model, 8).data);
  for (const auto& dom : all(opset, 1)) CHECK(str(dom).empty());  // the default domain
  CHECK(one(opset, 2).v == 17);

  // Layer order: Dropout leaves nothing, Softmax closes.
  std::vector<std::string> ops, want = {"Conv", "Relu", "Conv", "Relu", "BatchNormalization", "MaxPool",
                                        "Conv", "Relu", "Conv", "Relu", "BatchNormalization", "MaxPool",
                                        "Conv", "Relu", "Conv", "Relu", "BatchNormalization", "MaxPool",
                                        "Conv", "Relu", "BatchNormalization", "MaxPool",
                                        "Flatten", "Gemm", "Relu", "Gemm", "Softmax"};
  std::string prev = "input";
  for (const auto& n : d.nodes) {
    ops.push_back(str(one(n, 4)));
    auto in = all(n, 1);
    REQUIRE(!in.empty());
    CHECK_MESSAGE(str(in[0]) == prev, "node " << str(one(n, 3)) << " reads " << str(in[0]));
    for (size_t k = 1; k < in.size(); ++k) CHECK_MESSAGE(d.inits.count(str(in[k])), str(in[k]));
    prev = str(one(n, 2));
  }
  CHECK(ops == want);
  CHECK(prev == "probabilities");

  // Graph interface: symbolic batch.
  CHECK(str(one(parse(one(d.graph, 11).data), 1)) == "input");
  CHECK(dims_of(one(d.graph, 11)) == std::vector<std::string>{"N", "1", "48", "48"});
  CHECK(dims_of(one(d.graph, 12)) == std::vector<std::string>{"N", "7"});

  // Every parameter and buffer of the network is an initialiser with its own bytes.
  CHECK(d.inits.size() == m.net->state_dict().size());
  for (const auto& [name, t] : m.net->state_dict()) {
    REQUIRE_MESSAGE(d.inits.count(name), name);
    const auto& fs = d.inits[name];
    std::vector<int64_t> dims;
    for (const auto& f : all(fs, 1)) dims.push_back((int64_t)f.v);
    CHECK_MESSAGE(dims == std::vector<int64_t>(t.shape().begin(), t.shape().end()), name);
    CHECK(one(fs, 2).v == 1);  // FLOAT
    std::vector<float> v = t.to_vector();
    const std::string_view raw = one(fs, 9).data;
    REQUIRE(raw.size() == v.size() * 4);
    CHECK_MESSAGE(std::memcmp(raw.data(), v.data(), raw.size()) == 0, name);
  }

  // Attributes: conv1 "same" pads 1, conv2 "valid" pads 0; BN epsilon 1e-3; Gemm transB.
  auto conv1 = attrs_of(d.nodes[0]), conv2 = attrs_of(d.nodes[2]), bn = attrs_of(d.nodes[4]);
  CHECK(ints(conv1.at("pads")) == std::vector<int64_t>{1, 1, 1, 1});
  CHECK(ints(conv2.at("pads")) == std::vector<int64_t>{0, 0, 0, 0});
  CHECK(ints(conv1.at("kernel_shape")) == std::vector<int64_t>{3, 3});
  uint32_t eps_bits = (uint32_t)one(parse(bn.at("epsilon").data), 2).v;
  float eps;
  std::memcpy(&eps, &eps_bits, 4);
  CHECK(eps == 1e-3f);
  CHECK(ints(attrs_of(d.nodes[6]).at("pads")) == std::vector<int64_t>{1, 1, 1, 1});
  CHECK(one(parse(attrs_of(d.nodes[23]).at("transB").data), 3).v == 1);

  // Metadata: what a user needs to feed the model and name its output.
  CHECK(nlohmann::json::parse(d.meta.at("classes")) == nlohmann::json(m.info.classes));
  CHECK(Preprocess::from_json(d.meta.at("preprocess")).scale == m.info.preprocess.scale);
  CHECK(d.meta.at("arch") == "paper");
  CHECK(d.meta.at("emotune_version") == "0.1");
  CHECK(d.meta.at("emotune_commit") == "abc");
}

TEST_CASE("onnx export: vgg (no conv bias, BN after a dense layer) exports every tensor") {
  LoadedModel m = make_model("vgg");
  const std::string bytes = onnx_export_model(m, {});
  Decoded d = decode(bytes);
  CHECK(d.inits.size() == m.net->state_dict().size());
  int convs = 0, bns = 0;
  for (const auto& n : d.nodes) {
    if (str(one(n, 4)) == "Conv") {
      ++convs;
      CHECK(all(n, 1).size() == 2);  // input, weight: no bias
    }
    if (str(one(n, 4)) == "BatchNormalization") {
      ++bns;
      CHECK(all(n, 1).size() == 5);
    }
  }
  CHECK(convs > 0);
  CHECK(bns == convs + 1);  // one per conv, plus bn_dense1
  CHECK(str(one(d.nodes.back(), 4)) == "Softmax");
}

TEST_CASE("onnx export: a calibrated model divides the logits by its temperature before the softmax") {
  LoadedModel m = make_model("paper");
  m.info.temperature = 0.75;
  const std::string bytes = onnx_export_model(m, {});
  Decoded d = decode(bytes);
  REQUIRE(d.nodes.size() >= 2);
  const auto& div = d.nodes[d.nodes.size() - 2];
  CHECK(str(one(div, 4)) == "Div");
  CHECK(str(one(d.nodes.back(), 4)) == "Softmax");
  const auto in = all(div, 1);
  REQUIRE(in.size() == 2);
  REQUIRE(d.inits.count(str(in[1])));
  const std::string_view raw = one(d.inits[str(in[1])], 9).data;
  REQUIRE(raw.size() == 4);
  float t;
  std::memcpy(&t, raw.data(), 4);
  CHECK(t == 0.75f);
  CHECK(d.meta.at("temperature") == "0.75");
  // An uncalibrated model has no Div at all (the graph above).
  m.info.temperature = 1.0;
  const std::string plain = onnx_export_model(m, {});
  for (const auto& n : decode(plain).nodes) CHECK(str(one(n, 4)) != "Div");
}

TEST_CASE("emotune export: writes the file; bad input is a clear error that leaves --out alone") {
  const std::string dir = testing::temp_dir("app_export");
  LoadedModel m = make_model("paper");
  const std::string ckpt = dir + "/paper.safetensors";
  save_safetensors(ckpt, m.net->state_dict(),
                   {{"arch", "paper"}, {"classes", nlohmann::json(m.info.classes).dump()},
                    {"preprocess", m.info.preprocess.to_json()}});
  std::ostringstream log;
  run_export({ckpt, "onnx", dir + "/paper.onnx"}, log);
  CHECK(log.str().find("ONNX opset 17") != std::string::npos);
  std::ifstream f(dir + "/paper.onnx", std::ios::binary);
  const std::string written((std::istreambuf_iterator<char>(f)), {});
  Decoded d = decode(written);
  CHECK(d.nodes.size() == 27);
  CHECK(d.meta.count("emotune_commit") == 1);

  // A previous file survives every failure.
  const std::string out = dir + "/keep.onnx";
  std::ofstream(out) << "previous";
  auto still_previous = [&] {
    std::ifstream in(out);
    std::string s;
    in >> s;
    return s == "previous";
  };
  CHECK_THROWS_WITH_AS(run_export({ckpt, "tflite", out}, log), doctest::Contains("tflite"), Error);
  CHECK(still_previous());
  CHECK_THROWS_WITH_AS(run_export({dir + "/missing.safetensors", "onnx", out}, log),
                       doctest::Contains("missing.safetensors"), Error);
  CHECK(still_previous());
  CHECK_THROWS_WITH_AS(run_export({ckpt, "onnx", dir + "/no/such/folder/x.onnx"}, log),
                       doctest::Contains("cannot write --out"), Error);
  CHECK_THROWS_WITH_AS(run_export({dir + "/keep.onnx", "onnx", dir + "/y.onnx"}, log), doctest::Contains("keep.onnx"),
                       Error);  // not a checkpoint
  CHECK_FALSE(std::filesystem::exists(dir + "/y.onnx"));
}

namespace {
// A layer with a forward and no export_onnx (layers/module.h): the exporter's loud default.
class Untranslated : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string describe() const override { return "Untranslated"; }
};
}  // namespace

TEST_CASE("onnx export: a layer without an ONNX translation is an error naming it") {
  LoadedModel m = make_model("paper");
  auto net = std::dynamic_pointer_cast<Sequential>(m.net);
  REQUIRE(net);
  net->add("mystery", std::make_shared<Untranslated>());
  CHECK_THROWS_WITH_AS(onnx_export_model(m, {}), doctest::Contains("layer 'mystery' (Untranslated)"), Error);
}

TEST_CASE("onnx export: resnet18's residual blocks branch and join with Add, global pooling before fc") {
  LoadedModel m = make_model("resnet18");
  const std::string bytes = onnx_export_model(m, {});
  Decoded d = decode(bytes);
  CHECK(d.inits.size() == m.net->state_dict().size());
  std::set<std::string> defined = {"input"};
  std::map<std::string, std::vector<std::string>> add_inputs;
  int adds = 0, pools = 0;
  for (const auto& n : d.nodes) {
    const std::string op = str(one(n, 4)), out = str(one(n, 2));
    auto in = all(n, 1);
    REQUIRE(!in.empty());
    for (const auto& i : in)  // a value is read only after the node that writes it, or is a weight
      CHECK_MESSAGE((defined.count(str(i)) || d.inits.count(str(i))), out << " reads " << str(i));
    if (op == "Add") {
      ++adds;
      for (const auto& i : in) add_inputs[out].push_back(str(i));
    }
    pools += op == "GlobalAveragePool";
    defined.insert(out);
  }
  CHECK(adds == 8);
  CHECK(pools == 1);
  // Identity shortcut: the block's input; projection: its down_bn. The body's bn2 comes first.
  CHECK(add_inputs["res1_1.add"] == std::vector<std::string>{"res1_1.bn2", "relu1"});
  CHECK(add_inputs["res1_2.add"] == std::vector<std::string>{"res1_2.bn2", "res1_1.relu"});
  CHECK(add_inputs["res2_1.add"] == std::vector<std::string>{"res2_1.bn2", "res2_1.down_bn"});
  CHECK(str(one(d.nodes.back(), 4)) == "Softmax");
}
