#!/usr/bin/env python3
"""Whole-process start-up: `emotune` from the CPU-only build and from the CUDA build (on the CPU),
against Python + ONNX Runtime doing the job of `predict --no-detect` (bench/startup_ort.py).

  bench/startup.py [--cpu-build build-nocuda] [--cuda-build build] [--runs 40]
                   [--before-cpu-build DIR] [--before-cuda-build DIR] [--before-label TEXT]
                   [--json FILE] [--markdown FILE] [--no-ort]

Every command is a fresh process, timed from fork to exit (time.perf_counter around
subprocess.run, output to /dev/null). The commands run round-robin, one of each per round, so that
a change of machine load falls on all of them alike; two warm-up rounds (page cache) are not
counted. Reported: the median and the 10th-90th percentiles of the wall time over --runs rounds,
the median CPU time (user + sys of the process and its threads, from wait4: less sensitive than
the wall time to what else runs on the machine), the number of
shared libraries the process maps (LD_DEBUG=files, one extra run), and the ratios measured in the
same run: CUDA build / CPU-only build for each command, Python + ONNX Runtime / emotune for
predict on one 48x48 face, and with --before-*-build (builds of an older commit, e.g. before a
change to what emotune links) before / now for each command. Provenance (date, commit, CPU, load average, `emotune --version
--verbose`) goes with the table.

The ONNX side exports models/paper.safetensors with `emotune export` and runs in a venv with
pinned onnxruntime, numpy and pillow, made with pip the first time in
${EMOTUNE_STARTUP_VENV:-~/.cache/emotune/startup-venv} (needs PyPI once, like `make onnx-check`).
Python 3 standard library only on this side.
"""
import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQS = "onnxruntime==1.20.1 numpy==1.26.4 pillow==10.4.0"
MODEL = "models/paper.safetensors"
FACE = "tests/data/app/face48.png"   # a 48x48 grey face: no detection, no resize
PHOTO = "examples/face.jpg"          # a photo: dlib's HOG face detector runs


def sh(args, **kw):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, **kw)


def venv_python():
    venv = os.environ.get("EMOTUNE_STARTUP_VENV") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emotune", "startup-venv")
    ok = os.path.join(venv, ".ok")
    if not (os.path.exists(ok) and open(ok).read().strip() == REQS):
        print(f"startup: making {venv} ({REQS})", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check",
                        *REQS.split()], check=True)
        with open(ok, "w") as f:
            f.write(REQS + "\n")
    return os.path.join(venv, "bin", "python")


