#!/usr/bin/env python3
"""The Keras oracle: recomputes emotune's training step in Keras 3 (TensorFlow backend, CPU).

    keras_oracle.py check DUMP.safetensors [--negative-controls]
        Builds the dumped network (paper or vgg) natively in Keras from its own statement of the
        architecture (below: the seed's layer list), loads emotune's initial weights into it,
        feeds the dumped batches with emotune's dropout masks, and compares: every layer's
        train-mode output, the loss terms, every parameter gradient, the BatchNorm running
        statistics, and the state and eval logits after 1 and N steps of Adam and of SGD with
        Nesterov momentum. Exit status 1 on any mismatch. With --negative-controls it then
        reruns with a deliberately wrong convention (Keras' BN momentum taken as emotune's, and
        dropout without the 1/(1-p) scale) and exits 1 unless each of them is caught.
        A dump made with `oracle_dump step --precision bf16` gets the bf16 check instead
        (run_check_bf16: every layer from emotune's own inputs and output gradients, each product
        against a bound derived from bfloat16's rounding; the loss end to end within 6 sigma of the
        probabilistic rounding model); its negative controls add conv kernels turned by 180 degrees
        and the bound without bf16's term (which must fail: the dump's products are bf16).
    keras_oracle.py curve DIR INIT
        Replays `oracle_dump curve` natively in Keras (Keras' own Dropout and Adam) from the same
        initial weights on the same batches; writes DIR/keras-INIT.csv.

Layouts: emotune is NCHW with conv kernels [K,C,R,S] and dense weights [OUT,IN]; Keras on the
CPU is NHWC with kernels [R,S,C,K] and [IN,OUT]. emotune's Flatten reads (c,h,w), Keras' (h,w,c),
so the dense layer after Flatten gets its input rows permuted.

Conventions mapped (emotune's names on the left):
  BN momentum m (weight of the new batch)  -> Keras momentum 1 - m
  BN running_var: unbiased batch variance  -> Keras keeps the biased one; the oracle adds the
                                              Bessel term m * var / (M - 1) it tracks from
                                              Keras' own BN inputs (var biased, M = N*H*W)
  Adam: w -= lr m^ / (sqrt(v^) + eps)      -> Keras adds eps to sqrt(v) before bias correction;
                                              Keras epsilon = eps * sqrt(1 - beta2^t) each step
  SGD (PyTorch form) v = mu v + g, w -= lr (g + mu v)  -> Keras SGD(nesterov=True), identical
                                              for a constant lr
  L2 l * sum(w^2) on dense1's kernel       -> kernel_regularizer=L2(l), the same expression
"""
import json
import os
import struct
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np  # noqa: E402


# ---------------------------------------------------------------- safetensors (read only, F32)
def read_safetensors_header(f):
    """The JSON header of an open safetensors file; the file is left at the data."""
    n = struct.unpack("<Q", f.read(8))[0]
    return json.loads(f.read(n))


def read_safetensors_meta(path):
    """The metadata alone, without reading the tensors."""
    with open(path, "rb") as f:
        return read_safetensors_header(f).get("__metadata__", {})


