#!/usr/bin/env python3
"""The dependency rules of emotune's libraries, checked against the code, and drawn.

The allowed edges are written here and nowhere else (ALLOWED, EXTERNAL_ALLOWED). Two graphs are
read from the real build inputs and compared with them:
  * the #include graph: every "..." include of every source file under the library folders,
    mapped to the module (folder) that holds the included file;
  * the environment: no source file below apps/ calls getenv (ENV_FREE); the runtime settings are
    read once, in apps/runtime_env.cpp, and handed down (engine/runtime.h);
  * the link graph: the LINK_LIBRARIES of every emotune library target, written by CMake at
    configure time (cmake/link_graph.cmake) into <build>/link_graph.txt, closed transitively, so a
    library that links OpenCV through another one is caught too.
Any edge not allowed is a back-edge (or a sideways edge) and fails the check.

  scripts/deps.py check [--build DIR] [--selftest]
                                        exit 1 with every offending file:line (and link) named;
                                        --selftest first injects back-edges and requires them caught
  scripts/deps.py docs                  rewrite the generated graph in docs/architecture.md and
                                        docs/dependencies.dot (+ .svg when graphviz is installed)
  scripts/deps.py docs --check          exit 1 when those files are not what the code gives
"""
import argparse
import hashlib
import html
import os
import re
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Modules, bottom to top: (folder, library target, one line on what it holds). A source file
# belongs to the longest folder that is a prefix of its path.
MODULES = [
    ("base", "emotune_base", "errors, image decode/resize/crop, input preprocessing, plugin loader; no OpenCV"),
    ("kernels", "emotune_kernels_cpu", "the math: op contracts, CPU reference + fast paths"),
    ("kernels/cuda", "emotune_kernels_cuda", "hand-written CUDA kernels, cuBLAS; a plugin, loaded on first CUDA use"),
    ("engine", "emotune_engine", "tensor, autograd, dispatch, ops, optimizers, checkpoints"),
    ("layers", "emotune_layers", "Module API, the paper, vgg and resnet18 networks, model loading"),
    ("datasets", "emotune_datasets", "FER-2013 CSV/packed/folders, FER+, sampler, augment, loader"),
    ("apps/vision", "emotune_vision", "face detection (dlib HOG, OpenCV cascades), landmarks, face crops"),
    ("apps/music", "emotune_music", "mood tables and ranking"),
    ("apps/pipeline", "emotune_pipeline", "the inference pipeline: image -> faces -> probabilities"),
    ("apps/report", "emotune_report", "the documents the commands print: JSON, CSV, text"),
    ("apps/export", "emotune_export", "ONNX export: a small protobuf writer, no libprotobuf"),
    ("apps/video", "emotune_video", "emotune watch: tracker, smoothing, video I/O, timeline"),
    ("apps/video/plugin", "emotune_videoio", "the video codec plugin (OpenCV videoio, FFmpeg), loaded by watch only"),
    ("apps/train", "emotune_train", "the training loop in named steps, metrics, plots"),
    ("apps/serve", "emotune_serve", "emotune serve: HTTP API, worker pool, limits, the embedded page"),
    ("apps", "emotune_commands", "the emotune commands: parse flags, format output"),
]

# module -> the modules its files may include directly. Everything else is a back-edge.
ALLOWED = {
    "base": [],
    "kernels": ["base"],
    "kernels/cuda": ["kernels", "base"],
    # Not kernels/cuda: the engine loads it as a plugin through the C entry in kernels/table.h.
    "engine": ["kernels", "base"],
    "layers": ["engine", "kernels", "base"],
    "datasets": ["kernels", "base"],
    "apps/vision": ["base"],
    "apps/music": ["base"],
    "apps/pipeline": ["apps/vision", "apps/music", "layers", "engine", "base"],
    "apps/report": ["apps/pipeline", "apps/music", "apps/vision", "layers", "engine", "base"],
    # The front ends reach detection, crops, the network and the explanation pictures only
    # through the pipeline's entry points (apps/pipeline/pipeline.h), so none assembles stages.
    "apps/video": ["apps/pipeline", "apps/music", "base"],
    "apps/video/plugin": ["apps/video", "base"],  # implements apps/video/videoio_plugin.h
    "apps/train": ["datasets", "layers", "engine", "kernels", "base"],
    "apps/export": ["layers", "engine", "base"],
    "apps/serve": ["apps/report", "apps/pipeline", "apps/music", "base"],
    # The commands reach CPU features and threads through engine/runtime.h, not the kernels.
    "apps": ["apps/serve", "apps/train", "apps/export", "apps/report", "apps/video", "apps/pipeline", "apps/vision", "apps/music", "datasets", "layers",
             "engine", "base"],
}

