#!/usr/bin/env python3
"""Validate exported Bonsai ONNX models with the ONNX checker and onnxruntime.

Usage: check_onnx.py MANIFEST.json

The manifest (written by xtask/src/bench_onnx.rs) is

    {"models": [{
        "name": "digits-mlp/int8_qdq_int8_io",   # free text, echoed back
        "onnx": "model.onnx",                     # paths relative to the manifest's directory
        "input": "input.bin",                     # raw little-endian, row-major [n_samples, n_in]
        "input_dtype": "float32" | "int8",
        "n_samples": 360, "n_in": 64, "n_out": 10,
        "reference": "reference.bin",             # raw little-endian [n_samples, n_out]
        "output_dtype": "float32" | "int8",       # of both the graph output and the reference
        "atol": 1e-4, "rtol": 1e-4,               # optional: count |out - ref| > atol + rtol*|ref|
        "lsb": 0.0123                             # optional: quantization step of the output
    }, ...]}

and it prints one JSON line per model, in manifest order:

    {"name", "checker_ok", "checker_error", "runtime_error", "onnx_version",
     "onnxruntime_version", "metrics": {
        "n_samples", "n_outputs",
        "max_abs_diff",        # in output units (LSB for int8 outputs)
        "tol_violations",      # null unless atol/rtol were given
        "exact", "one_lsb", "worse",   # disjoint counts; null unless the output is int8 or lsb given
        "top1_agreement"}}     # fraction of samples whose argmax (first maximum) agrees

"metrics" is null when onnxruntime could not run the model. onnxruntime runs with every graph
optimization disabled: fused QDQ kernels may saturate and round differently from the
real-valued QDQ meaning the export promises. The exit status is 0 when every model was
processed (whatever the verdicts; the caller judges them) and 2 on a bad manifest.
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

DTYPES = {"float32": np.dtype("<f4"), "int8": np.dtype("i1")}
# A float difference counts as "exact" / "one LSB" in LSB units with this slack for f32 rounding.
LSB_SLACK = 1e-3
# Samples per onnxruntime run.
BATCH = 500


def read_raw(path, dtype, rows, cols):
    a = np.fromfile(path, dtype=DTYPES[dtype])
    if a.size != rows * cols:
        raise ValueError(f"{path}: {a.size} values, expected {rows}x{cols}")
    return a.reshape(rows, cols)


def compare(out, ref, spec):
    n, k = ref.shape
    if ref.dtype == np.int8:
        diff = np.abs(out.astype(np.int32) - ref.astype(np.int32)).astype(np.float64)
    else:
        diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    m = {
        "n_samples": int(n),
        "n_outputs": int(n * k),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "tol_violations": None,
        "exact": None,
        "one_lsb": None,
        "worse": None,
        "top1_agreement": float(np.mean(np.argmax(out, axis=1) == np.argmax(ref, axis=1)))
        if n
        else 1.0,
    }
    if "atol" in spec or "rtol" in spec:
        tol = spec.get("atol", 0.0) + spec.get("rtol", 0.0) * np.abs(ref.astype(np.float64))
        m["tol_violations"] = int(np.count_nonzero(diff > tol))
    lsb = 1.0 if ref.dtype == np.int8 else spec.get("lsb")
    if lsb is not None:
        d = diff / lsb
        exact = d <= LSB_SLACK
        one = (d > LSB_SLACK) & (d <= 1.0 + LSB_SLACK)
        m["exact"] = int(np.count_nonzero(exact))
        m["one_lsb"] = int(np.count_nonzero(one))
        m["worse"] = int(diff.size - m["exact"] - m["one_lsb"])
    return m


def check_one(spec, base):
    path = os.path.join(base, spec["onnx"])
    line = {
        "name": spec["name"],
        "checker_ok": False,
        "checker_error": None,
        "runtime_error": None,
        "onnx_version": onnx.__version__,
        "onnxruntime_version": ort.__version__,
        "metrics": None,
    }
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        line["checker_ok"] = True
    except Exception as e:  # the verdict is data, not a crash
        line["checker_error"] = f"{type(e).__name__}: {e}"
    try:
        n, n_in, n_out = spec["n_samples"], spec["n_in"], spec["n_out"]
        x = read_raw(os.path.join(base, spec["input"]), spec["input_dtype"], n, n_in)
        ref = read_raw(os.path.join(base, spec["reference"]), spec["output_dtype"], n, n_out)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        # In batches: a whole MNIST test set at once would hold gigabytes of float
        # intermediates in an unoptimized QDQ CNN.
        outs = [sess.run(None, {name: x[i : i + BATCH]})[0] for i in range(0, n, BATCH)]
        out = np.concatenate(outs) if outs else np.zeros((0, n_out), ref.dtype)
        if out.shape != ref.shape or out.dtype != ref.dtype:
            raise ValueError(
                f"output {out.dtype}{list(out.shape)}, expected {ref.dtype}{list(ref.shape)}"
            )
        line["metrics"] = compare(out, ref, spec)
    except Exception as e:
        line["runtime_error"] = f"{type(e).__name__}: {e}"
    return line


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} MANIFEST.json", file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            manifest = json.load(f)
        specs = manifest["models"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"{argv[1]}: bad manifest: {e}", file=sys.stderr)
        return 2
    base = os.path.dirname(os.path.abspath(argv[1]))
    for spec in specs:
        print(json.dumps(check_one(spec, base)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
