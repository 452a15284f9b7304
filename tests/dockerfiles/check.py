#!/usr/bin/env python3
"""Static check of every Dockerfile in the repository (no container engine needed).

    python3 tests/dockerfiles/check.py              # self-test, then the real Dockerfiles
    python3 tests/dockerfiles/check.py --self-test  # only the self-test

Prints one `ok - ...` or `FAIL - ...` line per check and exits 1 on any failure. The
normal run starts with the self-test (small bad Dockerfiles in a temporary directory, each
of which must be refused with the expected message, and one good one that must pass), so
a checker that accepts, or refuses, everything fails.

What is checked, per Dockerfile:
- the final stage's base image is pinned by a tag other than `latest` (or a digest);
- the final stage runs as `USER 65532[:65532]` (or `nonroot`, numeric preferred);
- every `COPY --from=X` / `RUN --mount=...,from=X` names an earlier stage, or a named
  build context that the header comment documents (`--build-context X=...`);
- the final stage has the OCI labels `org.opencontainers.image.{source,revision,version}`,
  and a `$VAR` in a LABEL is an ARG or ENV declared in that stage (a global ARG is not
  visible inside a stage and would expand to nothing);
- an ENTRYPOINT in exec (JSON array) form, and no RUN in the final stage (distroless has
  no shell);
- Rust Dockerfiles (those that run `cargo build`): `--release --locked`, a `-p` package
  that is a workspace member, a `--bin` that package has, the whole workspace in the build
  context, the binary taken out of target/ in the same RUN (not from a cache mount), and
  the ENTRYPOINT is the path the binary is copied to;
- Node Dockerfiles: every base image is Node 24.

Python 3.11 standard library only.
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import re
import shlex
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {"node_modules", "target", ".git"}
REQUIRED_LABELS = (
    "org.opencontainers.image.source",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.version",
)
NONROOT_USERS = {"65532", "65532:65532", "nonroot", "nonroot:nonroot"}


# ---------------------------------------------------------------------------------------
# Parsing


@dataclass
class Instruction:
    line: int  # first physical line, 1-based
    keyword: str  # upper case
    args: str  # the rest, continuations joined


@dataclass
class Stage:
    index: int
    base: str  # as written, ARGs not yet substituted
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    path: Path
    header: str  # the leading comment block (parser directives included)
    global_args: dict[str, str | None]
    stages: list[Stage]


HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")


def parse(text: str, path: Path = Path("Dockerfile")) -> Dockerfile:
    lines = text.splitlines()
    escape = "\\"
    header: list[str] = []
    i = 0
    # The leading comment block: parser directives, then the header comment.
    while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
        m = re.match(r"\s*#\s*escape\s*=\s*(\S)\s*$", lines[i])
        if m and not any(h.strip() and not re.match(r"\s*#\s*\w+\s*=", h) for h in header):
            escape = m.group(1)
        header.append(lines[i])
        i += 1

    instructions: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        if not raw.strip() or raw.lstrip().startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        while True:
            line = lines[i].rstrip()
            i += 1
            if line.endswith(escape):
                parts.append(line[:-1])
                # Comment lines inside a continuation are dropped; so are empty lines.
                while i < len(lines) and (
                    not lines[i].strip() or lines[i].lstrip().startswith("#")
                ):
                    i += 1
                if i >= len(lines):
                    break
                continue
            parts.append(line)
            break
        logical = " ".join(p.strip() for p in parts).strip()
        keyword, _, args = logical.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        # Heredocs (RUN <<EOF ... EOF): their bodies belong to the instruction.
        if keyword in ("RUN", "COPY", "ADD"):
            for dash, _, word in HEREDOC.findall(args):
                body: list[str] = []
                while i < len(lines):
                    candidate = lines[i].lstrip("\t") if dash else lines[i]
                    i += 1
                    if candidate.rstrip() == word:
                        break
                    body.append(lines[i - 1])
                args += "\n" + "\n".join(body)
        instructions.append(Instruction(start + 1, keyword, args))

    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            base = words[0] if words else ""
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(len(stages), base, name, ins.line))
        elif not stages:
            if ins.keyword == "ARG":
                for k, v in parse_arg(ins.args).items():
                    global_args[k] = v
        else:
            stages[-1].instructions.append(ins)
    return Dockerfile(path, "\n".join(header), global_args, stages)


def parse_arg(args: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for word in shlex.split(args):
        k, eq, v = word.partition("=")
        out[k] = v if eq else None
    return out


def split_flags(args: str) -> tuple[dict[str, list[str]], str]:
    """Leading `--flag[=value]` words of COPY/RUN/FROM, and the rest."""
    flags: dict[str, list[str]] = {}
    rest = args.lstrip()
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        k, _, v = word[2:].partition("=")
        flags.setdefault(k, []).append(v)
    return flags, rest


def copy_parts(args: str) -> tuple[dict[str, list[str]], list[str], str]:
    """COPY/ADD: (flags, sources, destination); shell or JSON form."""
    flags, rest = split_flags(args)
    if rest.startswith("["):
        try:
            words = json.loads(rest)
        except json.JSONDecodeError:
            words = shlex.split(rest)
    else:
        words = shlex.split(rest.split("\n", 1)[0])
    if len(words) < 2:
        return flags, words, ""
    return flags, words[:-1], words[-1]


def mounts(args: str) -> list[dict[str, str]]:
    flags, _ = split_flags(args)
    out = []
    for spec in flags.get("mount", []):
        kv = {}
        for item in spec.split(","):
            k, eq, v = item.partition("=")
            kv[k] = v if eq else "true"
        out.append(kv)
    return out


def labels(args: str) -> dict[str, str]:
    words = shlex.split(args, posix=True)
    if words and "=" not in words[0]:  # legacy `LABEL key value`
        return {words[0]: " ".join(words[1:])}
    out = {}
    for w in words:
        k, _, v = w.partition("=")
        out[k] = v
    return out


VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-+][^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))")


def substitute(value: str, env: dict[str, str | None]) -> str | None:
    """Expands ${VAR}, $VAR and ${VAR:-default}; None when a variable has no value."""
    missing = False

    def repl(m: re.Match[str]) -> str:
        nonlocal missing
        name = m.group(1) or m.group(2)
        full = m.group(0)
        dm = re.match(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", full)
        val = env.get(name)
        if val is None or val == "":
            if dm:
                return dm.group(1)
            missing = True
            return ""
        return val

    out = VAR.sub(repl, value)
    return None if missing else out


# ---------------------------------------------------------------------------------------
# Cargo workspace


@dataclass
class Package:
    name: str
    dir: str  # relative to the workspace root
    bins: set[str]


def workspace(root: Path) -> tuple[list[str], dict[str, Package]]:
    """Member directories (relative) and the packages they define, by name."""
    manifest = root / "Cargo.toml"
    if not manifest.is_file():
        return [], {}
    data = tomllib.loads(manifest.read_text())
    members: list[str] = []
    for pattern in data.get("workspace", {}).get("members", []):
        if any(c in pattern for c in "*?["):
            members += sorted(
                str(p.parent.relative_to(root)) for p in root.glob(f"{pattern}/Cargo.toml")
            )
        else:
            members.append(pattern.rstrip("/"))
    packages: dict[str, Package] = {}
    for member in members:
        m = root / member / "Cargo.toml"
        if not m.is_file():
            continue
        pdata = tomllib.loads(m.read_text())
        pkg = pdata.get("package", {})
        if "name" not in pkg:
            continue
        explicit = pdata.get("bin", [])
        bins = {b["name"] for b in explicit if "name" in b}
        explicit_paths = {b.get("path", f"src/bin/{b.get('name')}.rs") for b in explicit}
        if pkg.get("autobins", True):
            if (root / member / "src/main.rs").is_file() and "src/main.rs" not in explicit_paths:
                bins.add(pkg["name"])
            bindir = root / member / "src/bin"
            if bindir.is_dir():
                for f in bindir.iterdir():
                    rel = f"src/bin/{f.name}"
                    if f.suffix == ".rs" and rel not in explicit_paths:
                        bins.add(f.stem)
                    elif f.is_dir() and (f / "main.rs").is_file():
                        bins.add(f.name)
        packages[pkg["name"]] = Package(pkg["name"], member, bins)
    return members, packages


def dockerignore(root: Path) -> list[tuple[bool, str]] | None:
    f = root / ".dockerignore"
    if not f.is_file():
        return None
    out = []
    for line in f.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
        out.append((negate, pattern))
    return out


def ignored(rules: list[tuple[bool, str]], rel: str) -> bool:
    """Whether .dockerignore keeps `rel` (or a folder holding it) out of the context."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, pattern in rules:
        pats = [pattern]
        if pattern.startswith("**/"):
            pats.append(pattern[3:])
        hit = False
        for p in pats:
            for prefix in prefixes:
                if fnmatch.fnmatchcase(prefix, p) or (
                    pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.split("/")[-1], p)
                ):
                    hit = True
        if hit:
            result = not negate
    return result


