# Makes python_reference.safetensors with the reference implementation (pip: safetensors, numpy).
import numpy as np
from safetensors import TensorSpec, serialize_file
arrays = {
    "a.weight": ("float32", np.array([[0.0, -1.5, 2.25], [1e-3, 65504.0, -0.0]], dtype=np.float32)),
    "b.half": ("float16", np.array([1.0, -2.0, 0.5, 65504.0], dtype=np.float16)),
    # bfloat16 = the top 16 bits of these (exactly representable) float32 values
    "c.bf16": ("bfloat16", (np.array([1.0, -3.0, 0.15625], dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)),
    "d.scalar": ("float32", np.array(7.0, dtype=np.float32)),
    "e.empty": ("float32", np.zeros((0, 4), dtype=np.float32)),
}
specs = {k: TensorSpec(dtype=dt, shape=list(a.shape), data_ptr=a.ctypes.data, data_len=a.nbytes)
         for k, (dt, a) in arrays.items()}
serialize_file(specs, "python_reference.safetensors",
               metadata={"arch": "fixture", "classes": "[\"x\", \"y\"]"})
