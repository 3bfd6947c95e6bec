#!/usr/bin/env python3
"""Lists the C++/CUDA functions longer than N lines outside tests/, bench/ and fuzz/ (issue 24:
none over ~80 without a reason written beside it).

A brace-depth scan, not a parser: comments, strings and raw strings are blanked first, and a
top-level block counts as a function when the text before its '{' ends like a signature
(a ')' possibly followed by const/override/noexcept/a trailing return type). Lambdas count
toward the function that holds them. Good enough to find the long ones; read before trusting.

  scripts/long_functions.py [N=80]      prints "lines path:line signature-tail", longest first
Python 3 standard library only.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = ("tests", "bench", "fuzz", "build", ".")
SIGNATURE_END = re.compile(r"\)\s*(const|override|noexcept|final|\s)*(->\s*[\w:<>]+)?\s*$")
CONTROL = re.compile(r"\b(if|for|while|switch|catch)\s*\(.*\)\s*$")


def blank(src):
    keep_lines = lambda m: "\n" * m.group().count("\n")
    src = re.sub(r"/\*.*?\*/", keep_lines, src, flags=re.S)
    src = re.sub(r'R"(\w*)\((.*?)\)\1"', lambda m: '""' + keep_lines(m), src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    src = re.sub(r'"(\\.|[^"\\\n])*"', '""', src)
    return re.sub(r"'(\\.|[^'\\\n])*'", "''", src)


def long_functions(path, limit):
    lines = blank(open(path, errors="replace").read()).split("\n")
    stack = []  # (is_function, first line, signature tail)
    for i, line in enumerate(lines):
        for ch in line:
            if ch == "{":
                head = " ".join(lines[max(0, i - 3):i + 1])
                head = head[:head.rfind("{")].strip()[-120:]
                last = head.split(";")[-1].split("}")[-1]
                stack.append((bool(SIGNATURE_END.search(head)) and not CONTROL.search(last), i, head))
            elif ch == "}" and stack:
                is_fn, start, head = stack.pop()
                if is_fn and not any(s[0] for s in stack) and i - start + 1 > limit:
                    yield i - start + 1, start + 1, head[-70:]


def main():
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 80
    found = []
    for d, dirs, files in os.walk(ROOT):
        rel = os.path.relpath(d, ROOT)
        dirs[:] = sorted(x for x in dirs if not (rel == "." and x.startswith(SKIP)))
        for f in sorted(files):
            if f.endswith((".cpp", ".cu", ".h", ".cuh")):
                path = os.path.join(d, f)
                for n, line, head in long_functions(path, limit):
                    found.append((n, f"{os.path.relpath(path, ROOT)}:{line}", head))
    for n, where, head in sorted(found, reverse=True):
        print(f"{n:5d} {where}  {head}")


if __name__ == "__main__":
    main()