def read_safetensors(path):
    with open(path, "rb") as f:
        header = read_safetensors_header(f)
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, h in header.items():
        if h["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {h['dtype']}, expected F32")
        b, e = h["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(h["shape"])
    return out, meta


# ---------------------------------------------------------------- the networks, as the seed states them
# (kind, name, args). Conv: filters, padding, bias, init; BN: emotune momentum, eps; Dense: units, l2.
def paper_spec():
    s = []
    def conv(name, k, pad):
        s.append(("conv", name, dict(filters=k, padding=pad, bias=True)))
        s.append(("relu", "relu" + name[4:], {}))
    conv("conv1", 64, "same"); conv("conv2", 64, "valid")
    s += [("bn", "bn1", dict(m=0.01, eps=1e-3)), ("pool", "pool1", {}), ("drop", "drop1", dict(p=0.3))]
    conv("conv3", 128, "same"); conv("conv4", 128, "same")
    s += [("bn", "bn2", dict(m=0.01, eps=1e-3)), ("pool", "pool2", {}), ("drop", "drop2", dict(p=0.4))]
    conv("conv5", 256, "same"); conv("conv6", 256, "same")
    s += [("bn", "bn3", dict(m=0.01, eps=1e-3)), ("pool", "pool3", {}), ("drop", "drop3", dict(p=0.4))]
    conv("conv7", 512, "same")
    s += [("bn", "bn4", dict(m=0.01, eps=1e-3)), ("pool", "pool4", {}), ("drop", "drop4", dict(p=0.5))]
    s += [("flatten", "flatten", {}), ("dense", "dense1", dict(units=1024, l2=0.001)), ("relu", "relu8", {}),
          ("drop", "drop5", dict(p=0.6)), ("dense", "dense2", dict(units=7, l2=0.0))]
    return s


def vgg_spec():
    s = []
    widths, drops = [64, 128, 256, 384], [0.1, 0.2, 0.3, 0.4]
    for st in range(4):
        for b in range(2):
            i = f"{st + 1}_{b + 1}"
            s += [("conv", "conv" + i, dict(filters=widths[st], padding="same", bias=False)),
                  ("bn", "bn" + i, dict(m=0.1, eps=1e-5)), ("relu", "relu" + i, {})]
        s += [("pool", f"pool{st + 1}", {}), ("drop", f"drop{st + 1}", dict(p=drops[st]))]
    s += [("flatten", "flatten", {}), ("dense", "dense1", dict(units=256, l2=0.0)),
          ("bn", "bn_dense1", dict(m=0.1, eps=1e-5)), ("relu", "relu_dense1", {}),
          ("drop", "drop_dense1", dict(p=0.5)), ("dense", "dense2", dict(units=7, l2=0.0))]
    return s


SPECS = {"paper": paper_spec, "vgg": vgg_spec}
KINK_FRAC = 1e-4  # as oracle_dump's kKinkFrac; Keras' side of the window is twice as wide


def build(arch, *, mask_dropout, bn_momentum_flipped=False, dropout_unscaled=False):
    """Keras layers in order. mask_dropout: dropout applies the mask set on the layer (emotune's);
    otherwise Keras' own Dropout. The two flags are the negative controls' wrong conventions."""
    import keras

    class MaskDropout(keras.layers.Layer):
        """Inverted dropout with an externally given binary mask (emotune's Philox mask)."""
        def __init__(self, rate, name):
            super().__init__(name=name)
            self.rate, self.mask_value = rate, None

        def call(self, x, training=False):
            if not training:
                return x
            scale = 1.0 if dropout_unscaled else 1.0 / (1.0 - self.rate)
            return x * self.mask_value * scale

    class KinkReLU(keras.layers.Layer):
        """max(x, 0) whose 0/1 derivative mask takes emotune's side at the inputs emotune listed
        as within rounding of 0 (`kinks`: flat NCHW index, emotune's x > 0) where Keras' input is
        also within rounding of 0. Elsewhere it is exactly Keras' ReLU. `adopted` counts the
        positions where the two frameworks landed on different sides."""
        def __init__(self, name):
            super().__init__(name=name)
            self.kinks, self.adopted = None, 0

        def call(self, x, training=False):
            if self.kinks is None or not len(self.kinks):
                return keras.ops.relu(x)
            xv = x.numpy()
            keep = xv > 0
            nchw = (xv.shape[0], xv.shape[3], xv.shape[1], xv.shape[2]) if xv.ndim == 4 else xv.shape
            idx = np.unravel_index(self.kinks[:, 0].astype(np.int64), nchw)
            if xv.ndim == 4:
                idx = (idx[0], idx[2], idx[3], idx[1])
            near = np.abs(xv[idx]) <= 2 * KINK_FRAC * np.max(np.abs(xv))
            theirs = self.kinks[:, 1] > 0
            sel = tuple(i[near] for i in idx)
            self.adopted += int(np.sum(keep[sel] != theirs[near]))
            keep[sel] = theirs[near]
            return x * keras.ops.convert_to_tensor(keep.astype(np.float32))

    class KinkMaxPool(keras.layers.Layer):
        """2x2 max pooling written as a one-hot selection per window, so the gradient goes to the
        selected element as MaxPool's does. At the windows emotune listed as near ties (`kinks`:
        flat NCHW output index, emotune's element 0..3) where Keras' two largest inputs are also
        within rounding of each other, it selects emotune's element; elsewhere Keras' argmax."""
        def __init__(self, name):
            super().__init__(name=name)
            self.kinks, self.adopted = None, 0

        def call(self, x, training=False):
            if self.kinks is None:  # building, or eval: Keras' own pooling
                return keras.ops.max_pool(x, 2, 2, padding="valid")
            n, h, w, c = x.shape
            ho, wo = h // 2, w // 2
            win = keras.ops.reshape(x[:, :2 * ho, :2 * wo, :], (n, ho, 2, wo, 2, c))
            win = keras.ops.reshape(keras.ops.transpose(win, (0, 1, 3, 5, 2, 4)), (n, ho, wo, c, 4))
            wv = win.numpy()
            choice = wv.argmax(-1)
            if len(self.kinks):
                o = np.unravel_index(self.kinks[:, 0].astype(np.int64), (n, c, ho, wo))
                sel = (o[0], o[2], o[3], o[1])
                srt = np.sort(wv[sel], -1)
                near = srt[:, 3] - srt[:, 2] <= 2 * KINK_FRAC * np.max(np.abs(wv))
                theirs = self.kinks[:, 1].astype(np.int64)
                sel = tuple(i[near] for i in sel)
                self.adopted += int(np.sum(choice[sel] != theirs[near]))
                choice[sel] = theirs[near]
            onehot = np.eye(4, dtype=np.float32)[choice]
            return keras.ops.sum(win * keras.ops.convert_to_tensor(onehot), axis=-1)

    layers = []
    for kind, name, a in SPECS[arch]():
        if kind == "conv":
            layers.append(keras.layers.Conv2D(a["filters"], 3, padding=a["padding"], use_bias=a["bias"], name=name))
        elif kind == "relu":
            layers.append(KinkReLU(name) if mask_dropout else keras.layers.ReLU(name=name))
        elif kind == "bn":
            mom = a["m"] if bn_momentum_flipped else 1.0 - a["m"]
            layers.append(keras.layers.BatchNormalization(momentum=mom, epsilon=a["eps"], name=name))
        elif kind == "pool":
            layers.append(KinkMaxPool(name) if mask_dropout else keras.layers.MaxPooling2D(2, name=name))
        elif kind == "drop":
            layers.append(MaskDropout(a["p"], name) if mask_dropout else keras.layers.Dropout(a["p"], name=name))
        elif kind == "flatten":
            layers.append(keras.layers.Flatten(name=name))
        elif kind == "dense":
            reg = keras.regularizers.L2(a["l2"]) if a["l2"] > 0 else None
            layers.append(keras.layers.Dense(a["units"], kernel_regularizer=reg, name=name))
    x = keras.Input((48, 48, 1))
    h = x
    shapes = {}
    for layer in layers:
        shapes[layer.name] = tuple(h.shape[1:])  # input shape, NHWC
        h = layer(h)
    return layers, shapes


def build_loaded(arch, weights, prefix="", turn_kernels=False, **build_args):
    """build(arch, **build_args) with emotune's weights (weights[prefix + "layer.field"]) loaded.
    Returns the layers and `shapes` (the input shapes of the dense layers after Flatten, for
    to_keras / from_keras). turn_kernels: conv kernels turned 180 degrees (a negative control)."""
    import keras
    layers, in_shapes = build(arch, **build_args)
    shapes = {}
    for i, layer in enumerate(layers):
        if isinstance(layer, keras.layers.Flatten):
            shapes[layers[i + 1].name + ".flat"] = in_shapes[layer.name]
    for layer in layers:
        for field, var in keras_vars(layer).items():
            name = f"{layer.name}.{field}"
            v = to_keras(name, weights[prefix + name], shapes).astype(np.float32)
            if turn_kernels and isinstance(layer, keras.layers.Conv2D) and field == "weight":
                v = v[::-1, ::-1].copy()
            var.assign(v)
    return layers, shapes


def read_dump(dump_path):
    """A dump, its metadata and the oracle's spec of its network (which must name the same children)."""
    d, meta = read_safetensors(dump_path)
    arch = meta["arch"]
    spec = SPECS[arch]()
    if [n for _, n, _ in spec] != meta["children"].split(","):
        raise SystemExit(f"{dump_path}: emotune's {arch} children {meta['children']} differ from the oracle's spec")
    return d, meta, arch, spec


# ---------------------------------------------------------------- layout conversions
def nchw_to_nhwc(a):
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def to_keras(name, t, in_shapes):
    """emotune tensor `layer.field` -> the Keras variable value."""
    layer, field = name.split(".")
    if t.ndim == 4:                                     # conv kernel [K,C,R,S] -> [R,S,C,K]
        return t.transpose(2, 3, 1, 0)
    if t.ndim == 2:                                     # dense [OUT,IN] -> [IN,OUT]
        shp = in_shapes.get(layer + ".flat")
        if shp is not None:                             # after Flatten: rows (c,h,w) -> (h,w,c)
            h, w, c = shp
            return t.reshape(t.shape[0], c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, t.shape[0])
        return t.T
    return t


def from_keras(name, v, in_shapes):
    """Inverse of to_keras: a Keras value (or gradient) in emotune's layout."""
    layer, _ = name.split(".")
    if v.ndim == 4:
        return v.transpose(3, 2, 0, 1)
    if v.ndim == 2:
        shp = in_shapes.get(layer + ".flat")
        if shp is not None:
            h, w, c = shp
            return v.reshape(h, w, c, v.shape[1]).transpose(3, 2, 0, 1).reshape(v.shape[1], c * h * w)
        return v.T
    return v


def keras_vars(layer):
    """emotune field name -> Keras variable, for one layer."""
    import keras
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
        out = {"weight": layer.kernel}
        if layer.use_bias:
            out["bias"] = layer.bias
        return out
    if isinstance(layer, keras.layers.BatchNormalization):
        return {"gamma": layer.gamma, "beta": layer.beta, "running_mean": layer.moving_mean,
                "running_var": layer.moving_variance}
    return {}


# ---------------------------------------------------------------- comparison
class Report:
    def __init__(self, quiet=False):
        self.failures, self.lines, self.quiet = [], [], quiet

    def record(self, ok, line):
        """One comparison's line: kept, printed unless quiet, and a failure when not ok."""
        if not ok:
            self.failures.append(line)
        self.lines.append(line)
        if not self.quiet:
            print(line)

    def close(self, what, got, ref, rtol, atol_frac, why, atol_abs=0.0):
        """|got - ref| <= atol + rtol |ref| elementwise, atol = atol_frac * max|ref| (the tensor's
        own scale: float32 sums in another order err relative to the largest terms, not to each
        element). Reports the worst element and its index."""
        got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
        if got.shape != ref.shape:
            self.failures.append(f"{what}: shape {got.shape} vs {ref.shape}")
            return
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        atol = atol_frac * scale + atol_abs
        excess = np.abs(got - ref) - (atol + rtol * np.abs(ref))
        i = np.unravel_index(int(np.argmax(excess)), excess.shape) if excess.size else ()
        worst = float(np.max(np.abs(got - ref))) / (scale if scale > 0 else atol_abs if atol_abs > 0 else 1.0)
        ok = not excess.size or float(np.max(excess)) <= 0
        line = (f"{'ok  ' if ok else 'FAIL'} {what:38s} max|d|/max|ref| {worst:.2e} "
                f"(tol rtol {rtol:g} + {atol_frac:g} max|ref|: {why})")
        if not ok:
            line += f"; worst at {tuple(int(k) for k in i)}: emotune {got[i]:.7g} keras {ref[i]:.7g}"
        self.record(ok, line)

    def equal(self, what, got, ref):
        ok = np.array_equal(got, ref)
        line = f"{'ok  ' if ok else 'FAIL'} {what:38s} {'identical' if ok else 'differ: ' + str(np.sum(got != ref)) + ' of ' + str(got.size)}"
        self.record(ok, line)


# Tolerances, each with its reason. ReLU inputs within rounding of 0 take emotune's side (KinkReLU),
# so no kink is crossed differently and nothing below needs slack for one.
# Forward: float32 convolutions summed in another order (oneDNN vs OpenBLAS im2col) over up to
# 2304 terms; ~1e-6 of the tensor's scale per layer, growing through the layers and BN's division
# by batch standard deviations (seen: <= 1.3e-5).
TOL_ACT = (1e-4, 1e-4, "float32 sums in another order, compounded over the layers")
# Gradients: the backward of the above, the same kind of error (seen: <= 2e-5).
TOL_GRAD = (2e-4, 2e-4, "backward of float32 sums in another order")
# BN running stats: batch moments of activations that agree to TOL_ACT.
TOL_BN = (1e-4, 1e-4, "the batch moments of activations that agree to TOL_ACT")
# BN running stats after N steps: Adam moves the noise-level-gradient elements either way (up to
# 2 lr t each, see adam_update), so the two states, and the batch moments they produce, drift
# apart by more than rounding (seen: 1.05e-3 for bn1.running_mean after 10 steps).
TOL_BN_STEPS = (1e-3, 3e-3, "states apart by Adam's noise-level-gradient elements (<= 2 lr t each)")
# Loss: a scalar from logits that agree to TOL_ACT.
TOL_LOSS = (2e-5, 0.0, "mean of float32 log-softmax over agreeing logits")
# SGD update w_t - w_0 = -lr sum(g + mu v): linear in the gradients of t states that drift apart
# by rounding; BN gamma's gradient sums dy * xhat over N*H*W terms of both signs, so its rounding
# is relative to the terms, not to the (small) sum (seen: 2.3e-3 of the scale, bn4.gamma, 10 steps).
# A wrong momentum convention (classic vs Nesterov, dampening) moves updates by tens of percent.
TOL_SGD_UPDATE = (5e-3, 5e-3, "gradients of t drifting states; BN gamma sums terms of both signs")
# Adam: elements whose |g| fell below this fraction of the tensor's max at some step (see adam_update).
ADAM_NOISE = 1e-3
# Adam updates of the other elements, as a fraction of lr t: an element just above ADAM_NOISE
# carries the gradient's rounding (~3e-5 of the scale, TOL_GRAD) as ~3% of its own g; Adam's
# normalised step damps that (seen: <= 1.24e-3 after 10 steps from glorot weights, 6.6e-4 from
# PyTorch-style ones). A wrong epsilon placement, bias correction or beta moves it by far more.
ADAM_UPDATE_TOL = 5e-3
# A gradient that is zero by construction (vgg's dense1.bias feeds a training-mode BN, which
# removes it) is rounding on both sides (seen: 4e-9 against a largest gradient of ~1): compared
# as |g| <= ZERO_GRAD * (the largest gradient of the net) instead of relatively.
ZERO_GRAD = 1e-6
# The per-step losses of 10 steps: states drift apart by Adam's noise-level elements (seen:
# 2.2e-5 from glorot weights).
TOL_LOSS_STEPS = (1e-4, 0.0, "losses of states that drift apart by Adam's noise-level elements")
# ReLU / pooling decisions taken from emotune per 10-step run: the paper net sees ~1e8 ReLU
# inputs in 10 steps of 16; rounding puts ~2e-6 of them on the other side (seen: 206), and this
# bound (2e-5) keeps the adoption from growing unnoticed. A wrong convention shows up as gross
# differences elsewhere, not here: only inputs Keras also has within rounding of a tie are adopted.
KINK_MAX_ADOPTED = 2000


def run_check(dump_path, *, break_mode=None, only_first_step=False, quiet=False):
    import keras
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("ORACLE_THREADS", "2")))
    d, meta, arch, spec = read_dump(dump_path)
    steps = 1 if only_first_step else int(meta["steps"])
    rep = Report(quiet)

    def fresh():
        return build_loaded(arch, d, "init.", mask_dropout=True, bn_momentum_flipped=break_mode == "bn_momentum",
                            dropout_unscaled=break_mode == "dropout_scale")

    def forward(layers, x, k, run, record=False):
        """Train-mode forward with step k's masks; returns logits, per-layer outputs and, for each
        BN layer, the biased variance and count of its input (for the running-var convention)."""
        h = tf.constant(nchw_to_nhwc(x))
        acts, bn_in = {}, {}
        for layer in layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                hv = h.numpy().astype(np.float64)
                axes = tuple(range(hv.ndim - 1))
                bn_in[layer.name] = (hv.var(axis=axes), int(np.prod([hv.shape[a] for a in axes])))
            if hasattr(layer, "mask_value"):
                layer.mask_value = tf.constant(nchw_to_nhwc(d[f"mask.{layer.name}.{k}"]))
            if hasattr(layer, "kinks"):
                layer.kinks = d[f"kink.{run}.{layer.name}.{k}"]
            h = layer(h, training=True)
            if record:
                acts[layer.name] = h.numpy()
        return h, acts, bn_in

    def loss_fn(layers, logits, t):
        ce = tf.reduce_mean(keras.losses.categorical_crossentropy(tf.constant(t), logits, from_logits=True))
        pen = tf.add_n([l for layer in layers for l in layer.losses]) if any(layer.losses for layer in layers) else None
        return ce, pen

    def bessel_update(layers, bessel, bn_in):
        for layer in layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                var, m_count = bn_in[layer.name]
                m = 1.0 - layer.momentum if break_mode != "bn_momentum" else layer.momentum
                bessel[layer.name] = (1 - m) * bessel.get(layer.name, 0.0) + m * var / (m_count - 1)

    def compare_state(layers, shapes, bessel, prefix, label, tol_param):
        for layer in layers:
            for field, var in keras_vars(layer).items():
                name = f"{layer.name}.{field}"
                v = from_keras(name, var.numpy().astype(np.float64), shapes)
                if field == "running_var":
                    v = v + bessel[layer.name]
                tol = TOL_BN if field.startswith("running") else tol_param
                rep.close(f"{label} {name}", d[prefix + name], v, *tol)

    # ---- step 0: activations, loss, gradients, BN statistics
    layers, shapes = fresh()
    x0, t0 = d["x.0"], d["t.0"]
    with tf.GradientTape() as tape:
        logits, acts, bn_in = forward(layers, x0, 0, "step0", record=True)
        ce, pen = loss_fn(layers, logits, t0)
        total = ce + pen if pen is not None else ce
    variables = [(f"{layer.name}.{f}", v) for layer in layers for f, v in keras_vars(layer).items()
                 if f not in ("running_mean", "running_var")]
    grads = tape.gradient(total, [v for _, v in variables])
    for layer in layers:
        ours = d["act." + layer.name]
        if isinstance(layer, keras.layers.Flatten):   # (c,h,w) rows -> (h,w,c)
            h_, w_, c_ = shapes[layers[layers.index(layer) + 1].name + ".flat"]
            ours = ours.reshape(-1, c_, h_, w_).transpose(0, 2, 3, 1).reshape(ours.shape[0], -1)
        rep.close(f"step0 output {layer.name}", nchw_to_nhwc(ours), acts[layer.name], *TOL_ACT)
    rep.close("step0 loss.ce", d["loss.ce"], [float(ce)], *TOL_LOSS)
    if pen is not None:
        rep.close("step0 loss.penalty", d["loss.penalty"], [float(pen)], *TOL_LOSS)
    rep.close("step0 loss.total", d["loss.total"], [float(total)], *TOL_LOSS)
    gscale = max(float(np.max(np.abs(g.numpy()))) for g in grads)
    for (name, _), g in zip(variables, grads):
        ref = from_keras(name, g.numpy(), shapes)
        if np.max(np.abs(ref)) <= ZERO_GRAD * gscale:   # zero by construction: both must be rounding
            rep.close(f"step0 grad {name} (zero)", d["grad." + name], np.zeros_like(ref), 0.0, 0.0, "zero", atol_abs=ZERO_GRAD * gscale)
        else:
            rep.close(f"step0 grad {name}", d["grad." + name], ref, *TOL_GRAD)
    bessel = {}
    bessel_update(layers, bessel, bn_in)
    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for field in ("running_mean", "running_var"):
                v = keras_vars(layer)[field].numpy().astype(np.float64)
                if field == "running_var":
                    v = v + bessel[layer.name]
                rep.close(f"step0 {layer.name}.{field}", d[f"fwd0.{layer.name}.{field}"], v, *TOL_BN)

    # ---- N steps of each optimizer from the same weights. The parameters are compared through
    # their updates (w_t - w_0): the weights themselves agree trivially while lr * g << w.
    for opt_name in ("adam", "sgd"):
        hp = json.loads(meta[opt_name])
        layers, shapes = fresh()
        if opt_name == "adam":
            opt = keras.optimizers.Adam(learning_rate=hp["lr"], beta_1=hp["beta1"], beta_2=hp["beta2"], epsilon=hp["eps"])
        else:
            opt = keras.optimizers.SGD(learning_rate=hp["lr"], momentum=hp["momentum"], nesterov=hp["nesterov"])
        named = [(f"{layer.name}.{f}", v) for layer in layers for f, v in keras_vars(layer).items()
                 if f not in ("running_mean", "running_var")]
        train_vars = [v for _, v in named]
        noisy = {name: np.zeros(v.shape, bool) for name, v in named}
        bessel, losses = {}, []
        for k in range(steps):
            with tf.GradientTape() as tape:
                logits, _, bn_in = forward(layers, d[f"x.{k}"], k, opt_name)
                ce, pen = loss_fn(layers, logits, d[f"t.{k}"])
                total = ce + pen if pen is not None else ce
            g = tape.gradient(total, train_vars)
            gmax = max(float(np.max(np.abs(gk.numpy()))) for gk in g)
            for (name, _), gk in zip(named, g):
                ga = np.abs(gk.numpy())
                noisy[name] |= ga <= max(ADAM_NOISE * ga.max(), ZERO_GRAD * gmax)
            if opt_name == "adam":   # emotune adds eps to sqrt(v^), Keras to sqrt(v)
                opt.epsilon = hp["eps"] * np.sqrt(1.0 - hp["beta2"] ** (k + 1))
            opt.apply_gradients(zip(g, train_vars))
            bessel_update(layers, bessel, bn_in)
            losses.append(float(total))
            if k not in (0, int(meta["steps"]) - 1):
                continue
            label, pre = f"{opt_name} after {k + 1}", f"{opt_name}.{k + 1}."
            for layer in layers:
                for field, var in keras_vars(layer).items():
                    name = f"{layer.name}.{field}"
                    v = from_keras(name, var.numpy().astype(np.float64), shapes)
                    if field.startswith("running"):
                        if field == "running_var":
                            v = v + bessel[layer.name]
                        rep.close(f"{label} {name}", d[pre + name], v, *(TOL_BN if k == 0 else TOL_BN_STEPS))
                        continue
                    ours_upd = d[pre + name].astype(np.float64) - d["init." + name]
                    ref_upd = v - d["init." + name]
                    if opt_name == "sgd":
                        rep.close(f"{label} update {name}", ours_upd, ref_upd, *TOL_SGD_UPDATE,
                                  atol_abs=hp["lr"] * (k + 1) * 2 * ZERO_GRAD * gscale)
                    else:
                        adam_update(rep, f"{label} update {name}", ours_upd, ref_upd,
                                    from_keras(name, noisy[name], shapes), hp["lr"] * (k + 1))
            # Eval logits on a batch never trained on: Keras' BN with emotune's running var.
            for layer in layers:
                if hasattr(layer, "kinks"):
                    layer.kinks = None
            h = tf.constant(nchw_to_nhwc(d["xe"]))
            for layer in layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    saved = layer.moving_variance.numpy()
                    layer.moving_variance.assign((saved + bessel[layer.name]).astype(np.float32))
                    h = layer(h, training=False)
                    layer.moving_variance.assign(saved)
                else:
                    h = layer(h, training=False)
            ours = d[pre + "eval_logits"]
            rep.close(f"{label} eval logits", ours, h.numpy(), *TOL_ACT)
            rep.equal(f"{label} eval predictions", ours.argmax(1), h.numpy().argmax(1))
        rep.close(f"{opt_name} losses of {steps} steps", d[f"{opt_name}.loss"][:steps], losses, *TOL_LOSS_STEPS)
        adopted = sum(layer.adopted for layer in layers if hasattr(layer, "adopted"))
        if not quiet:
            print(f"     {opt_name}: {adopted} ReLU input(s) / pooling window(s) within rounding of a tie took emotune's side")
        if adopted > KINK_MAX_ADOPTED:
            rep.failures.append(f"{opt_name}: {adopted} ReLU kink decisions adopted (> {KINK_MAX_ADOPTED})")
    return rep


