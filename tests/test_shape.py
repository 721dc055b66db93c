"""One shape for every task: the same front in every package, thin entry points, a core that
imports no task, and documents that only name what a clone has."""

import ast
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("pid", "tracking", "egamma", "dune")


@pytest.mark.parametrize("task", TASKS)
def test_every_task_package_has_the_same_front(task):
    config = importlib.import_module(f"jaxhep.{task}.config")
    experiment = importlib.import_module(f"jaxhep.{task}.experiment")
    training = importlib.import_module(f"jaxhep.{task}.training")
    api = importlib.import_module(f"jaxhep.{task}.api")
    export = importlib.import_module(f"jaxhep.{task}.export")
    for name in ("report", "evaluate", "sim"):
        importlib.import_module(f"jaxhep.{task}.{name}")
    assert callable(config.default) and callable(config.quick) and isinstance(config.FLAGS, tuple)
    assert list(inspect.signature(experiment.load_data).parameters) == ["cfg", "runtime"]
    assert list(inspect.signature(experiment.train_and_evaluate).parameters) == [
        "cfg",
        "data",
        "run",
        "runtime",
    ]
    assert list(inspect.signature(training.train_model).parameters)[:5] == [
        "name",
        "cfg",
        "data",
        "run",
        "runtime",
    ]
    assert inspect.isclass(training.TrainedModel)
    assert next(iter(inspect.signature(api.load_predictor).parameters)) == "run_dir"
    assert next(iter(inspect.signature(export.onnx_graphs).parameters)) == "run_dir"
    entry = importlib.import_module(f"experiments.{task}")
    assert entry.TASK.onnx_graphs is export.onnx_graphs  # `export RUN_DIR` works for every task


@pytest.mark.parametrize("task", TASKS)
def test_entry_points_are_thin(task):
    source = (ROOT / "experiments" / f"{task}.py").read_text()
    code = [line for line in source.splitlines() if line.strip()]
    assert len(source.splitlines()) <= 45, f"experiments/{task}.py: {len(source.splitlines())} lines"
    assert "cli.Task" in source and "cli.run(TASK)" in source
    assert len(code) - len(ast.get_docstring(ast.parse(source)).splitlines()) <= 32


def test_python_m_experiments_lists_the_four_tasks():
    out = subprocess.run(
        [sys.executable, "-m", "experiments"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert [line.split()[2] for line in out.splitlines()[:4]] == [f"experiments.{t}" for t in TASKS]


def test_the_core_imports_no_task():
    for path in (ROOT / "jaxhep").glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import) (jaxhep\.\w+)", path.read_text(), re.M)
        assert not {i for i in imports if i.split(".")[1] in TASKS}, path.name


def test_documents_name_only_what_a_clone_has():
    tracked = set(
        subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    )
    for doc in ("README.md", "BUILD_NOTES.md"):
        text = (ROOT / doc).read_text()
        for gone in (".notes/", ".dev/", "../shared", "ARCHITECTURE.md", "DATA.md"):
            assert gone not in text, f"{doc} names {gone}"
        # every `path/like/this.py` (or .sh, .md, .ipynb, .toml) in backticks is a file of the repository
        for path in re.findall(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|sh|md|ipynb|toml))`", text):
            assert not tracked or path in tracked or (ROOT / path).exists(), f"{doc}: {path}"
    assert len((ROOT / "BUILD_NOTES.md").read_text().splitlines()) < 800
