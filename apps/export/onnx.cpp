#include "apps/export/onnx.h"

#include <bit>
#include <nlohmann/json.hpp>
#include <vector>

#include "apps/export/proto_writer.h"
#include "base/error.h"
#include "layers/layers.h"

namespace emotune {

namespace {
static_assert(std::endian::native == std::endian::little, "raw_data is little-endian float32");

// onnx.proto field numbers and enum values (ONNX 1.12+, Apache-2.0, github.com/onnx/onnx).
namespace f {
constexpr int model_ir_version = 1, model_producer_name = 2, model_producer_version = 3,
              model_graph = 7, model_opset_import = 8, model_metadata_props = 14;
constexpr int opset_domain = 1, opset_version = 2;
constexpr int entry_key = 1, entry_value = 2;
constexpr int graph_node = 1, graph_name = 2, graph_initializer = 5, graph_input = 11, graph_output = 12;
constexpr int node_input = 1, node_output = 2, node_name = 3, node_op_type = 4, node_attribute = 5;
constexpr int attr_name = 1, attr_f = 2, attr_i = 3, attr_ints = 8, attr_type = 20;
constexpr int attr_type_float = 1, attr_type_int = 2, attr_type_ints = 7;
constexpr int tensor_dims = 1, tensor_data_type = 2, tensor_name = 8, tensor_raw_data = 9;
constexpr int tensor_float = 1;
constexpr int value_info_name = 1, value_info_type = 2;
constexpr int type_tensor_type = 1, type_tensor_elem_type = 1, type_tensor_shape = 2;
constexpr int shape_dim = 1, dim_value = 1, dim_param = 2;
}  // namespace f

ProtoWriter attr_int(const char* name, int64_t v) {
  ProtoWriter a;
  a.bytes(f::attr_name, name).int64(f::attr_i, v).varint(f::attr_type, f::attr_type_int);
  return a;
}
ProtoWriter attr_float(const char* name, float v) {
  ProtoWriter a;
  a.bytes(f::attr_name, name).float32(f::attr_f, v).varint(f::attr_type, f::attr_type_float);
  return a;
}
ProtoWriter attr_ints(const char* name, std::initializer_list<int64_t> vs) {
  ProtoWriter a;
  a.bytes(f::attr_name, name);
  for (int64_t v : vs) a.int64(f::attr_ints, v);
  a.varint(f::attr_type, f::attr_type_ints);
  return a;
}

ProtoWriter value_info(const std::string& name, const std::vector<std::string>& symbolic, const Shape& fixed) {
  ProtoWriter shape;
  for (const auto& s : symbolic) shape.message(f::shape_dim, ProtoWriter().bytes(f::dim_param, s));
  for (int64_t d : fixed) shape.message(f::shape_dim, ProtoWriter().int64(f::dim_value, d));
  ProtoWriter tensor_type;
  tensor_type.varint(f::type_tensor_elem_type, f::tensor_float).message(f::type_tensor_shape, shape);
  ProtoWriter vi;
  vi.bytes(f::value_info_name, name).message(f::value_info_type, ProtoWriter().message(f::type_tensor_type, tensor_type));
  return vi;
}

// The graph being built: nodes in order, then the initialisers (the weights).
struct GraphBuilder {
  ProtoWriter nodes, initializers;
  std::string last = "input";  // the value the next node reads

