#include "apps/export/onnx.h"

#include <bit>
#include <nlohmann/json.hpp>
#include <vector>

#include "apps/export/proto_writer.h"
#include "base/error.h"
#include "layers/module.h"
#include "layers/onnx_writer.h"

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

ProtoWriter attribute(const OnnxAttribute& a) {
  ProtoWriter w;
  w.bytes(f::attr_name, a.name);
  switch (a.type) {
    case OnnxAttribute::integer:
      w.int64(f::attr_i, a.i).varint(f::attr_type, f::attr_type_int);
      break;
    case OnnxAttribute::real:
      w.float32(f::attr_f, a.f).varint(f::attr_type, f::attr_type_float);
      break;
    case OnnxAttribute::integers:
      for (int64_t v : a.ints) w.int64(f::attr_ints, v);
      w.varint(f::attr_type, f::attr_type_ints);
      break;
  }
  return w;
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

// The graph being built: nodes in order, then the initialisers (the weights). The layers write
// into it through OnnxWriter (layers/onnx_writer.h), each in its export_onnx.
class GraphBuilder : public OnnxWriter {
 public:
  ProtoWriter nodes, initializers;

  std::string initializer(const std::string& name, const Tensor& t) override {
    ProtoWriter w;
    for (int64_t d : t.shape()) w.int64(f::tensor_dims, d);
    w.varint(f::tensor_data_type, f::tensor_float).bytes(f::tensor_name, name);
    std::vector<float> v = t.to_vector();
    w.bytes(f::tensor_raw_data, std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
    initializers.message(f::graph_initializer, w);
    return name;
  }
  std::string last_output() const override { return last_; }
  void read_from(const std::string& output) override { last_ = output; }

 protected:
  // A node reading `last_` plus `inputs`, writing `output` (which becomes `last_`).
  void add_node(const std::string& op, const std::string& output, const std::vector<std::string>& inputs,
                const std::vector<OnnxAttribute>& attrs) override {
    ProtoWriter n;
    n.bytes(f::node_input, last_);
    for (const auto& in : inputs) n.bytes(f::node_input, in);
    n.bytes(f::node_output, output).bytes(f::node_name, output).bytes(f::node_op_type, op);
    for (const auto& a : attrs) n.message(f::node_attribute, attribute(a));
    nodes.message(f::graph_node, n);
    last_ = output;
  }

 private:
  std::string last_ = "input";  // the value the next node reads
};

}  // namespace

std::string onnx_export_model(const LoadedModel& model, const std::map<std::string, std::string>& extra_metadata) {
  if (!model.net) throw Error("onnx export: no network loaded");
  const int s = model.info.preprocess.size;
  const int c = (int)model.info.classes.size();
  GraphBuilder g;
  model.net->export_onnx(g, "");  // each layer's nodes (layers/layers.cpp), in order
  if (model.info.temperature != 1.0)  // a calibrated model: softmax(logits / T), as emotune predict
    g.node("Div", "scaled_logits",
           {g.initializer("temperature", Tensor::from_vector({1}, {(float)model.info.temperature}))});
  g.node("Softmax", "probabilities", {}, {OnnxAttribute::of_int("axis", -1)});

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