# Third-party headers (by <...> prefix) and libraries (by link name), and who may use them.
EXTERNALS = {
    "OpenCV": (r"opencv2/", r"opencv_"),
    "dlib": (r"dlib/", r"dlib"),
    "OpenBLAS": (r"cblas\.h$", r"openblas"),
    "CUDA": (r"(cuda_runtime|cublas|cudnn|cuda)[_a-z0-9]*\.h$", r"CUDA::|cudnn"),
    "videoio": (r"opencv2/videoio", r"opencv_videoio"),
    "cpp-httplib": (r"^httplib\.h$", r"HTTPLIB|cpp-httplib"),
    "OpenSSL": (r"^openssl/", r"OpenSSL::"),
}
EXTERNAL_ALLOWED = {  # may include its headers / link it directly
    "OpenCV": ["apps/vision", "apps/video", "apps/video/plugin", "apps/train", "apps"],
    "dlib": ["apps/vision"],
    "OpenBLAS": ["kernels"],
    "CUDA": ["kernels/cuda"],
    "videoio": ["apps/video/plugin"],
    "cpp-httplib": ["apps/serve"],
    "OpenSSL": ["apps/serve"],
}
# Libraries that must not be reached even through another target's links: the network and data
# libraries stay usable without OpenCV (a trainer or a server without face detection).
NEVER_REACH = {
    "OpenCV": ["base", "kernels", "kernels/cuda", "engine", "layers", "datasets", "apps/music"],
    "dlib": ["base", "kernels", "kernels/cuda", "engine", "layers", "datasets", "apps/music"],
    # The plugins (base/plugin.h): cuBLAS and FFmpeg are loaded at run time by the command that
    # uses them, so no library the emotune executable links may reach them (each costs ~0.2 s of
    # every process start; docs/benchmarks.md).
    "CUDA": [m[0] for m in MODULES if m[0] != "kernels/cuda"],
    "videoio": [m[0] for m in MODULES if m[0] != "apps/video/plugin"],
}

# Modules whose files may not read the environment: every setting reaches them through the runtime
# settings object (engine/runtime.h), built from the environment in apps/ (apps/runtime_env.h), so
# that tests, benchmarks and the emotune binary all see the same values, checked in one place.
ENV_FREE = ["base", "kernels", "engine", "layers", "datasets"]
GETENV_RE = re.compile(r"\bgetenv\s*\(")

# Modules drawn side by side in the picture (no edge between them).
RANKS = [["layers", "datasets"], ["kernels", "kernels/cuda"], ["apps/vision", "apps/music"]]

LIB_FOLDERS = sorted({m[0].split("/")[0] for m in MODULES})
SOURCE_EXT = (".h", ".hpp", ".cpp", ".cu", ".cuh")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


def module_of(path):
    best = None
    for folder, _, _ in MODULES:
        if path == folder or path.startswith(folder + "/"):
            if best is None or len(folder) > len(best):
                best = folder
    return best


def source_files():
    for top in LIB_FOLDERS:
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in sorted(files):
                if f.endswith(SOURCE_EXT):
                    yield os.path.relpath(os.path.join(dirpath, f), ROOT)