# ---------------------------------------------------------------------------------------
# Checks


def image_tag(ref: str) -> tuple[str | None, str | None]:
    """(tag, digest) of an image reference."""
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    last = ref.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    return tag, digest


def documented_contexts(header: str) -> set[str]:
    return set(re.findall(r"--build-context[ =]([A-Za-z0-9_.-]+)=", header))


def resolve_base(df: Dockerfile, stage: Stage) -> str | None:
    """The image a stage starts from, following `FROM earlier-stage`; None if unresolvable."""
    seen = set()
    while True:
        base = substitute(stage.base, df.global_args)
        if base is None:
            return None
        earlier = [s for s in df.stages[: stage.index] if s.name and s.name == base]
        if not earlier or stage.index in seen:
            return base
        seen.add(stage.index)
        stage = earlier[-1]


def cargo_builds(stage: Stage) -> list[tuple[Instruction, list[str]]]:
    out = []
    for ins in stage.instructions:
        if ins.keyword != "RUN":
            continue
        _, cmd = split_flags(ins.args)
        for seg in re.split(r"&&|\|\||;|\n", cmd):
            words = seg.split()
            if len(words) >= 2 and words[0] == "cargo" and words[1] == "build":
                out.append((ins, words[2:]))
    return out


def option(words: list[str], *names: str) -> list[str]:
    vals = []
    for i, w in enumerate(words):
        for n in names:
            if w == n and i + 1 < len(words):
                vals.append(words[i + 1])
            elif n.startswith("--") and w.startswith(n + "="):
                vals.append(w[len(n) + 1 :])
    return vals


