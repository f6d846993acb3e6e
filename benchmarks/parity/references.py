"""Finding, importing and running the authors' code on a CPU machine without torchvision: the
checkouts and commits compared, import-only stubs, the references' own argparse defaults and
script flags, functions compiled from scripts that cannot be imported. Nothing of the references
is copied here; every shim a check uses is recorded in its result."""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import os
import shlex
import subprocess
import sys
import types
from pathlib import Path

import torch

# method -> (GitHub repository, commit compared, checkout subdirectory holding the modules)
REFERENCES = {
    "jem": ("wgrathwohl/JEM", "3d01161547109b464eee87304f07b2dac8519d03", ""),
    "jempp": ("sndnyang/JEMPP", "fba6ba5ffe8c7566e70ef59c10d0759a4010737d", ""),
    "sadajem": ("sndnyang/SADAJEM", "9d8f3c78b3c07af1a40f5509ca9b4a2a243b53e3", ""),
    "trades": ("yaodongyu/TRADES", "6e8e11b7c281371c2f027ffadfbaea80361f09de", ""),
    "weat": (
        "OmnAI-Lab/Robust-Classifiers-under-the-lens-of-EBM",
        "b58e362f42b28402adfe7b5218533e4e02969b30",
        "Adversarial ML",
    ),  # fmt: skip
    "weat-adv": (  # the same checkout, --adv-loss WEAT_adv (CE on the adversarial images)
        "OmnAI-Lab/Robust-Classifiers-under-the-lens-of-EBM",
        "b58e362f42b28402adfe7b5218533e4e02969b30",
        "Adversarial ML",
    ),  # fmt: skip
    "eb-jdat": ("jkcjkc/EB-JDAT", "327ea16da975a9d47550c3f91d77b6bd73756a64", "EB-JDAT-JEM++"),
    "dat": ("xuwangyin/DAT", "fb2ffc756da1f55321c1bbcbe0727a2e1de114c6", ""),
    "free": ("locuslab/fast_adversarial", "54f728755e71857b632882ba6d6cef22f56e2172", "CIFAR10"),
    "fast": ("locuslab/fast_adversarial", "54f728755e71857b632882ba6d6cef22f56e2172", "CIFAR10"),
}


def ref_checkout(method: str, ref: str | None = None, refs: str | None = None) -> Path:
    """The reference checkout: ``--ref``, else ``$JEAT_REF_<METHOD>``, else ``ROOT/<owner>+<name>``."""
    env = "JEAT_REF_" + method.upper().replace("-", "_")
    repo = REFERENCES[method][0]
    path = ref or os.environ.get(env) or (Path(refs) / repo.replace("/", "+") if refs else None)
    if path is None or not Path(path).is_dir():
        raise SystemExit(f"{method}: no reference checkout (looked at {path!r}); clone https://github.com/{repo} at "
                         f"{REFERENCES[method][1][:7]} and pass --ref DIR, --refs ROOT or set {env}")  # fmt: skip
    return Path(path)


def checkout_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


class _Stub(types.ModuleType):
    """A module that imports but refuses to be used: what torchvision, tensorboardX and wandb are
    to the reference code paths the harness runs (data loading and logging, replaced here)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def unavailable(*a, **k):
            raise RuntimeError(f"{self.__name__}.{name} is a parity-harness stub (not installed here)")

        return unavailable


def install_stubs(names=("torchvision", "torchvision.transforms", "torchvision.utils", "torchvision.datasets",
                         "tensorboardX", "wandb", "wandb.util")) -> list[str]:  # fmt: skip
    stubbed = []
    for name in names:
        try:
            if name.split(".")[0] != "torchvision":
                importlib.import_module(name)
                continue
        except ImportError:
            pass
        mod = _Stub(name)
        sys.modules[name] = mod
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, mod)
        stubbed.append(name)
    return stubbed


@contextlib.contextmanager
def cuda_as_cpu():
    """TRADES and WEAT call ``.cuda()`` on their noise; on a CPU machine that is the identity."""
    saved = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda = saved


def import_reference(checkout: Path, module: str, extra_paths: tuple[Path, ...] = ()):
    """Import ``module`` from the checkout (fresh: the repos share module names like utils)."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("utils", "models", "ExpUtils", "Task", "sam", "norms", "wideresnet", module):
            del sys.modules[name]
    for p in (*extra_paths, checkout):  # the checkout first on the path: it wins
        sys.path.insert(0, str(p))
    return importlib.import_module(module)


def reference_parser(script: Path) -> argparse.ArgumentParser:
    """The reference's own ``argparse`` parser, rebuilt from its ``__main__`` block (only the
    ``parser = ...`` and ``parser.add_argument(...)`` statements run), so its defaults are the
    commit's, not our reading of them."""
    tree = ast.parse(script.read_text())
    body = list(tree.body)  # TRADES builds its parser at module level
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            body += node.body
        elif isinstance(node, ast.FunctionDef) and node.name == "get_parser":  # WEAT's parser.py
            body += node.body
    keep = [s for s in body if isinstance(s, (ast.Assign, ast.Expr)) and "parser" in ast.unparse(s).split("(")[0]
            and "parse_args" not in ast.unparse(s)]  # fmt: skip
    ns: dict = {"argparse": argparse}
    exec(compile(ast.Module(keep, type_ignores=[]), str(script), "exec"), ns)
    return ns["parser"]


def reference_function(script: Path, name: str, namespace: dict):
    """A top-level function of a script that cannot be imported (TRADES' training script parses
    its arguments and loads data at import), compiled from its source as published."""
    tree = ast.parse(script.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    exec(compile(ast.Module([node], type_ignores=[]), str(script), "exec"), namespace)
    return namespace[name]


def script_flags(sh: Path, program: str = ".py") -> list[str]:
    """The flags of the ``python <program> ...`` command in a reference's shell script or README."""
    text = sh.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if "python " in line and program in line:
            words = shlex.split(line[line.index("python ") :])
            flags = words[2:]
            out, i = [], 0
            while i < len(flags):  # drop the GPU choice
                if flags[i].startswith("--gpu"):
                    i += 1 if "=" in flags[i] else 2
                    continue
                out.append(flags[i])
                i += 1
            return out
    raise ValueError(f"no python command in {sh}")