def include_graph():
    """[(from_module, to_module_or_external, file, line, included)]"""
    edges = []
    for rel in source_files():
        src = module_of(rel)
        with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                kind, inc = m.groups()
                if kind == '"':
                    if "/" not in inc:
                        continue  # a sibling file, same module
                    dst = module_of(inc)
                    if dst is None:
                        continue  # tests/… helpers are not included by libraries (checked below)
                    if dst != src:
                        edges.append((src, dst, rel, n, inc))
                else:
                    for name, (header_re, _) in EXTERNALS.items():
                        if re.search(header_re, inc):
                            edges.append((src, name, rel, n, inc))
    return edges


def getenv_calls():
    """[(file, line, text)] for every getenv call in an ENV_FREE module (comments skipped)."""
    calls = []
    for rel in source_files():
        if rel.split("/")[0] not in ENV_FREE:
            continue
        with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                code = line.split("//")[0]
                if GETENV_RE.search(code):
                    calls.append((rel, n, line.strip()))
    return calls


def link_graph(build):
    """{target: set(direct link items)} as CMake wrote it, or None without a build folder."""
    path = os.path.join(build, "link_graph.txt") if build else None
    if not path or not os.path.exists(path):
        return None
    graph = {}
    with open(path) as fh:
        for line in fh:
            target, _, deps = line.rstrip("\n").partition(": ")
            graph[target] = {d for d in deps.split(";") if d}
    return graph


def closure(graph, target):
    seen, stack = set(), [target]
    while stack:
        for d in graph.get(stack.pop(), ()):
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return seen


def check(build, extra_includes=(), extra_links=None, quiet=False, extra_getenv=()):
    """Prints every problem and returns their number. extra_includes / extra_links /
    extra_getenv inject edges and calls for the self-test."""
    problems = []
    for rel, n, text in getenv_calls() + list(extra_getenv):
        problems.append(f"{rel}:{n}: reads the environment ({text}); below apps/ settings come from "
                        f"the runtime settings (engine/runtime.h, built in apps/runtime_env.cpp)")
    for src, dst, rel, n, inc in include_graph() + list(extra_includes):
        if dst in EXTERNALS:
            if src not in EXTERNAL_ALLOWED[dst]:
                problems.append(f"{rel}:{n}: {src} includes <{inc}> ({dst} is allowed only in "
                                f"{', '.join(EXTERNAL_ALLOWED[dst])})")
        elif dst not in ALLOWED[src]:
            problems.append(f"{rel}:{n}: {src} includes \"{inc}\" ({src} -> {dst} is not an "
                            f"allowed edge; allowed: {', '.join(ALLOWED[src]) or 'none'})")
    graph = link_graph(build)
    if graph is not None and extra_links:
        for t, deps in extra_links.items():
            graph.setdefault(t, set()).update(deps)
    linked = 0
    if graph is not None:
        target_module = {}
        for folder, target, _ in MODULES:
            target_module.setdefault(target, folder)
        for target in graph:
            src = target_module.get(target)
            if src is None:
                continue
            linked += 1
            allowed_targets = {t for f, t, _ in MODULES if f in ALLOWED[src] or f == src}
            reach = closure(graph, target)
            for d in sorted(graph[target]):
                if d.startswith("emotune_") and d not in allowed_targets:
                    problems.append(f"link: {target} links {d}, a module {src} may not depend on")
            for name, (_, lib_re) in EXTERNALS.items():
                direct = sorted(d for d in graph[target] if re.search(lib_re, d) and not d.startswith("emotune_"))
                if direct and src not in EXTERNAL_ALLOWED[name]:
                    problems.append(f"link: {target} links {name} ({', '.join(direct[:3])}); only "
                                    f"{', '.join(EXTERNAL_ALLOWED[name])} may")
                reached = sorted(d for d in reach if re.search(lib_re, d) and not d.startswith("emotune_"))
                if reached and src in NEVER_REACH.get(name, ()):
                    problems.append(f"link: {target} reaches {name} ({', '.join(reached[:3])}) "
                                    f"through its link graph; {src} must stay free of it")
    if not quiet:
        for p in problems:
            print("deps: " + p)
        n_edges = len(include_graph())
        where = f"{linked} library targets' link graphs" if graph is not None else "no link graph (no --build)"
        print(f"deps: {n_edges} cross-module includes checked, {where}: "
              f"{'FAILED, ' + str(len(problems)) + ' back-edge(s)' if problems else 'all edges allowed'}")
    return problems


