"""What the bench/vs_*.py drivers share: running one timing program for its JSON line, and the
provenance every figure in docs/benchmarks.md carries (date, commit, CPU, load, command, kernel
path from `emotune --version --verbose`)."""
import datetime
import json
import os
import subprocess
import sys


def venv_python(reqs, env_var, name):
    """The Python of a venv holding `reqs` (pip pins): $env_var if set, else
    ~/.cache/emotune/<name> (XDG_CACHE_HOME respected); made or remade from PyPI when absent or
    holding other pins."""
    venv = os.environ.get(env_var) or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "emotune", name)
    ok = os.path.join(venv, ".ok")
    if not (os.path.exists(ok) and open(ok).read().strip() == reqs):
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check"]
                       + reqs.split(), check=True)
        with open(ok, "w") as f:
            f.write(reqs + "\n")
    return os.path.join(venv, "bin", "python")


def inference_args(doc, rounds):
    """The command line the inference comparisons share (vs_onnxruntime.py, vs_openvino.py)."""
    import argparse
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build-nocuda")
    ap.add_argument("--models", default="paper,vgg")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--json")
    return ap


def inference_cells(emotune, a):
    """The cells of an inference comparison: for each model of --models (exported to ONNX in a
    temporary folder, kept while the cells are walked), batch and thread count, yields (model,
    the .safetensors path, the .onnx path, batch, threads, the flags every timer shares)."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        for model in a.models.split(","):
            src = f"models/{model}.safetensors"
            onnx = os.path.join(tmp, f"{model}.onnx")
            subprocess.run([emotune, "export", "--model", src, "--format", "onnx", "--out", onnx], check=True,
                           capture_output=True)
            for batch in map(int, a.batches.split(",")):
                iters = "30" if batch == 1 else "6"
                for threads in map(int, a.threads.split(",")):
                    yield model, src, onnx, batch, threads, ["--batch", str(batch), "--threads", str(threads),
                                                             "--iters", iters]


def built(build, who, *names):
    """Paths of build/bin/<name>, exiting with a message naming `who` when one is not built."""
    paths = [os.path.join(build, "bin", n) for n in names]
    for b in paths:
        if not os.access(b, os.X_OK):
            sys.exit(f"{who}: {b} not built (cmake -DEMOTUNE_BUILD_BENCH=ON, target {os.path.basename(b)})")
    return paths


def run_json(cmd, env=None):
    """Runs cmd; its last stdout line is a JSON object. Exits naming the command on failure."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{os.path.basename(sys.argv[0])}: {' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def start(emotune, root):
    """The provenance at the start of a run (call from the repository root)."""
    version = subprocess.run([emotune, "--version", "--verbose"], capture_output=True, text=True).stdout
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": commit + ("+uncommitted" if dirty else ""),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "emotune_version_verbose": version,
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "command": " ".join([os.path.relpath(sys.argv[0], root)] + sys.argv[1:]),
    }


def finish(context, rows, json_path):
    """Prints the context lines above a table and writes the JSON (when asked)."""
    context["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    print()
    print(f"Context: {context['date']}; commit {context['commit']}; CPU {context['cpu']}; "
          f"load average {' '.join(context['loadavg_start'])} at the start, {' '.join(context['loadavg_end'])} "
          f"at the end; `{context['command']}`")
    path = [l for l in context["emotune_version_verbose"].splitlines()
            if l.startswith(("openblas core:", "cpu path in use:", "own micro"))]
    print("Kernel path: " + "; ".join(path))
    print()
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"context": context, "rows": rows}, f, indent=1)