# ---------------------------------------------------------------- bf16 (oracle_dump step --precision bf16)
# emotune's bf16 products (kernels/runtime.h) round both operands to bfloat16 and sum in float32;
# everything else stays float32. Keras computes in float32, the exact arithmetic bf16 approximates,
# so the two differ by bf16's rounding, which compounds through the layers in a way no useful
# bound follows. The bf16 check is therefore local: Keras recomputes every layer of step 0 from
# emotune's own input to it (the dumped activation of the layer before) and its backward from
# emotune's own gradient at its output (dact.CHILD), and each product is held, element by element,
# to a bound derived from bf16's rounding for the form emotune ran it in (the dump names each
# conv's forms: kernels/conv2d.h, conv2d_cpu_forms):
#   an operand rounded to 8 significant bits moves by at most u = 2^-8 of itself, so a product of
#   two by at most (1 + u)^2 - 1 = 2u + u^2 of |a b|;
#   direct / im2col / dense: the rounded operands are the terms' own, so the error is at most
#   (2u + u^2) sum |terms|;
#   Winograd F(2x2) backward-weight: the rounded operands are the transformed tiles B^T X B and
#   A dY A^T, whose products reach dw through G^T . G. Taken in magnitudes, a tap's bound then
#   spans the products of x and dy at the other taps' offsets too, with weights up to 2 per axis:
#   sum over offsets of c[r, dr] c[s, ds] S[dr, ds], S the correlation of |x| with |dy| at that
#   offset and c the transforms' magnitudes (winograd2_weight_coeffs). A tap whose own sum is
#   small beside its neighbours' (an edge tap of a padded 6x6 image) can so carry an error larger
#   than its own terms: on `paper`'s conv7 from glorot weights, 1.6 times them, sign flipped.
#   float32 on both sides: a sum of n terms errs by at most n eps of the sum of magnitudes
#   (deterministic worst case), plus 16 eps for the transforms' own roundings, each side.
# A product whose reduction is shorter than kBf16MinReduction runs in float32 (the first conv's
# forward): only the float32 terms apply there. The non-product layers (BatchNorm, ReLU, pooling,
# dropout, Flatten) run float32 in both modes: the fp32 oracle's tolerances. A form without a
# bound here (Winograd forward or backward-input in bf16, F(4x4) in bf16) stops the check.
# End to end, the loss: the worst case (every rounding aligned) propagates to thousands of times
# the loss itself, so the loss is held to the probabilistic bound instead (Higham and Mary 2019:
# rounding errors independent, zero-mean, uniform in +-u of each operand): a forward output y_i
# then carries an error of variance (2 u^2 / 3) sum (a b)^2 over its terms, the loss one of
# sum (dL/dy_i)^2 var_i to first order, with dL/dy_i emotune's own gradient (dact); the check is
# |d| <= 6 sigma (a 2e-9 chance of a false alarm for a Gaussian) plus float32's term.
# Optimizer steps are not repeated in bf16: the optimizer is float32 code the fp32 check covers,
# and a full bf16 training run against the fp32 one is issue 23's point 3b (docs/precision.md).
BF16_U = 2.0 ** -8
BF16_PRODUCT = 2 * BF16_U + BF16_U ** 2
F32_EPS = float(np.finfo(np.float32).eps)
LOSS_SIGMAS = 6.0
# F(2x2, 3x3)'s matrices (kernels/cpu/conv2d_infer.cpp): dw = G^T [(B^T X B) . (A dY A^T)] G.
WG_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float)
WG_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], float)
WG_A = np.array([[1, 0], [1, 1], [1, -1], [0, -1]], float)