def selftest(build):
    """The check must catch what it exists for: each injected back-edge alone must be reported."""
    cases = [
        ("layers includes a datasets header", [("layers", "datasets", "layers/model.h", 1, "datasets/loader.h")], None),
        ("datasets includes OpenCV", [("datasets", "OpenCV", "datasets/grid.cpp", 1, "opencv2/core.hpp")], None),
        ("kernels includes engine", [("kernels", "engine", "kernels/cuda/check.h", 1, "engine/tensor.h")], None),
        ("datasets links emotune_vision (and so OpenCV)", (), {"emotune_datasets": {"emotune_vision"}}),
        ("layers links OpenCV directly", (), {"emotune_layers": {"opencv_core"}}),
        ("the commands link the video plugin (FFmpeg at every start)", (), {"emotune_commands": {"emotune_videoio"}}),
        ("the engine links cuBLAS (its constructors at every start)", (), {"emotune_engine": {"CUDA::cublas"}}),
        ("apps/video links videoio itself", (), {"emotune_video": {"opencv_videoio"}}),
        ("a kernel reads the environment", (), None,
         [("kernels/cpu/conv2d.cpp", 1, 'const char* v = std::getenv("EMOTUNE_TRAIN_CONV");')]),
    ]
    failed = 0
    baseline = set(check(build, quiet=True))  # an injected edge must add a problem of its own
    for what, incs, links, *getenvs in cases:
        if links is not None and link_graph(build) is None:
            print(f"deps selftest: {what}: needs --build with link_graph.txt")
            failed += 1
            continue
        found = [p for p in check(build, incs, links, quiet=True, extra_getenv=getenvs[0] if getenvs else ())
                 if p not in baseline]
        ok = len(found) >= 1
        print(f"deps selftest: {what}: {'caught: ' + found[0] if ok else 'NOT CAUGHT'}")
        failed += not ok
    return failed


# --- the picture ------------------------------------------------------------------------------

def node_id(name):
    return re.sub(r"[^A-Za-z0-9]", "_", name)


def graph_edges():
    counts = defaultdict(int)
    for src, dst, *_ in include_graph():
        counts[(src, dst)] += 1
    return counts


def dot_source():
    counts = graph_edges()
    # Top to bottom: the commands at the top, the ground floor at the bottom, every arrow "uses".
    body = ["digraph emotune {", '  rankdir=TB; nodesep=0.25; ranksep=0.45;',
            '  node [shape=box, style="rounded,filled", fillcolor="#f4f6fa", fontname="Helvetica", fontsize=11];',
            '  edge [fontname="Helvetica", fontsize=9, color="#444444"];']
    for folder, target, what in MODULES:
        body.append(f'  {node_id(folder)} [label=<<b>{folder}/</b><br/><font point-size="9">{html.escape(what)}</font>>];')
    for name in EXTERNALS:
        body.append(f'  {node_id(name)} [label="{name}", shape=ellipse, style=dashed];')
    for group in RANKS:
        body.append("  { rank=same; " + " ".join(node_id(g) for g in group) + "; }")
    for (src, dst), c in sorted(counts.items()):
        style = 'style=dashed' if dst in EXTERNALS else ('color="#aaaaaa"' if dst == "base" else "")
        body.append(f'  {node_id(src)} -> {node_id(dst)} [{style}];')
    body.append("}")
    text = "\n".join(body) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    # The hash goes into the graph's comment, which graphviz copies into the SVG: the check
    # compares it without needing graphviz.
    return text.replace("digraph emotune {", f'digraph emotune {{\n  comment="deps {digest}";', 1), digest