def check(df: Dockerfile, root: Path) -> list[tuple[bool, str]]:
    """(passed, message) per check."""
    results: list[tuple[bool, str]] = []

    def res(ok: bool, msg: str) -> None:
        results.append((ok, msg))

    if not df.stages:
        res(False, "no FROM instruction")
        return results
    final = df.stages[-1]
    finals = final.instructions

    # Final base pinned by tag.
    base = resolve_base(df, final)
    if base is None:
        res(False, f"final stage base {final.base!r} uses an ARG with no default: not pinned")
    elif base == "scratch":
        res(True, "final stage base is scratch")
    else:
        tag, digest = image_tag(base)
        if digest:
            res(True, f"final stage base {base} is pinned by digest")
        elif tag is None:
            res(False, f"final stage base {base} is untagged: not pinned")
        elif tag == "latest":
            res(False, f"final stage base {base} uses :latest: not pinned")
        else:
            res(True, f"final stage base {base} is pinned by tag")

    # Non-root user.
    users = [i.args.strip() for i in finals if i.keyword == "USER"]
    if not users:
        res(False, "final stage sets no USER (needs USER 65532:65532)")
    elif users[-1] not in NONROOT_USERS:
        res(False, f"final stage USER {users[-1]} is not 65532/nonroot")
    elif not users[-1][0].isdigit():
        res(True, f"final stage USER {users[-1]} (numeric 65532:65532 preferred)")
    else:
        res(True, f"final stage USER {users[-1]}")

    # COPY --from / RUN --mount from= name an earlier stage or a documented context.
    contexts = documented_contexts(df.header)
    refs = 0
    for stage in df.stages:
        earlier = {s.name for s in df.stages[: stage.index] if s.name} | {
            str(s.index) for s in df.stages[: stage.index]
        }
        for ins in stage.instructions:
            sources = []
            if ins.keyword in ("COPY", "ADD"):
                sources += split_flags(ins.args)[0].get("from", [])
            if ins.keyword == "RUN":
                sources += [m["from"] for m in mounts(ins.args) if "from" in m]
            for src in sources:
                refs += 1
                if src in earlier:
                    continue
                if src in contexts:
                    continue
                res(
                    False,
                    f"line {ins.line}: {ins.keyword} from {src!r} is neither an earlier stage "
                    f"nor a build context documented in the header (--build-context {src}=...)",
                )
    if not any(not ok and "earlier stage" in m for ok, m in results):
        res(True, f"{refs} COPY --from/mount sources name earlier stages or documented contexts")

    # OCI labels, and the ARGs their values use.
    found: dict[str, str] = {}
    declared: set[str] = set()
    bad_vars = []
    for ins in finals:
        if ins.keyword == "ARG":
            declared |= set(parse_arg(ins.args))
        elif ins.keyword == "ENV":
            declared |= {w.partition("=")[0] for w in shlex.split(ins.args)}
        elif ins.keyword == "LABEL":
            for k, v in labels(ins.args).items():
                found[k] = v
                for m in VAR.finditer(v):
                    name = m.group(1) or m.group(2)
                    if name not in declared:
                        bad_vars.append(f"{k}=${name} (line {ins.line})")
    missing = [lab for lab in REQUIRED_LABELS if not found.get(lab)]
    if missing:
        res(False, f"final stage lacks label(s) {', '.join(missing)}")
    else:
        res(True, "final stage has the OCI source, revision and version labels")
    if bad_vars:
        res(
            False,
            "LABEL uses a variable that is no ARG/ENV of the final stage (would be empty): "
            + ", ".join(bad_vars),
        )
    elif any("$" in v for v in found.values()):
        res(True, "LABEL variables are ARGs/ENVs declared in the final stage")

    # ENTRYPOINT in exec form.
    entrypoints = [i for i in finals if i.keyword == "ENTRYPOINT"]
    entry: list[str] | None = None
    if not entrypoints:
        res(False, "final stage has no ENTRYPOINT (exec form needed)")
    else:
        try:
            value = json.loads(entrypoints[-1].args)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            entry = value
            res(True, f"ENTRYPOINT in exec form: {json.dumps(entry)}")
        else:
            res(
                False,
                f"line {entrypoints[-1].line}: ENTRYPOINT is not in exec form (a JSON array)",
            )

    # No RUN in the final stage.
    runs = [i.line for i in finals if i.keyword == "RUN"]
    if runs:
        res(False, f"final stage has RUN at line(s) {runs} (distroless has no shell)")
    else:
        res(True, "final stage has no RUN")

    # Rust.
    builds = [(s, ins, w) for s in df.stages for ins, w in cargo_builds(s)]
    if builds:
        check_rust(df, root, builds, entry, res)

    # Node.
    bases = [substitute(s.base, df.global_args) or s.base for s in df.stages]
    stage_names = {s.name for s in df.stages if s.name}
    images = [b for b in bases if b not in stage_names]
    if any(re.match(r"(.*/)?node:", b) or "distroless/nodejs" in b for b in images):
        wrong = [
            b
            for b in images
            if not (re.match(r"(.*/)?node:24([.-]|$)", b) or re.search(r"distroless/nodejs24-", b))
        ]
        if wrong:
            res(False, f"base image(s) {', '.join(wrong)} are not Node 24")
        else:
            res(True, f"every base image is Node 24 ({', '.join(images)})")
    return results


