#!/usr/bin/env python3
"""Load and soak of `emotune serve` on loopback (`make serve-bench`; not a test, not in CI).

  bench/serve_load.py --binary build-nocuda/bin/emotune [--requests 400] [--soak 10000]
                      [--concurrency 1,4,16] [--route predict] [--workers 0] [--queue 16]
                      [--json docs/bench/serve-load.json]

A bounded load generator of its own (threads, one keep-alive connection each, a fixed number of
requests per run; http.client from the standard library), against a server it starts with
--port 0. Phases, all on examples/face.jpg:
  baseline   the CLI on the same machine in the same run: `emotune predict` on a folder of 50
             copies minus a run on 1 copy, divided by 49 = the pipeline's own cost per image;
  load       --requests requests at each concurrency: requests/s, p50/p99 latency, errors
             (any answer but 200; none are expected while concurrency <= workers + queue);
  soak       --soak requests at concurrency 4, the server's resident memory (VmRSS) and the
             bytes malloc has in use (/healthz heap_in_use) sampled every 500 requests: a leak
             grows both, allocator fragmentation only the first;
  flood      4 x (workers + queue) clients at once for a few seconds: the surplus gets 503 +
             Retry-After, and the server answers a normal request right after.
Prints a markdown table (pasted into docs/benchmarks.md) and writes the raw figures as JSON.
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_server(binary, workers, queue):
    cmd = [binary, "serve", "--port", "0", "--quiet", "--workers", str(workers), "--queue", str(queue)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if "http://" not in line:
        proc.kill()
        sys.exit("serve_load: the server did not start: " + line)
    hostport = line.split("http://", 1)[1].split("/")[0]
    host, port = hostport.rsplit(":", 1)
    # Keep draining stderr so the server never blocks on a full pipe.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, host, int(port), " ".join(cmd)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_load(host, port, path, body, total, concurrency, on_progress=None):
    """`total` requests spread over `concurrency` keep-alive clients; latencies in ms."""
    lat, statuses, lock = [], {}, threading.Lock()
    counter = [0]

    def client():
        conn = http.client.HTTPConnection(host, port, timeout=120)
        while True:
            with lock:
                if counter[0] >= total:
                    break
                counter[0] += 1
                n = counter[0]
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "image/jpeg"})
                r = conn.getresponse()
                r.read()
                status = r.status
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=120)
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=120)
            ms = 1000 * (time.perf_counter() - t0)
            with lock:
                lat.append(ms)
                statuses[status] = statuses.get(status, 0) + 1
            if on_progress:
                on_progress(n)
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    return {"concurrency": concurrency, "requests": total, "seconds": round(wall, 2),
            "rps": round(total / wall, 2), "p50_ms": round(pick(0.50), 1),
            "p99_ms": round(pick(0.99), 1), "max_ms": round(lat[-1], 1),
            "errors": sum(v for k, v in statuses.items() if k != 200),
            "statuses": {str(k): v for k, v in statuses.items()}}


def cli_baseline(binary, image):
    """Seconds per image of `emotune predict` itself: (50 copies - 1 copy) / 49."""
    def timed(n):
        d = tempfile.mkdtemp()
        try:
            for i in range(n):
                shutil.copy(image, os.path.join(d, "f%03d.jpg" % i))
            t0 = time.perf_counter()
            subprocess.run([binary, "predict", d, "--json"], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
            return time.perf_counter() - t0
        finally:
            shutil.rmtree(d)
    t1 = min(timed(1) for _ in range(3))
    t50 = min(timed(50) for _ in range(2))
    return (t50 - t1) / 49


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="build-nocuda/bin/emotune")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--soak", type=int, default=10000)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--route", choices=["predict", "recommend"], default="predict")
    ap.add_argument("--workers", type=int, default=0, help="0: the server's default (one per core)")
    ap.add_argument("--queue", type=int, default=16)
    ap.add_argument("--json", default=os.path.join(ROOT, "docs", "bench", "serve-load.json"))
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    image = os.path.join(ROOT, "examples", "face.jpg")
    with open(image, "rb") as f:
        body = f.read()
    path = "/api/v1/" + a.route

    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    out = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
           "device": "%s, %d cores visible" % (cpu, os.cpu_count()), "route": path,
           "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])}

    base = cli_baseline(binary, image)
    out["cli_ms_per_image"] = round(1000 * base, 1)
    print("baseline: emotune predict, %.1f ms per image (in-process pipeline, one thread)" % (1000 * base), flush=True)

    proc, host, port, server_cmd = start_server(binary, a.workers, a.queue)
    out["server"] = server_cmd
    try:
        run_load(host, port, path, body, 20, 2)  # warm-up: first-touch allocations, page cache
        out["rss_start_kib"] = rss_kib(proc.pid)
        out["load"] = []
        for c in [int(x) for x in a.concurrency.split(",")]:
            r = run_load(host, port, path, body, a.requests, c)
            r["p50_vs_cli"] = round(r["p50_ms"] / (1000 * base), 2)
            out["load"].append(r)
            print("load c=%-2d %s" % (c, json.dumps(r)), flush=True)

        samples, heap = [], []
        def sample(n):
            if n % 500 == 0:
                samples.append((n, rss_kib(proc.pid)))
                with urllib_get(host, port, "/healthz") as h:
                    heap.append((n, json.loads(h)["heap_in_use"] // 1024))
        sample(0)
        soak = run_load(host, port, path, body, a.soak, 4, sample)
        soak["rss_kib"] = sorted(samples)
        soak["heap_in_use_kib"] = sorted(heap)
        out["soak"] = soak
        print("soak %s" % json.dumps(soak), flush=True)

        # Flood: 4x what the workers and the queue hold, all at once, 3 rounds.
        with urllib_get(host, port, "/healthz") as h:
            workers = json.loads(h)["workers"]
        flood_c = 4 * (workers + a.queue)
        flood = run_load(host, port, path, body, 3 * flood_c, flood_c)
        after = run_load(host, port, path, body, 5, 1)
        flood["after_statuses"] = after["statuses"]
        out["flood"] = flood
        print("flood %s" % json.dumps(flood), flush=True)
        with urllib_get(host, port, "/healthz") as h:
            out["healthz_after"] = json.loads(h)
    finally:
        proc.terminate()
        out["server_exit"] = proc.wait(timeout=60)

    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print_table(out)


class urllib_get:
    def __init__(self, host, port, path):
        self.conn = http.client.HTTPConnection(host, port, timeout=30)
        self.conn.request("GET", path)
    def __enter__(self):
        return self.conn.getresponse().read()
    def __exit__(self, *exc):
        self.conn.close()


def print_table(o):
    print()
    print("| phase | concurrency | requests | requests/s | p50 ms | p99 ms | p50 / CLI | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for r in o["load"]:
        print("| load | %d | %d | %.1f | %.1f | %.1f | %.2f | %d |" % (
            r["concurrency"], r["requests"], r["rps"], r["p50_ms"], r["p99_ms"], r["p50_vs_cli"], r["errors"]))
    s = o["soak"]
    print("| soak | %d | %d | %.1f | %.1f | %.1f | | %d |" % (
        s["concurrency"], s["requests"], s["rps"], s["p50_ms"], s["p99_ms"], s["errors"]))
    f = o["flood"]
    print("| flood | %d | %d | %.1f | %.1f | %.1f | | %s |" % (
        f["concurrency"], f["requests"], f["rps"], f["p50_ms"], f["p99_ms"], json.dumps(f["statuses"])))
    rss = [kib for _, kib in s["rss_kib"]]
    print()
    print("CLI baseline %.1f ms per image. Soak RSS (MiB) every 500 requests: %s" % (
        o["cli_ms_per_image"], ", ".join("%.1f" % (k / 1024) for k in rss)))
    if "heap_in_use_kib" in s:
        print("Soak heap in use (MiB, malloc's own count) at the same points: %s" % (
            ", ".join("%.1f" % (k / 1024) for _, k in s["heap_in_use_kib"])))


if __name__ == "__main__":
    main()