def mermaid_source():
    counts = graph_edges()
    lines = ["```mermaid", "flowchart BT"]
    for folder, _, what in MODULES:
        lines.append(f'  {node_id(folder)}["{folder}/<br/><small>{what}</small>"]')
    for name in EXTERNALS:
        lines.append(f'  {node_id(name)}(["{name}"])')
    for (src, dst), c in sorted(counts.items()):
        arrow = "-.->" if dst in EXTERNALS else "-->"
        lines.append(f"  {node_id(src)} {arrow} {node_id(dst)}")
    lines.append("```")
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- deps:begin (scripts/deps.py docs writes this block) -->", "<!-- deps:end -->"
TREE_BEGIN, TREE_END = "<!-- tree:begin", "<!-- tree:end -->"


def repo_folders(depth=2):
    """Folders holding files git tracks (or would track), down to `depth` levels."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    folders = set()
    for f in out.splitlines():
        if not os.path.exists(os.path.join(ROOT, f)):
            continue  # deleted in the work tree, not yet committed
        parts = f.split("/")[:-1]
        for k in range(1, min(depth, len(parts)) + 1):
            folders.add("/".join(parts[:k]) + "/")
    return folders


def tree_problems(text):
    """The folder tree in docs/architecture.md must list every folder (two levels) and no other."""
    if TREE_BEGIN not in text or TREE_END not in text:
        return [f"docs/architecture.md has no {TREE_BEGIN} ... {TREE_END} block"]
    block = text.split(TREE_BEGIN, 1)[1].split(TREE_END, 1)[0]
    listed = {line.split()[0] for line in block.splitlines()[1:] if line.strip() and not line.startswith("```")}
    actual = repo_folders()
    return ([f"docs/architecture.md: folder {f} is not in the tree (add a line saying what it holds)"
             for f in sorted(actual - listed)] +
            [f"docs/architecture.md: the tree lists {f}, which does not exist" for f in sorted(listed - actual)])


def docs(check_only):
    arch = os.path.join(ROOT, "docs", "architecture.md")
    dot_path = os.path.join(ROOT, "docs", "dependencies.dot")
    svg_path = os.path.join(ROOT, "docs", "dependencies.svg")
    dot, digest = dot_source()
    with open(arch) as fh:
        text = fh.read()
    if BEGIN not in text or END not in text:
        print(f"deps: {arch} has no {BEGIN} ... {END} block")
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new_text = head + BEGIN + "\n" + mermaid_source() + END + tail
    stale = []
    if new_text != text:
        stale.append("docs/architecture.md")
    old_dot = open(dot_path).read() if os.path.exists(dot_path) else ""
    if old_dot != dot:
        stale.append("docs/dependencies.dot")
    svg = open(svg_path).read() if os.path.exists(svg_path) else ""
    if f"deps {digest}" not in svg:
        stale.append("docs/dependencies.svg")
    tree = tree_problems(new_text)
    for t in tree:
        print("deps: " + t)
    if check_only:
        for s in stale:
            print(f"deps: {s} does not show the current include graph; run scripts/deps.py docs")
        stale += ["the folder tree"] if tree else []
        print(f"deps: generated docs {'STALE' if stale else 'current'} (graph {digest})")
        return 1 if stale else 0
    with open(arch, "w") as fh:
        fh.write(new_text)
    with open(dot_path, "w") as fh:
        fh.write(dot)
    try:
        svg = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=True).stdout
        with open(svg_path, "wb") as fh:
            fh.write(svg)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"deps: could not render {svg_path} ({e}); install graphviz (apt-get install graphviz)")
        return 1
    print(f"deps: wrote docs/architecture.md, docs/dependencies.dot, docs/dependencies.svg (graph {digest})")
    return 1 if tree else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("--build", help="build folder holding link_graph.txt (CMake writes it)")
    c.add_argument("--selftest", action="store_true",
                   help="first prove that injected back-edges are caught, then check the code")
    d = sub.add_parser("docs")
    d.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.cmd == "docs":
        return docs(a.check)
    failed = selftest(a.build) if a.selftest else 0
    return 1 if (failed or check(a.build)) else 0


if __name__ == "__main__":
    sys.exit(main())