def check_rust(df, root, builds, entry, res) -> None:
    members, packages = workspace(root)
    final = df.stages[-1]
    bins: list[tuple[Stage, Instruction, str]] = []
    for stage, ins, words in builds:
        where = f"line {ins.line}"
        flags_missing = [f for f in ("--release", "--locked") if f not in words]
        if flags_missing:
            res(False, f"{where}: cargo build lacks {' '.join(flags_missing)}")
        else:
            res(True, f"{where}: cargo build --release --locked")
        pkgs = option(words, "-p", "--package")
        if not pkgs:
            res(False, f"{where}: cargo build names no -p package")
            continue
        for pkg in pkgs:
            if pkg not in packages:
                res(False, f"{where}: package {pkg!r} is no workspace member's name")
                continue
            res(True, f"{where}: package {pkg} is the workspace member {packages[pkg].dir}")
            for b in option(words, "--bin") or sorted(packages[pkg].bins):
                if b in packages[pkg].bins:
                    res(True, f"{where}: {pkg} has the binary {b}")
                    bins.append((stage, ins, b))
                else:
                    res(False, f"{where}: package {pkg} has no binary {b!r}")

    # The whole workspace in the build context.
    build_stages = {s.index for s, _, _ in builds}
    sources = [
        src
        for s in df.stages
        if s.index in build_stages
        for i in s.instructions
        if i.keyword in ("COPY", "ADD") and not split_flags(i.args)[0].get("from")
        for src in copy_parts(i.args)[1]
    ]
    norm = {posixpath.normpath(s) for s in sources}
    if "." in norm:
        rules = dockerignore(root)
        if rules is None:
            res(False, "COPY . . with no .dockerignore (target/ and .git/ would be sent)")
        else:
            needed = ["Cargo.toml", "Cargo.lock"] + [f"{m}/Cargo.toml" for m in members]
            lost = [p for p in needed if ignored(rules, p)]
            unwanted = [p for p in ("target", ".git") if not ignored(rules, p)]
            if lost:
                res(False, f".dockerignore leaves out workspace file(s) {', '.join(lost)}")
            elif unwanted:
                res(False, f".dockerignore does not leave out {', '.join(unwanted)}")
            else:
                res(True, "COPY . . with a .dockerignore that keeps every workspace member")
    else:
        def covered(path: str) -> bool:
            return any(path == s or path.startswith(s.rstrip("/") + "/") for s in norm)

        lost = [p for p in ["Cargo.toml", "Cargo.lock", *members] if not covered(p)]
        if lost:
            res(False, f"the build stage does not copy workspace member(s)/file(s) {', '.join(lost)}")
        else:
            res(True, "the build stage copies Cargo.toml, Cargo.lock and every workspace member")

    # Binary: out of target/ in the same RUN, copied to the ENTRYPOINT's path.
    if entry is None or not bins:
        return
    copies = []
    for ins in final.instructions:
        if ins.keyword == "COPY":
            flags, srcs, dest = copy_parts(ins.args)
            if flags.get("from"):
                for src in srcs:
                    target = dest + posixpath.basename(src) if dest.endswith("/") else dest
                    copies.append((flags["from"][0], src, target, ins))
    hits = [c for c in copies if c[2] == entry[0]]
    if not hits:
        res(
            False,
            f"ENTRYPOINT {entry[0]} is not the path the binary is copied to "
            f"({', '.join(c[2] for c in copies) or 'no COPY --from in the final stage'})",
        )
        return
    src_stage, src, dest, _ = hits[-1]
    res(True, f"ENTRYPOINT {entry[0]} is where COPY --from={src_stage} puts {src}")
    for stage, ins, b in bins:
        if src_stage not in (stage.name, str(stage.index)):
            continue
        text = ins.args
        if not re.search(rf"release/{re.escape(b)}(\s|$)", text) or src not in text.split():
            res(
                False,
                f"line {ins.line}: the cargo build RUN does not take release/{b} out to {src}",
            )
            continue
        workdir = "/"
        for i in stage.instructions:
            if i is ins:
                break
            if i.keyword == "WORKDIR":
                workdir = posixpath.join(workdir, i.args.strip())
        cached = [
            posixpath.join(workdir, m["target"])
            for m in mounts(ins.args)
            if m.get("type") == "cache" and "target" in m
        ]
        src_abs = posixpath.join(workdir, src)
        under = [c for c in cached if src_abs == c or src_abs.startswith(c.rstrip("/") + "/")]
        if under:
            res(
                False,
                f"COPY --from={src_stage} {src} reads from the cache mount {under[0]}, "
                "which is not in the stage's image",
            )
        else:
            res(True, f"line {ins.line}: release/{b} is taken out of target/ to {src}")