def winograd2_pair_coeffs(signed=False):
    """k[a, r, d + 1]: the weight of the pair (x's tile element a + d, dy's tile element a) in tap
    r of dw, one dimension, d in -1..3; in magnitudes (the bound's) or signed. Signed, it is 1 on
    d = r and 0 elsewhere for either a (the transforms compute the direct sum exactly)."""
    f = (lambda v: v) if signed else abs
    k = np.zeros((2, 3, 5))
    for a in range(2):
        for r in range(3):
            for d in range(-1, 4):
                if 0 <= a + d < 4:
                    k[a, r, d + 1] = sum(f(WG_G[i, r]) * f(WG_BT[i, a + d]) * f(WG_A[i, a]) for i in range(4))
    return k


assert all(np.allclose(m, np.eye(3, 5, 1)) for m in winograd2_pair_coeffs(signed=True)), "F(2x2) matrices"


def winograd2_weight_coeffs():
    """c[r, d]: the weight of the correlation at offset d (0..2) in tap r's bound, one dimension
    (two: the outer product). A tile pairs each dy element a with x's elements a - 1 .. a + 3;
    over the tiles, the pairs of output parity a sum to a part of the correlation at offset d, the
    two parts to all of it, so the larger of the two pair weights bounds it. Offsets -1 and 3 carry
    no weight (asserted): only the taps' own offsets do."""
    c = winograd2_pair_coeffs().max(axis=0)
    assert not c[:, [0, 4]].any()
    return c[:, 1:4]


