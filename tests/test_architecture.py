"""The house's arrows, read from the code: every module's imports, checked against the rules.

    antiphon.engine    imports none of the other parts (and no ports, no Qt)
    antiphon.plugin    imports antiphon.engine only (no Qt)
    antiphon.training  imports antiphon.engine only (no ports, no Qt)
    antiphon.gui       imports antiphon.engine and antiphon.plugin (never training, never the shell)
    the shell          (antiphon/: cli, commands) is the only code that may import all four

and one installed namespace: nothing anywhere imports the old top-level names (`engine`, `plugin`, ...),
and a built wheel holds `antiphon/` and its dist-info only.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PARTS = {"engine": "antiphon.engine", "plugin": "antiphon.plugin", "gui": "antiphon.gui",
         "training": "antiphon.training"}
SHELL = {"antiphon.cli", "antiphon.commands", "antiphon.pictures", "antiphon"}
ALLOWED = {  # part -> the other parts it may import
    "engine": set(),
    "plugin": {"antiphon.engine"},
    "training": {"antiphon.engine"},
    "gui": {"antiphon.engine", "antiphon.plugin"},
}
FORBIDDEN_LIBRARIES = {"engine": {"rtmidi", "PyQt6"}, "plugin": {"PyQt6"}, "training": {"rtmidi", "PyQt6"},
                       "gui": set()}
OLD_NAMES = {"engine", "plugin", "gui", "training", "antiphon_cli"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in PARTS:
        parts = PARTS[parts[0]].split(".") + parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, name: str | None = None) -> list[str]:
    """Every module `path` (module `name`) imports, relative imports resolved to absolute names."""
    tree = ast.parse(path.read_text(), str(path))
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
            found += [f"{target}.{a.name}" for a in node.names]  # `from antiphon import gui`
    return found


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def part_of(module: str) -> str | None:
    for part, prefix in PARTS.items():
        if module == prefix or module.startswith(prefix + "."):
            return part
    return None


def broken_arrows(part: str, modules: list[tuple[Path, str]]) -> list[str]:
    """What the modules (path, module name) of `part` import against its rules."""
    broken = []
    for path, name in modules:
        for imported in imports_of(path, name):
            target = part_of(imported)
            top = imported.split(".")[0]
            if target is not None and target != part and PARTS[target] not in ALLOWED[part]:
                broken.append(f"{name} imports {imported}")
            elif any(imported == s or imported.startswith(s + ".") for s in SHELL - {"antiphon"}):
                broken.append(f"{name} imports the shell ({imported})")
            elif top in FORBIDDEN_LIBRARIES[part]:
                broken.append(f"{name} imports {top}")
    return broken


@pytest.mark.parametrize("part", sorted(PARTS))
def test_each_part_imports_only_what_its_arrows_allow(part):
    modules = [(p, module_name(p)) for p in sources(part)]
    assert modules, f"no modules found under {part}/"
    broken = broken_arrows(part, modules)
    assert not broken, "\n".join(broken)


def test_no_module_uses_the_old_top_level_names():
    offenders = []
    for folder in ("engine", "plugin", "gui", "training", "antiphon", "tests"):
        for path in sources(folder):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in OLD_NAMES]
    assert not offenders, "\n".join(offenders)


def test_the_rule_checker_sees_broken_arrows(tmp_path):
    """The checker itself: an engine module importing the plugin through a relative import, a training
    module importing Qt, and a plugin module importing the shell are all caught."""
    engine_probe, training_probe, plugin_probe = (tmp_path / f"{n}.py" for n in ("e", "t", "p"))
    engine_probe.write_text("from ..plugin import live\nfrom . import tokens\n")
    training_probe.write_text("import PyQt6.QtCore\nfrom antiphon.engine import tokens\n")
    plugin_probe.write_text("from antiphon.commands import live\n")
    assert broken_arrows("engine", [(engine_probe, "antiphon.engine.probe")]) == [
        "antiphon.engine.probe imports antiphon.plugin", "antiphon.engine.probe imports antiphon.plugin.live"]
    assert broken_arrows("training", [(training_probe, "antiphon.training.probe")]) == [
        "antiphon.training.probe imports PyQt6"]
    assert broken_arrows("plugin", [(plugin_probe, "antiphon.plugin.probe")]) == [
        "antiphon.plugin.probe imports the shell (antiphon.commands)",
        "antiphon.plugin.probe imports the shell (antiphon.commands.live)"]


def test_wheel_installs_one_top_level_package(tmp_path):
    """`pip install .` (no -e) puts `antiphon` and its dist-info in site-packages, nothing else."""
    try:
        import setuptools  # noqa: F401  (the build backend, already here: no download)
    except ImportError:
        pytest.skip("setuptools is not installed in this environment")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    wheel = next(tmp_path.glob("antiphon-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"antiphon"}, sorted(tops)
    for must in ("antiphon/engine/styles/default.style", "antiphon/plugin/live.py", "antiphon/gui/panel.py",
                 "antiphon/training/train.py", "antiphon/commands/live.py", "antiphon/__main__.py"):
        assert must in names
