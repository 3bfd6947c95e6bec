// The ONNX vocabulary a layer's export_onnx (layers/module.h) writes its nodes with. The layers
// say what they are in ONNX terms (op types, attributes, which tensors are initialisers); the
// bytes are apps/export/onnx.cpp's (a protobuf encoder), which implements this interface: layers/
// may not include apps/ (scripts/deps.py), so the dependency points up through this class.
//
// A graph is a chain: each node reads the previous node's output (the graph input "input" for the
// first) plus its initialisers, and names its output after the layer ("conv1"); a layer with two
// branches moves the chain's read point with read_from.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace emotune {

// One node attribute: an int, a float or a list of ints (all the exported layers need).
struct OnnxAttribute {
  enum Type { integer, real, integers } type = integer;
  std::string name;
  int64_t i = 0;
  float f = 0;
  std::vector<int64_t> ints;

  static OnnxAttribute of_int(const std::string& name, int64_t v) { return {integer, name, v, 0, {}}; }
  static OnnxAttribute of_float(const std::string& name, float v) { return {real, name, 0, v, {}}; }
  static OnnxAttribute of_ints(const std::string& name, std::initializer_list<int64_t> vs) {
    return {integers, name, 0, 0, vs};
  }
};

class OnnxWriter {
 public:
  virtual ~OnnxWriter() = default;
  // A float32 initialiser (a weight, in its checkpoint shape) named `name`; returns the name, to
  // pass as a node input.
  virtual std::string initializer(const std::string& name, const Tensor& t) = 0;
  // A node `op_type` reading the previous node's output then `inputs`, writing `output`.
  void node(const std::string& op_type, const std::string& output, const std::vector<std::string>& inputs = {},
            const std::vector<OnnxAttribute>& attributes = {}) {
    add_node(op_type, output, inputs, attributes);
  }
  // Branches (a residual block): the value the next node would read, and a change of it (the
  // block's input again, for its second branch; an Add then joins the two).
  virtual std::string last_output() const = 0;
  virtual void read_from(const std::string& output) = 0;

 protected:
  virtual void add_node(const std::string& op_type, const std::string& output, const std::vector<std::string>& inputs,
                        const std::vector<OnnxAttribute>& attributes) = 0;
};

}  // namespace emotune