def product_factor(reduction, bf16):
    """Bound on |emotune - keras| per unit of the (possibly transform-weighted) sum of |terms|."""
    return (BF16_PRODUCT if bf16 else 0.0) + 2 * (reduction + 16) * F32_EPS


def abs_correlation(x, dy, pad, offsets):
    """S[k, c, i, j] = sum over n and outputs o of |x[n, c, o + d_i - pad]| |dy[n, k, o]| (x zero
    outside), for the offsets d_i, both axes; NCHW float64."""
    ax, ady = np.abs(x.astype(np.float64)), np.abs(dy.astype(np.float64))
    n, c, h, w = ax.shape
    _, k, oh, ow = ady.shape
    lo, hi = pad - min(offsets), max(offsets) + oh - pad
    xp = np.zeros((n, c, h + lo + max(0, hi - h), w + lo + max(0, hi - w)))
    xp[:, :, lo:lo + h, lo:lo + w] = ax
    out = np.zeros((k, c, len(offsets), len(offsets)))
    for i, di in enumerate(offsets):
        for j, dj in enumerate(offsets):
            xs = xp[:, :, lo + di - pad:lo + di - pad + oh, lo + dj - pad:lo + dj - pad + ow]
            out[:, :, i, j] = np.tensordot(ady, xs, axes=([0, 2, 3], [0, 2, 3]))
    return out