def libraries(args):
    """Shared libraries the process maps (dlopen'ed ones too), from the loader's trace: one
    "generating link map" line per object loaded (re-executions of the process counted again)."""
    env = dict(os.environ, LD_DEBUG="files")
    r = subprocess.run(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return sum("generating link map" in line for line in r.stderr.splitlines())


def percentile(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-build", default="build-nocuda")
    ap.add_argument("--cuda-build", default="build", help="skipped when it holds no emotune")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--before-cpu-build", help="a CPU-only build of an older commit, timed alongside")
    ap.add_argument("--before-cuda-build", help="a CUDA build of an older commit, timed alongside")
    ap.add_argument("--before-label", default="before", help="what the --before-*-build builds are")
    a = ap.parse_args()

    builds = {}
    for name, d in (("CPU-only", a.cpu_build), ("CUDA", a.cuda_build),
                    (f"CPU-only, {a.before_label}", a.before_cpu_build),
                    (f"CUDA, {a.before_label}", a.before_cuda_build)):
        if d is None:
            continue
        exe = os.path.join(ROOT, d, "bin", "emotune")
        if os.access(exe, os.X_OK):
            builds[name] = exe
        elif name != "CUDA":
            sys.exit(f"startup: no {exe}")
    work = tempfile.mkdtemp(prefix="emotune-startup-")
    commands = []  # (label, build, argv)
    for b, exe in builds.items():
        commands += [("emotune --help", b, [exe, "--help"]),
                     ("emotune predict --no-detect (48x48 face)", b,
                      [exe, "predict", "--no-detect", "--model", MODEL, FACE]),
                     ("emotune predict (photo, HOG detection)", b, [exe, "predict", "--model", MODEL, PHOTO])]
    ort_version = None
    if not a.no_ort:
        py = venv_python()
        onnx = os.path.join(work, "paper.onnx")
        subprocess.run([builds["CPU-only"], "export", "--model", MODEL, "--format", "onnx", "--out", onnx],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        ort_version = sh([py, "-c", "import onnxruntime; print(onnxruntime.__version__)"]).stdout.strip()
        commands.append(("python + onnxruntime (48x48 face)", "Python", [py, "bench/startup_ort.py", onnx, FACE]))

    for label, b, argv in commands:  # every command must work before it is timed
        r = sh(argv)
        if r.returncode != 0:
            sys.exit(f"startup: {' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    load_before = os.getloadavg()
    times = {i: [] for i in range(len(commands))}
    cpu_times = {i: [] for i in range(len(commands))}
    for rnd in range(a.runs + 2):
        for i, (_, _, argv) in enumerate(commands):
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, ru = os.wait4(p.pid, 0)
            wall = 1000 * (time.perf_counter() - t0)
            p.returncode = os.waitstatus_to_exitcode(status)
            if p.returncode != 0:
                sys.exit(f"startup: {' '.join(argv)} failed ({p.returncode}) in round {rnd}")
            if rnd >= 2:
                times[i].append(wall)
                cpu_times[i].append(1000 * (ru.ru_utime + ru.ru_stime))
    load_after = os.getloadavg()

    rows = []
    for i, (label, b, argv) in enumerate(commands):
        t = times[i]
        rows.append({"command": label, "build": b, "argv": argv, "libraries": libraries(argv),
                     "median_ms": statistics.median(t), "p10_ms": percentile(t, 0.1),
                     "p90_ms": percentile(t, 0.9), "median_cpu_ms": statistics.median(cpu_times[i]),
                     "runs": len(t)})
    med = {(r["command"], r["build"]): r["median_ms"] for r in rows}
    cpu_med = {(r["command"], r["build"]): r["median_cpu_ms"] for r in rows}
    ratios = []
    if "CUDA" in builds:
        for label, b, _ in commands:
            if b == "CUDA":
                ratios.append((f"{label}: CUDA build / CPU-only build", med[(label, "CUDA")] / med[(label, "CPU-only")],
                               cpu_med[(label, "CUDA")] / cpu_med[(label, "CPU-only")]))
    for label, b, _ in commands:
        if b.endswith(", " + a.before_label):
            now = b[:-len(", " + a.before_label)]
            if (label, now) in med:
                ratios.append((f"{label}: {now} build, {a.before_label} / now", med[(label, b)] / med[(label, now)],
                               cpu_med[(label, b)] / cpu_med[(label, now)]))
    if not a.no_ort:
        ort_ms = med[("python + onnxruntime (48x48 face)", "Python")]
        for b in ("CPU-only", "CUDA"):
            if b not in builds:
                continue
            nd = ("emotune predict --no-detect (48x48 face)", b)
            ratios.append((f"python + onnxruntime / emotune predict --no-detect ({b} build)", ort_ms / med[nd],
                           cpu_med[("python + onnxruntime (48x48 face)", "Python")] / cpu_med[nd]))

    commit = sh(["git", "rev-parse", "--short=12", "HEAD"]).stdout.strip()
    if sh(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip():
        commit += " (with uncommitted changes)"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    prov = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit,
        "host": platform.node(),
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "load_average_1min": [round(load_before[0], 2), round(load_after[0], 2)],
        "command": shlex.join(["bench/startup.py"] + sys.argv[1:]),
        "version_verbose": {b: sh([exe, "--version", "--verbose"]).stdout.strip() for b, exe in builds.items()},
        "onnxruntime": ort_version,
        "python": platform.python_version(),
    }
    doc = {"provenance": prov, "rows": rows,
           "ratios": [{"what": w, "wall_ratio": r, "cpu_ratio": c} for w, r, c in ratios]}

    md = [f"Measured {prov['date']}, commit {prov['commit']}, {prov['cpu']}, load average "
          f"{prov['load_average_1min'][0]} before and {prov['load_average_1min'][1]} after; "
          f"`{prov['command']}`; {a.runs} timed rounds.", ""]
    for b, v in prov["version_verbose"].items():
        if b not in ("CPU-only", "CUDA"):
            continue  # the older builds: in the JSON
        md.append(f"`emotune --version --verbose` ({b} build): " + "; ".join(v.splitlines()))
        md.append("")
    if ort_version:
        md += [f"ONNX Runtime {ort_version} (CPU provider), Python {prov['python']}.", ""]
    md += ["| command | build | libraries mapped | median wall ms | p10-p90 wall ms | median CPU ms |",
           "|---|---|---:|---:|---|---:|"]
    for r in rows:
        md.append(f"| {r['command']} | {r['build']} | {r['libraries']} | {r['median_ms']:.1f} | "
                  f"{r['p10_ms']:.1f}-{r['p90_ms']:.1f} | {r['median_cpu_ms']:.1f} |")
    md += ["", "| ratio of medians | wall | CPU |", "|---|---:|---:|"]
    md += [f"| {w} | {r:.2f} | {c:.2f} |" for w, r, c in ratios]
    text = "\n".join(md) + "\n"
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
