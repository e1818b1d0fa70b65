#!/usr/bin/env python3
"""Checks the import rules of issue 29 (src/ laid out by layer) for each crate root given.

* No two files import each other (directly): an import of a name re-exported by a module
  counts as an import of the file that defines it.
* No module imports a name through the crate root's re-exports (`crate::Error` where lib.rs
  only re-exports it): modules import from the module that defines the name.

A file's imports are the `crate::`, `super::` and `self::` paths of its `use` items outside
`#[cfg(test)] mod tests` blocks (with IMPORTS_IN_CODE=1 also the paths written in its code,
which are not all untangled yet). Usage: import_cycles.py src/lib.rs nrt-sim/src/lib.rs
"""

import os
import re
import sys

USE = re.compile(r"^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.S | re.M)
PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
MOD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)


def strip(text):
    """Text without comments, string literals and test modules."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    if m:
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        text = text[: m.start()] + text[i:]
    return text


def expand(tree):
    """`a::{b, c::{d, e}}` -> [['a','b'], ['a','c','d'], ['a','c','e']] (aliases dropped)."""
    tree = re.sub(r"\s+as\s+[A-Za-z_][A-Za-z0-9_]*", "", tree)
    tree = re.sub(r"\s+", "", tree)
    out = []

    def go(prefix, s):
        s = s.strip()
        if not s:
            return
        if "{" not in s:
            out.append(prefix + [p for p in s.split("::") if p])
            return
        head, rest = s.split("{", 1)
        inner = rest[: rest.rfind("}")]
        parts, depth, cur = [], 0, ""
        for ch in inner:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            cur += ch
        parts.append(cur)
        base = prefix + [p for p in head.split("::") if p]
        for p in parts:
            go(base, p)

    go([], tree)
    return out


class Crate:
    def __init__(self, root):
        self.src = os.path.dirname(root)
        self.files = {}  # module path tuple -> file
        self.walk((), root)
        self.text = {m: strip(open(f).read()) for m, f in self.files.items()}

    def walk(self, mod, path):
        self.files[mod] = path
        d = os.path.dirname(path)
        base = os.path.basename(path)
        sub = d if base in ("lib.rs", "main.rs", "mod.rs") else os.path.join(d, base[:-3])
        for name in MOD.findall(strip(open(path).read())):
            for cand in (os.path.join(sub, name + ".rs"), os.path.join(sub, name, "mod.rs")):
                if os.path.exists(cand):
                    self.walk(mod + (name,), cand)
                    break

    def absolute(self, mod, segs):
        """A path's segments from the crate root, or None for an external path."""
        if segs[0] == "crate":
            return list(segs[1:])
        cur = list(mod)
        i = 0
        while i < len(segs) and segs[i] in ("super", "self"):
            if segs[i] == "super":
                if not cur:
                    return None
                cur.pop()
            i += 1
        return cur + list(segs[i:])

    def reexports(self, mod):
        """{name: absolute path} of the `pub use` items of module `mod`."""
        out = {}
        for vis, tree in USE.findall(self.text[mod]):
            if not vis:
                continue
            for segs in expand(tree):
                if not segs or segs[-1] in ("self", "*"):
                    continue
                first = segs[0]
                if first not in ("crate", "super", "self") and (mod + (first,)) not in self.files:
                    continue  # an external crate
                if first not in ("crate", "super", "self"):
                    segs = ["self"] + segs
                a = self.absolute(mod, segs)
                if a:
                    out[segs[-1]] = a
        return out

    def resolve(self, path, seen=()):
        """The module file (path tuple) that defines what `path` names, and whether the
        path went through the crate root's re-exports."""
        mod = ()
        i = 0
        while i < len(path) and mod + (path[i],) in self.files:
            mod = mod + (path[i],)
            i += 1
        if i == len(path):
            return mod, False
        name = path[i]
        re_ = self.reexports(mod)
        if name in re_ and tuple(re_[name]) not in seen:
            target, _ = self.resolve(re_[name] + path[i + 1 :], seen + (tuple(re_[name]),))
            return target, mod == ()
        return mod, False

    def imports(self, mod):
        out = []
        text = self.text[mod]
        for vis, tree in USE.findall(text):
            for segs in expand(tree):
                if segs and segs[0] in ("crate", "super", "self"):
                    out.append((segs, bool(vis)))
        if not os.environ.get("IMPORTS_IN_CODE"):
            return out
        body = USE.sub("", text)
        for head, rest in PATH.findall(body):
            out.append(([head] + rest.split("::")[1:], False))
        return out


def check(root):
    crate = Crate(root)
    edges = {}
    problems = []
    for mod in crate.files:
        for segs, is_pub in crate.imports(mod):
            segs = [s for s in segs if s not in ("*",)]
            a = crate.absolute(mod, segs)
            if a is None or not a:
                continue
            target, via_root = crate.resolve(a)
            if via_root and mod != () and not is_pub:
                problems.append(
                    f"{crate.files[mod]}: `{'::'.join(segs)}` goes through lib.rs's re-exports"
                )
            if target != mod and target != ():
                edges.setdefault(mod, set()).add(target)
    for a, targets in edges.items():
        for b in targets:
            if a < b and a in edges.get(b, ()):
                problems.append(f"{crate.files[a]} and {crate.files[b]} import each other")
    return problems


def main():
    problems = []
    for root in sys.argv[1:]:
        problems += check(root)
    for p in sorted(set(problems)):
        print(p)
    if problems:
        sys.exit(1)
    print(f"import rules hold in {', '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