def weight_bound(form, x, dy, pad):
    """Sum of |terms| of dw [K, C, 3, 3], transform-weighted for Winograd F(2x2)."""
    if form in ("im2col", "direct-bf16", "direct-fp32"):
        return abs_correlation(x, dy, pad, [0, 1, 2])
    if form == "winograd2":
        c = winograd2_weight_coeffs()
        return np.einsum("ri,sj,kcij->kcrs", c, c, abs_correlation(x, dy, pad, [0, 1, 2]))
    raise SystemExit(f"keras_oracle: no bf16 bound for a backward-weight in form {form}")


def bound_close(rep, what, got, ref, bound, factor):
    """|got - ref| <= factor * bound elementwise (bound: the sum of the terms' magnitudes)."""
    got, ref, bound = (np.asarray(a, np.float64) for a in (got, ref, bound))
    if got.shape != ref.shape:
        rep.failures.append(f"{what}: shape {got.shape} vs {ref.shape}")
        return 0.0
    ratio = np.abs(got - ref) / np.maximum(factor * bound, 1e-30)
    worst = float(ratio.max())
    ok = worst <= 1.0
    line = (f"{'ok  ' if ok else 'FAIL'} {what:38s} worst {worst:.2e} of the bound "
            f"({factor:.3g} x sum |terms|)")
    if not ok:
        i = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        line += f"; worst at {tuple(int(k) for k in i)}: emotune {got[i]:.7g} keras {ref[i]:.7g}"
    rep.record(ok, line)
    return worst


