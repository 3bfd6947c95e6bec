// Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
// Gradient-based Localization", ICCV 2017): where on the face the network looked for a class.
//
// For class c with logit y^c and the feature maps A^k of the explained layer (a late convolution's
// activation, chosen per network in layers/nets/nets.h explained_layer: relu7, 5x5x512, in
// `paper`; relu4_1, 6x6x384, in `vgg`), the weights are the spatially averaged gradients
//     alpha_k = 1/(h w) sum_ij d y^c / d A^k_ij
// and the map is L^c = ReLU(sum_k alpha_k A^k), h x w, in the logit's units (not normalised;
// the overlay scales it). One forward pass in eval mode and one backward pass from the logit
// (not from the softmax, as the paper does), for one face.
//
// Runs the training graph (model.net) in eval mode, so its forward is not the inference graph's
// but computes the same function; the probabilities it returns come from that forward. While it
// runs, the network's parameters are set not to require gradients (only the activation gets
// one), and they are restored after: one explanation at a time per network, like the other
// users of a LoadedModel's net (serve: one pipeline per worker).
#pragma once
#include <string>
#include <vector>

#include "layers/model.h"

namespace emotune {

struct GradCam {
  std::string layer;                 // the child whose output is explained, e.g. "relu7"
  int target = 0;                    // the class explained
  int height = 0, width = 0;         // of the coarse map
  std::vector<float> map;            // height * width, row-major, >= 0
  std::vector<float> probabilities;  // softmax(logits / temperature) of that forward, class order
};

// The index of the child whose output Grad-CAM explains: the child named `name`, or without a
// name the first ReLU after the last Conv2d (before any Flatten; that Conv2d when no ReLU
// follows). Throws when the network is not a Sequential, has no such child or no Conv2d.
size_t gradcam_layer(const Module& net, const std::string& name = "");

// Grad-CAM of one preprocessed face (preprocess.size^2 floats, as prepare_face_inputs gives) for
// class `target`, or for the predicted class when target < 0. Throws on a target out of range.
GradCam grad_cam(const LoadedModel& model, const float* input, int target = -1);

// The coarse map resized to size x size (bilinear, pixel centres aligned as OpenCV's INTER_LINEAR),
// for an overlay on the network's input.
std::vector<float> upsample_map(const GradCam& cam, int size);

}  // namespace emotune
