#!/usr/bin/env python3
"""Turn scripts/fuzz.sh's summary (build-fuzz/fuzz-summary.tsv: target, seconds, executions,
exec/s, coverage edges, features, corpus, findings) into the markdown table of
docs/reliability.md, with its provenance: date, commit, CPU, compiler and the command.

Usage: scripts/fuzz_report.py [build-fuzz/fuzz-summary.tsv] --command "JOBS=1 scripts/fuzz.sh 600"
Python 3 standard library only.
"""
import argparse
import datetime
import platform
import subprocess


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("summary", nargs="?", default="build-fuzz/fuzz-summary.tsv")
    ap.add_argument("--command", default="scripts/fuzz.sh 600")
    ap.add_argument("--commit", default="", help="the tree fuzzed, when not HEAD")
    ap.add_argument("--date", default="", help="the day of the campaign, when not today")
    a = ap.parse_args()
    rows = [l.rstrip("\n").split("\t") for l in open(a.summary) if l.strip()]
    day = a.date or datetime.date.today().isoformat()
    commit = a.commit or sh('git', 'rev-parse', '--short', 'HEAD')
    print(f"Measured {day}, commit {commit}, "
          f"{cpu_name()} ({sh('nproc')} cores), {sh('clang++', '--version').splitlines()[0]}, "
          f"libFuzzer + ASan + UBSan; command `{a.command}`.\n")
    print("| target | seconds | executions | exec/s | coverage (edges) | features | corpus after | findings |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    total = 0
    for t, secs, execs, rate, cov, ft, corp, found in rows:
        total += int(execs) if execs.isdigit() else 0
        shown = f"{int(execs):,}" if execs.isdigit() else execs
        print(f"| {t} | {secs} | {shown} | {rate} | {cov} | {ft} | {corp} | {found} |")
    print(f"\n{total:,} executions in all.")


if __name__ == "__main__":
    main()
