"""Learning curves of the seed's recipe in native Keras, from emotune's initial weights.

Reads what `oracle_dump curve` wrote in DIR (init-INIT.safetensors, train.u8, val.u8 and their
labels), builds the paper network in Keras (keras_oracle.build with Keras' own Dropout and ReLU),
loads the same initial weights and trains with Keras' Adam(1e-4, epsilon 1e-7), batch 16, the
L2 term as a kernel_regularizer. The batch order is Keras' own (a numpy permutation per epoch
seeded with 1), not emotune's: the two runs share the weights, the data and the recipe.
Writes DIR/keras-INIT.csv with the columns of emotune-INIT.csv.
"""
import os
import sys

import numpy as np


def run_curve(out_dir, init, steps=None, every=50, val_every=250):
    import keras
    import tensorflow as tf
    from keras_oracle import build_loaded, read_safetensors
    tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("ORACLE_THREADS", "1")))
    tf.config.threading.set_inter_op_parallelism_threads(1)
    steps = steps or int(os.environ.get("CURVE_STEPS", "500"))
    w, _ = read_safetensors(os.path.join(out_dir, f"init-{init}.safetensors"))
    x = np.fromfile(os.path.join(out_dir, "train.u8"), np.uint8).reshape(-1, 48, 48, 1)
    y = np.fromfile(os.path.join(out_dir, "train-labels.u8"), np.uint8)
    xv = np.fromfile(os.path.join(out_dir, "val.u8"), np.uint8).reshape(-1, 48, 48, 1).astype(np.float32) / 255.0
    yv = np.fromfile(os.path.join(out_dir, "val-labels.u8"), np.uint8)
    layers, _ = build_loaded("paper", w, mask_dropout=False)
    model = keras.Sequential(layers)
    opt = keras.optimizers.Adam(learning_rate=1e-4, epsilon=1e-7)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            logits = model(xb, training=True)
            ce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True))
            total = ce + tf.add_n(model.losses)
        g = tape.gradient(total, model.trainable_variables)
        opt.apply_gradients(zip(g, model.trainable_variables))
        return ce, total, logits

    rng = np.random.default_rng(1)
    rows, k, epoch = [], 0, 0
    ce_sum = tot_sum = correct = seen = 0.0
    path = os.path.join(out_dir, f"keras-{init}.csv")
    with open(path, "w") as f:
        f.write("step,train_ce,train_total,train_acc,val_loss,val_acc\n")
        while k < steps:
            perm = rng.permutation(len(y))
            for b in range(len(y) // 16):
                if k >= steps:
                    break
                idx = perm[b * 16:(b + 1) * 16]
                xb = x[idx].astype(np.float32) / 255.0
                ce, total, logits = step(tf.constant(xb), tf.constant(y[idx].astype(np.int32)))
                correct += float(np.sum(logits.numpy().argmax(1) == y[idx]))
                ce_sum += float(ce) * 16
                tot_sum += float(total) * 16
                seen += 16
                k += 1
                if k % every == 0:
                    v = ","
                    if k % val_every == 0 or k == steps:
                        z = model.predict(xv, batch_size=256, verbose=0)
                        vl = float(np.mean(keras.losses.sparse_categorical_crossentropy(yv, z, from_logits=True)))
                        v = f"{vl:.6f},{float(np.mean(z.argmax(1) == yv)):.6f}"
                    f.write(f"{k},{ce_sum / seen:.6f},{tot_sum / seen:.6f},{correct / seen:.6f},{v}\n")
                    f.flush()
                    print(f"keras {init} step {k}: ce {ce_sum / seen:.4f} acc {correct / seen:.3f} {v}", flush=True)
                    ce_sum = tot_sum = correct = seen = 0.0
            epoch += 1
    return 0


if __name__ == "__main__":
    sys.exit(run_curve(sys.argv[1], sys.argv[2]))