# ---------------------------------------------------------------------------------------
# Driver


def find_dockerfiles(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for f in sorted(filenames):
            if f.endswith(".dockerignore"):
                continue
            if f == "Dockerfile" or f.startswith("Dockerfile.") or f.endswith(".Dockerfile"):
                found.append(Path(dirpath) / f)
    return found


def check_file(path: Path, root: Path) -> list[tuple[bool, str]]:
    return check(parse(path.read_text(), path), root)


GOOD_RUST = """\
# syntax=docker/dockerfile:1.7
# Build: docker build -f app/Dockerfile .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \\
    # a comment inside a continuation
    --mount=type=cache,target=/src/target \\
    cargo build --release --locked -p demo --bin demo-bin \\
    && install -D target/release/demo-bin /out/demo

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.source="https://example.invalid/demo" \\
      org.opencontainers.image.revision=$REVISION \\
      org.opencontainers.image.version=$VERSION
COPY --from=build /out/demo /usr/local/bin/demo
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/demo"]
"""

GOOD_NODE = """\
# Build: docker build --build-context runtime=runtime/node -f Dockerfile app
FROM node:24-bookworm-slim AS build
COPY --from=runtime bin /opt/rt/bin
RUN echo built > /srv/x

FROM gcr.io/distroless/nodejs24-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.source=x org.opencontainers.image.revision=$REVISION \\
      org.opencontainers.image.version=$VERSION
COPY --from=build /opt/rt/bin /opt/rt/bin
USER 65532:65532
ENTRYPOINT ["/nodejs/bin/node", "/opt/rt/bin/rt.js"]
"""


def bad(base: str, old: str, new: str) -> str:
    assert old in base, old
    return base.replace(old, new)


# (name, Dockerfile text, expected substring of a FAIL message; None: must pass)
SELF_TESTS = [
    ("good Rust Dockerfile", GOOD_RUST, None),
    ("good Node Dockerfile", GOOD_NODE, None),
    ("final base :latest", bad(GOOD_RUST, "cc-debian12:nonroot", "cc-debian12:latest"), "not pinned"),
    ("final base untagged", bad(GOOD_RUST, "cc-debian12:nonroot", "cc-debian12"), "untagged"),
    (
        "final base from an ARG without default",
        "ARG BASE\n" + bad(GOOD_RUST, "FROM gcr.io/distroless/cc-debian12:nonroot", "FROM ${BASE}"),
        "not pinned",
    ),
    ("USER root", bad(GOOD_RUST, "USER 65532:65532", "USER root"), "is not 65532/nonroot"),
    ("no USER", bad(GOOD_RUST, "USER 65532:65532\n", ""), "sets no USER"),
    ("COPY --from unknown stage", bad(GOOD_RUST, "--from=build", "--from=builder"), "earlier stage"),
    (
        "COPY --from undocumented context",
        bad(GOOD_NODE, "--build-context runtime=", "--build-context rt="),
        "earlier stage",
    ),
    (
        "COPY --from a later stage",
        bad(GOOD_NODE, "COPY --from=runtime bin", "COPY --from=final bin").replace(
            "nodejs24-debian12:nonroot", "nodejs24-debian12:nonroot AS final"
        ),
        "earlier stage",
    ),
    (
        "no revision label",
        bad(GOOD_RUST, "org.opencontainers.image.revision=$REVISION \\\n      ", ""),
        "org.opencontainers.image.revision",
    ),
    (
        "label from a global ARG",
        "ARG REV=1\n" + bad(GOOD_RUST, "image.revision=$REVISION", "image.revision=$REV"),
        "no ARG/ENV of the final stage",
    ),
    (
        "ENTRYPOINT in shell form",
        bad(GOOD_RUST, 'ENTRYPOINT ["/usr/local/bin/demo"]', "ENTRYPOINT /usr/local/bin/demo"),
        "not in exec form",
    ),
    ("RUN in the final stage", bad(GOOD_RUST, "USER 65532", "RUN true\nUSER 65532"), "distroless has no shell"),
    ("cargo build without --locked", bad(GOOD_RUST, "--release --locked", "--release"), "lacks --locked"),
    ("cargo build without --release", bad(GOOD_RUST, "--release --locked", "--locked"), "lacks --release"),
    ("unknown package", bad(GOOD_RUST, "-p demo ", "-p demo-gateway "), "no workspace member"),
    ("unknown binary", bad(GOOD_RUST, "--bin demo-bin", "--bin demo"), "has no binary"),
    (
        "ENTRYPOINT not the copied binary",
        bad(GOOD_RUST, '["/usr/local/bin/demo"]', '["/usr/local/bin/demo-bin"]'),
        "is not the path the binary is copied to",
    ),
    (
        "binary copied from the cache-mounted target",
        bad(
            bad(GOOD_RUST, " \\\n    && install -D target/release/demo-bin /out/demo", ""),
            "COPY --from=build /out/demo",
            "COPY --from=build /src/target/release/demo-bin",
        ),
        "does not take release/demo-bin out",
    ),
    (
        "binary under a cache mount",
        bad(GOOD_RUST, "/out/demo", "/src/target/demo"),
        "cache mount",
    ),
    ("Node 20 base", bad(GOOD_NODE, "node:24-bookworm-slim", "node:20-alpine"), "not Node 24"),
    (
        "Node 20 distroless",
        bad(GOOD_NODE, "nodejs24-debian12", "nodejs20-debian12"),
        "not Node 24",
    ),
]


def self_test() -> list[tuple[bool, str]]:
    out: list[tuple[bool, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "Cargo.toml").write_text('[workspace]\nmembers = ["app", "lib/*"]\n')
        (root / "Cargo.lock").write_text("version = 4\n")
        (root / "app/src").mkdir(parents=True)
        (root / "app/src/main.rs").write_text("fn main() {}\n")
        (root / "app/Cargo.toml").write_text(
            '[package]\nname = "demo"\n\n[[bin]]\nname = "demo-bin"\npath = "src/main.rs"\n'
        )
        (root / "lib/util").mkdir(parents=True)
        (root / "lib/util/Cargo.toml").write_text('[package]\nname = "util"\n')
        (root / ".dockerignore").write_text(".git\n**/target\n**/node_modules\n")
        for n, (name, text, expected) in enumerate(SELF_TESTS):
            path = root / f"case{n}" / "Dockerfile"
            path.parent.mkdir()
            path.write_text(text)
            fails = [m for ok, m in check_file(path, root) if not ok]
            if expected is None:
                if fails:
                    out.append((False, f"self-test: {name} is refused: {fails[0]}"))
                else:
                    out.append((True, f"self-test: {name} passes"))
            elif any(expected in m for m in fails):
                out.append((True, f"self-test: {name} is refused ({expected!r})"))
            elif fails:
                out.append((False, f"self-test: {name} is refused, not with {expected!r}: {fails}"))
            else:
                out.append((False, f"self-test: {name} is accepted (expected {expected!r})"))
        # A .dockerignore that drops a member, and a COPY that misses one.
        (root / ".dockerignore").write_text(".git\n**/target\nlib\n")
        path = root / "case-ignore" / "Dockerfile"
        path.parent.mkdir()
        path.write_text(GOOD_RUST)
        fails = [m for ok, m in check_file(path, root) if not ok]
        ok = any("leaves out workspace file(s) lib/util/Cargo.toml" in m for m in fails)
        out.append((ok, f"self-test: .dockerignore leaving out a member is refused{'' if ok else f': {fails}'}"))
        path.write_text(bad(GOOD_RUST, "COPY . .", "COPY Cargo.toml Cargo.lock ./\nCOPY app app"))
        fails = [m for ok, m in check_file(path, root) if not ok]
        ok = any("does not copy workspace member(s)/file(s) lib/util" in m for m in fails)
        out.append((ok, f"self-test: a build stage missing a member is refused{'' if ok else f': {fails}'}"))
    return out


def main() -> int:
    results = self_test()
    if "--self-test" not in sys.argv[1:]:
        files = find_dockerfiles(REPO)
        if not files:
            results.append((False, "no Dockerfile found"))
        for f in files:
            rel = f.relative_to(REPO)
            for ok, msg in check_file(f, REPO):
                results.append((ok, f"{rel}: {msg}"))
    for ok, msg in results:
        print(f"{'ok' if ok else 'FAIL'} - {msg}")
    failed = sum(not ok for ok, _ in results)
    print(f"# {len(results) - failed} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