  std::string initializer(const std::string& name, const Tensor& t) {
    ProtoWriter w;
    for (int64_t d : t.shape()) w.int64(f::tensor_dims, d);
    w.varint(f::tensor_data_type, f::tensor_float).bytes(f::tensor_name, name);
    std::vector<float> v = t.to_vector();
    w.bytes(f::tensor_raw_data, std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
    initializers.message(f::graph_initializer, w);
    return name;
  }
  // A node reading `last` plus `params`, writing `output` (which becomes `last`).
  void node(const std::string& op, const std::string& output, const std::vector<std::string>& params = {},
            const std::vector<ProtoWriter>& attrs = {}) {
    ProtoWriter n;
    n.bytes(f::node_input, last);
    for (const auto& in : params) n.bytes(f::node_input, in);
    n.bytes(f::node_output, output).bytes(f::node_name, output).bytes(f::node_op_type, op);
    for (const auto& a : attrs) n.message(f::node_attribute, a);
    nodes.message(f::graph_node, n);
    last = output;
  }
};

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

void add_module(GraphBuilder& g, const std::string& name, Module& m) {
  if (auto* seq = dynamic_cast<Sequential*>(&m)) {
    for (const auto& child : seq->children()) add_module(g, join(name, child.name), *child.module);
  } else if (auto* conv = dynamic_cast<Conv2d*>(&m)) {
    std::vector<std::string> params{g.initializer(name + ".weight", conv->weight)};
    if (conv->bias.defined()) params.push_back(g.initializer(name + ".bias", conv->bias));
    const int k = conv->kernel(), s = conv->stride(), p = conv->pad();
    g.node("Conv", name, params,
           {attr_ints("kernel_shape", {k, k}), attr_ints("strides", {s, s}), attr_ints("pads", {p, p, p, p}),
            attr_ints("dilations", {1, 1}), attr_int("group", 1)});
  } else if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) {
    g.node("BatchNormalization", name,
           {g.initializer(name + ".gamma", bn->gamma), g.initializer(name + ".beta", bn->beta),
            g.initializer(name + ".running_mean", bn->running_mean),
            g.initializer(name + ".running_var", bn->running_var)},
           {attr_float("epsilon", bn->eps())});
  } else if (dynamic_cast<ReLU*>(&m)) {
    g.node("Relu", name);
  } else if (auto* pool = dynamic_cast<MaxPool2d*>(&m)) {
    const int k = pool->kernel(), s = pool->stride();
    g.node("MaxPool", name, {}, {attr_ints("kernel_shape", {k, k}), attr_ints("strides", {s, s})});
  } else if (dynamic_cast<Dropout*>(&m)) {
    // The identity at inference: nothing to emit.
  } else if (dynamic_cast<Flatten*>(&m)) {
    g.node("Flatten", name, {}, {attr_int("axis", 1)});  // [N, C, H, W] -> [N, C*H*W], NCHW order
  } else if (auto* fc = dynamic_cast<Linear*>(&m)) {
    std::vector<std::string> params{g.initializer(name + ".weight", fc->weight)};
    if (fc->bias.defined()) params.push_back(g.initializer(name + ".bias", fc->bias));
    g.node("Gemm", name, params, {attr_int("transB", 1)});  // y = x W^T + b, W stored [OUT, IN]
  } else {
    throw Error("onnx export: layer '" + name + "' (" + m.describe() + ") has no ONNX translation");
  }
}
}  // namespace

std::string onnx_export_model(const LoadedModel& model, const std::map<std::string, std::string>& extra_metadata) {
  if (!model.net) throw Error("onnx export: no network loaded");
  const int s = model.info.preprocess.size;
  const int c = (int)model.info.classes.size();
  GraphBuilder g;
  add_module(g, "", *model.net);
  if (model.info.temperature != 1.0)  // a calibrated model: softmax(logits / T), as emotune predict
    g.node("Div", "scaled_logits",
           {g.initializer("temperature", Tensor::from_vector({1}, {(float)model.info.temperature}))});
  g.node("Softmax", "probabilities", {}, {attr_int("axis", -1)});

  ProtoWriter graph;
  graph.append(g.nodes).bytes(f::graph_name, "emotune_" + model.info.arch).append(g.initializers);
  graph.message(f::graph_input, value_info("input", {"N"}, {1, s, s}));
  graph.message(f::graph_output, value_info("probabilities", {"N"}, {c}));

  std::map<std::string, std::string> meta = extra_metadata;
  meta["classes"] = nlohmann::json(model.info.classes).dump();
  meta["preprocess"] = model.info.preprocess.to_json();
  meta["arch"] = model.info.arch;
  meta["input_layout"] = "input: float32 [N, 1, " + std::to_string(s) + ", " + std::to_string(s) +
                         "], gray faces, row-major, input = (pixel * scale - mean) / std (see preprocess)";
  meta["output"] = "probabilities: float32 [N, " + std::to_string(c) + "], softmax over classes, in order";
  if (model.info.temperature != 1.0) {
    meta["output"] += ", of the logits divided by the model's temperature";
    meta["temperature"] = nlohmann::json(model.info.temperature).dump();
  }

  ProtoWriter out;
  out.int64(f::model_ir_version, kOnnxIrVersion)
      .bytes(f::model_producer_name, "emotune")
      .bytes(f::model_producer_version, extra_metadata.count("emotune_version") ? extra_metadata.at("emotune_version") : "")
      .message(f::model_graph, graph)
      .message(f::model_opset_import, ProtoWriter().bytes(f::opset_domain, "").int64(f::opset_version, kOnnxOpset));
  for (const auto& [k, v] : meta)
    out.message(f::model_metadata_props, ProtoWriter().bytes(f::entry_key, k).bytes(f::entry_value, v));
  return out.data();
}

}  // namespace emotune