def run_check_bf16(dump_path, *, break_mode=None, quiet=False):
    """The local check of a bf16 dump (see above). break_mode: the negative controls' wrong
    conventions (bn_momentum, dropout_scale as in run_check; kernel_flipped: Keras' kernels turned
    by 180 degrees, convolution for cross-correlation)."""
    import keras
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("ORACLE_THREADS", "2")))
    d, meta, arch, spec = read_dump(dump_path)
    min_red = int(meta["bf16_min_reduction"])
    rep = Report(quiet)
    layers, shapes = build_loaded(arch, d, "init.", turn_kernels=break_mode == "kernel_flipped", mask_dropout=True,
                                  bn_momentum_flipped=break_mode == "bn_momentum",
                                  dropout_unscaled=break_mode == "dropout_scale")
    x0 = d["x.0"]
    gscale = max(float(np.max(np.abs(v))) for k, v in d.items() if k.startswith("grad."))

    def grad_close(what, ours, ref):
        """A float32 gradient; one that is zero by construction (vgg's dense1.bias feeds a
        training-mode BN) is rounding on both sides: compared against ZERO_GRAD, as run_check does."""
        if np.max(np.abs(ref)) <= ZERO_GRAD * gscale:
            rep.close(what + " (zero)", ours, np.zeros_like(ref), 0.0, 0.0, "zero", atol_abs=ZERO_GRAD * gscale)
        else:
            rep.close(what, ours, ref, *TOL_GRAD)

    def nhwc(a, layer_index):
        """A dumped NCHW activation (the output of child layer_index) in Keras' layout."""
        if isinstance(layers[layer_index], keras.layers.Flatten):   # (c,h,w) rows -> (h,w,c)
            h_, w_, c_ = shapes[layers[layer_index + 1].name + ".flat"]
            return a.reshape(-1, c_, h_, w_).transpose(0, 2, 3, 1).reshape(a.shape[0], -1)
        return nchw_to_nhwc(a)

    worst = {"forward": 0.0, "backward-data": 0.0, "backward-weights": 0.0}
    loss_var = 0.0
    conv_forms = json.loads(meta["conv_forms"])
    for i, layer in enumerate(layers):
        x_in_nchw = x0 if i == 0 else d["act." + layers[i - 1].name]
        x_in = tf.constant(nchw_to_nhwc(x0) if i == 0 else nhwc(x_in_nchw, i - 1))
        dy = tf.constant(nhwc(d["dact." + layer.name], i))
        y_ours = nhwc(d["act." + layer.name], i)
        if hasattr(layer, "mask_value"):
            layer.mask_value = tf.constant(nchw_to_nhwc(d[f"mask.{layer.name}.0"]))
        if hasattr(layer, "kinks"):
            layer.kinks = d[f"kink.step0.{layer.name}.0"]
        if isinstance(layer, keras.layers.BatchNormalization):
            hv = x_in.numpy().astype(np.float64)
            axes = tuple(range(hv.ndim - 1))
            var_b, count = hv.var(axis=axes), int(np.prod([hv.shape[a] for a in axes]))
        params = [(f"{layer.name}.{f}", v) for f, v in keras_vars(layer).items()
                  if f not in ("running_mean", "running_var")]
        with tf.GradientTape() as tape:
            tape.watch(x_in)
            y = layer(x_in, training=True)
        g = tape.gradient(y, [x_in] + [v for _, v in params], output_gradients=dy)
        is_product = isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
        if not is_product:
            rep.close(f"local output {layer.name}", y_ours, y.numpy(), *TOL_ACT)
            if i > 0:
                rep.close(f"local grad-in {layer.name}", nhwc(d["dact." + layers[i - 1].name], i - 1), g[0].numpy(), *TOL_GRAD)
            for (name, _), gk in zip(params, g[1:]):
                grad_close(f"local grad {name}", d["grad." + name], from_keras(name, gk.numpy(), shapes))
            if isinstance(layer, keras.layers.BatchNormalization):
                m = 1.0 - layer.momentum if break_mode != "bn_momentum" else layer.momentum
                bessel = m * var_b / (count - 1)
                for field in ("running_mean", "running_var"):
                    v = keras_vars(layer)[field].numpy().astype(np.float64)
                    if field == "running_var":
                        v = v + bessel
                    rep.close(f"local {layer.name}.{field}", d[f"fwd0.{layer.name}.{field}"], v, *TOL_BN)
            continue
        # A product layer: the same product on magnitudes gives each element's sum of |terms|,
        # on squares the variance of its rounding (the loss's bound).
        w = layer.kernel
        ax, aw, ady = tf.abs(x_in), tf.Variable(tf.abs(w)), tf.abs(dy)
        conv = isinstance(layer, keras.layers.Conv2D)
        prod = ((lambda a, b: tf.nn.conv2d(a, b, 1, layer.padding.upper())) if conv else tf.matmul)
        with tf.GradientTape() as tape:
            tape.watch(ax)
            y_abs = prod(ax, aw)
        gx_abs, gw_abs = tape.gradient(y_abs, [ax, aw], output_gradients=ady)
        y_sq = prod(tf.square(x_in), tf.square(w)).numpy()
        if conv:
            kh, kw, c, k = w.shape
            red = [kh * kw * c, kh * kw * k, int(np.prod(dy.shape[:-1]))]
            forms = conv_forms[layer.name]
        else:
            c, k = w.shape
            red = [c, k, int(dy.shape[0])]
            forms = ["gemm"] * 3   # a GEMM of the terms themselves
        for f_ in forms[:2]:
            if f_ not in ("direct-bf16", "direct-fp32", "im2col", "gemm"):
                raise SystemExit(f"keras_oracle: no bf16 bound for {layer.name}'s form {f_} (forms {forms})")
        # bf16 where the form is the direct bf16 one or the GEMM's reduction reaches kBf16MinReduction;
        # the thin direct form (the first conv) is float32 always.
        runs_bf16 = [f_ == "direct-bf16" or (f_ != "direct-fp32" and r >= min_red) for f_, r in zip(forms, red)]
        fb = [product_factor(r, b16 and break_mode != "fp32_bound") for r, b16 in zip(red, runs_bf16)]
        y_bound = y_abs.numpy()
        if layer.use_bias:   # the bias adds one exact term per output: float32's rounding of it
            y_bound = y_bound + np.abs(layer.bias.numpy())
        worst["forward"] = max(worst["forward"], bound_close(rep, f"local output {layer.name}", y_ours, y.numpy(), y_bound, fb[0]))
        if runs_bf16[0]:
            loss_var += (2 * BF16_U ** 2 / 3) * float(np.sum(np.square(dy.numpy().astype(np.float64)) * y_sq))
        if i > 0:
            worst["backward-data"] = max(worst["backward-data"], bound_close(
                rep, f"local grad-in {layer.name}", nhwc(d["dact." + layers[i - 1].name], i - 1), g[0].numpy(),
                gx_abs.numpy(), fb[1]))
        for (name, v), gk in zip(params, g[1:]):
            ref = gk.numpy()
            field = name.split(".")[1]
            if field == "weight":
                spec_l2 = dict((n, a) for _, n, a in spec)[layer.name].get("l2", 0.0)
                ref = from_keras(name, ref + 2 * spec_l2 * v.numpy(), shapes)  # emotune's includes the L2 term's
                if conv:
                    bound = weight_bound(forms[2], x_in_nchw, d["dact." + layer.name], int(layer.padding == "same"))
                else:
                    bound = from_keras(name, gw_abs.numpy(), shapes)
                bound = bound + from_keras(name, 2 * spec_l2 * np.abs(v.numpy()), shapes)
                worst["backward-weights"] = max(worst["backward-weights"], bound_close(
                    rep, f"local grad {name} ({forms[2]})", d["grad." + name], ref, bound, fb[2]))
            else:   # the bias gradient: a float32 sum of dy, as in fp32
                grad_close(f"local grad {name}", d["grad." + name], ref)

    # End to end: Keras' float32 loss from the same batch, masks and weights, its own ReLU and
    # pooling decisions, against the probabilistic bound of the forward products' rounding.
    for layer in layers:
        if hasattr(layer, "kinks"):
            layer.kinks = np.zeros((0, 2), np.float32)
    h = tf.constant(nchw_to_nhwc(x0))
    for layer in layers:
        h = layer(h, training=True)
    ce = float(tf.reduce_mean(keras.losses.categorical_crossentropy(tf.constant(d["t.0"]), h, from_logits=True)))
    got = float(d["loss.ce"][0])
    sigma = float(np.sqrt(loss_var))
    tol = LOSS_SIGMAS * sigma + TOL_LOSS[0] * abs(ce)
    ok = abs(got - ce) <= tol
    line = (f"{'ok  ' if ok else 'FAIL'} {'step0 loss.ce, end to end':38s} |d| {abs(got - ce):.3e} = "
            f"{abs(got - ce) / sigma:.2f} sigma of bf16's rounding (tol {LOSS_SIGMAS:g} sigma + float32's)")
    if not ok:
        line += f": emotune {got:.7g} keras {ce:.7g}"
    rep.record(ok, line)
    if not quiet:
        print(f"     worst error / bound per direction: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    return rep


def adam_update(rep, what, ours, ref, noisy, lr_total):
    """Adam moves an element by ~lr sign(g) whatever |g|, so an element whose gradient was at
    float-noise level at some step (|g| <= ADAM_NOISE max|g|; gradients agree to ~1e-5 of the
    scale) may step either way: those are only bounded (|d| <= 2 lr t, their fraction reported).
    Every other element's update must agree to 1e-3 of lr t: a wrong epsilon placement, bias
    correction or beta changes it by far more."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    diff = np.abs(ours - ref)
    clean = ~noisy
    worst = float(np.max(diff[clean]) / lr_total) if np.any(clean) else 0.0
    ok = worst <= ADAM_UPDATE_TOL and float(np.max(diff)) <= 2 * lr_total
    line = (f"{'ok  ' if ok else 'FAIL'} {what:38s} max|d|/(lr t) {worst:.2e} (tol {ADAM_UPDATE_TOL:g}: Adam's step "
            f"~lr sign(g); {np.mean(noisy):.2%} elements with noise-level g only bounded by 2 lr t)")
    if not ok:
        i = np.unravel_index(int(np.argmax(np.where(clean, diff, -1))), diff.shape)
        line += f"; worst at {tuple(int(j) for j in i)}: emotune {ours[i]:.4g} keras {ref[i]:.4g}"
    rep.record(ok, line)


def main():
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "check":
        bf16 = read_safetensors_meta(args[1]).get("precision", "fp32") == "bf16"
        check = run_check_bf16 if bf16 else run_check
        rep = check(args[1])
        if rep.failures:
            print(f"\nkeras_oracle: {len(rep.failures)} mismatch(es) in {args[1]}:")
            for f in rep.failures:
                print("  " + f)
            return 1
        print(f"keras_oracle: {args[1]}: {len(rep.lines)} comparisons agree with Keras")
        if "--negative-controls" in args:
            modes = ("bn_momentum", "dropout_scale") + (("kernel_flipped", "fp32_bound") if bf16 else ())
            for mode in modes:
                bad = (run_check_bf16(args[1], break_mode=mode, quiet=True) if bf16 else
                       run_check(args[1], break_mode=mode, only_first_step=True, quiet=True))
                if not bad.failures:
                    print(f"keras_oracle: negative control '{mode}' was NOT caught: the oracle cannot fail")
                    return 1
                print(f"keras_oracle: negative control '{mode}' caught ({len(bad.failures)} mismatches, e.g. "
                      f"{bad.failures[0][:110]}...)")
        return 0
    if len(args) == 3 and args[0] == "curve":
        from keras_curve import run_curve
        return run_curve(args[1], args[2])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
