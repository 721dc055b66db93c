"""`python -m experiments` lists the experiments, one line each with its command."""

import ast
from pathlib import Path

TASKS = ("pid", "tracking", "egamma", "dune")

for task in TASKS:
    # The first line of each entry point's docstring says what it does (read, not imported: no JAX).
    source = (Path(__file__).parent / f"{task}.py").read_text()
    doc = (ast.get_docstring(ast.parse(source)) or "").splitlines()[0]
    print(f"python -m experiments.{task:<9} {doc}")
print("Each takes --help; --quick is a one-minute smoke run.")
