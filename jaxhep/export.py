"""ONNX export: a trained model as a file ONNX Runtime runs (C++ in O2Physics or ACTS, Python, ...).

    python -m experiments.<task> export RUN_DIR [--out DIR]

A task says what to export (`<task>/export.py`: `onnx_graphs(run_dir) -> [OnnxGraph]`: a pure
JAX function of arrays with named, partly dynamic input shapes, and example inputs); this module
converts each with jax2onnx, writes `<name>.onnx` (and `<name>.json` where the graph has a
sidecar), runs it in ONNX Runtime on the examples at two batch sizes and refuses a file whose
outputs differ from JAX's by more than `ATOL`. `export.json` beside the files lists what was
written and the differences measured.

jax2onnx is installed without its own requirements (`pip install --no-deps jax2onnx`): they pin
orbax-checkpoint below the release jaxhep needs, and the converter imports neither orbax nor the
other frameworks it lists (equinox, dm-pix) for the NNX models exported here. The `[onnx]` extra
brings what it does import (onnx, onnx-ir) and ONNX Runtime.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxhep.errors import ConfigError, InputError

# ONNX Runtime against JAX on the same float32 inputs: both compute in float32 with different
# kernels (summation order, fused multiply-add), so they agree to ~1e-6 on outputs of order one.
ATOL = 1e-5
OPSET = 23  # jax2onnx's default; ONNX Runtime >= 1.24 runs it
JAX2ONNX = "jax2onnx>=0.17.1"
INSTALL = f'pip install -e ".[onnx]" && pip install --no-deps "{JAX2ONNX}"'


@dataclass(frozen=True)
class Input:
    """One input of an exported graph: `shape` with a string for a dynamic dimension ("N")."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"


@dataclass
class OnnxGraph:
    """One model to write as `<name>.onnx`.

    fn(*inputs) -> an array or a tuple of arrays (`outputs` names them, in order); `examples`:
    input tuples to check the file on (each a tuple of arrays matching `inputs`; give two with
    different sizes of the dynamic dimensions, so the check proves they are dynamic);
    `metadata`: key/value strings stored in the model (ONNX `metadata_props`: what ran the
    training, the output's meaning); `sidecar`: a JSON document written beside as `<name>.json`;
    `files`: other JSON documents by file name, written in the graph's folder (a consumer that
    reads fixed names there: O2Physics' columns_for_training.json).
    """

    name: str
    fn: Callable
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...]
    examples: Sequence[tuple[np.ndarray, ...]]
    metadata: dict[str, str] = field(default_factory=dict)
    sidecar: dict | None = None
    files: dict[str, object] = field(default_factory=dict)


def float32_twin(model, build: Callable[[], Any]):
    """`model`'s variables in `build()`, a twin computing in float32, in eval mode: what a graph
    converts (ONNX Runtime's CPU kernels have no bfloat16 matmul; the parameters are float32 whatever
    the training precision, so a bfloat16-trained model is then slightly more exact than in JAX)."""
    from flax import nnx

    twin = build()
    nnx.update(twin, nnx.state(model))
    twin.eval()
    return twin


def require_converter():
    """The jax2onnx and onnxruntime modules, or a ConfigError with the command that installs them."""
    try:
        import jax2onnx
        import onnxruntime
    except ImportError as err:
        raise ConfigError(f"ONNX export needs {err.name}: {INSTALL}") from None
    # Its plugins for frameworks jaxhep does not use (equinox, dm-pix) fail to import without
    # them, each with a warning and a traceback; the NNX and lax converters do not need them.
    logging.getLogger("jax2onnx").setLevel(logging.ERROR)
    logging.getLogger("onnx_ir").setLevel(logging.ERROR)
    return jax2onnx, onnxruntime


def session(model: str | os.PathLike | bytes):
    """An ONNX Runtime CPU session of a model file (or its serialised bytes)."""
    _, ort = require_converter()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    # One thread: jax2onnx writes segment sums (the GNN's message passing) as ScatterND / ScatterElements
    # with reduction="add", whose multi-threaded CPU kernel races on repeated indices in ONNX Runtime
    # (microsoft/onnxruntime#18048, #23396): a 200 k-edge graph's logits came out 0.1-0.6 off, differently
    # each run; with one thread 1e-6.
    options.intra_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_onnx(sess, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The outputs of session `sess` for input arrays in the order of its inputs."""
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {n: np.asarray(a) for n, a in zip(names, arrays, strict=True)})


def convert(graph: OnnxGraph):
    """The ONNX ModelProto of `graph` (metadata included), not yet checked."""
    jax2onnx, _ = require_converter()
    # Traced in JAX's default 32-bit mode: an int64 input is traced as int32 and given its declared
    # type afterwards (`_declare_input_types`), since x64 tracing would turn float constants double.
    specs = [jax.ShapeDtypeStruct(i.shape, np.dtype(i.dtype)) for i in graph.inputs]
    model = jax2onnx.to_onnx(
        graph.fn,
        specs,
        model_name=graph.name,
        opset=OPSET,
        input_names=[i.name for i in graph.inputs],
        output_names=list(graph.outputs),
    )
    _declare_input_types(model, graph.inputs)
    for key, value in {"producer": "jaxhep", **graph.metadata}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    return model


def _declare_input_types(model, inputs: Sequence[Input]) -> None:
    """Give each graph input of ONNX `model` its declared dtype where tracing narrowed it (int64 ->
    int32 without x64): the input takes the declared type and a Cast to the traced one feeds the
    nodes that read it."""
    import onnx

    for spec, value in zip(inputs, model.graph.input, strict=True):
        declared = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
        traced = value.type.tensor_type.elem_type
        if declared == traced:
            continue
        cast_name = f"{value.name}__as_traced"
        for node in model.graph.node:
            node.input[:] = [cast_name if name == value.name else name for name in node.input]
        cast = onnx.helper.make_node("Cast", [value.name], [cast_name], to=traced, name=f"{value.name}__cast")
        model.graph.node.insert(0, cast)
        value.type.tensor_type.elem_type = declared


def largest_difference(sess, graph: OnnxGraph) -> float:
    """The largest |ONNX Runtime - JAX| over every output of every example of `graph`."""
    worst = 0.0
    for example in graph.examples:
        expected = graph.fn(*example)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = run_onnx(sess, example)
        for name, e, g in zip(graph.outputs, expected, got, strict=True):
            e, g = np.asarray(e, np.float64), np.asarray(g, np.float64)
            if e.shape != g.shape:
                raise AssertionError(
                    f"{graph.name}: output {name} has shape {g.shape} in ONNX, {e.shape} in JAX"
                )
            worst = max(worst, float(np.max(np.abs(e - g), initial=0.0)))
    return worst


def export(graphs: Sequence[OnnxGraph], out_dir: str | os.PathLike, atol: float = ATOL) -> list[dict]:
    """Write each graph as `out_dir/<name>.onnx` (+ `<name>.json`), checked against JAX; returns
    (and writes to `out_dir/export.json`) one record per file: name, inputs, outputs, the largest
    difference measured. A graph whose check fails is not written (nor any after it)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for graph in graphs:
        model = convert(graph)
        data = model.SerializeToString()
        diff = largest_difference(session(data), graph)
        if not diff <= atol:
            raise AssertionError(f"{graph.name}: ONNX Runtime differs from JAX by {diff:.3g} (> {atol})")
        (out / graph.name).parent.mkdir(parents=True, exist_ok=True)  # a name may hold a folder
        _write_atomic(out / f"{graph.name}.onnx", data)
        documents = {f"{graph.name}.json": graph.sidecar} if graph.sidecar is not None else {}
        folder = Path(graph.name).parent
        documents.update({str(folder / name): doc for name, doc in graph.files.items()})
        for name, doc in documents.items():
            _write_atomic(out / name, (json.dumps(doc, indent=1) + "\n").encode())
        records.append(
            {
                "file": f"{graph.name}.onnx",
                "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype} for i in graph.inputs],
                "outputs": list(graph.outputs),
                "max_abs_diff_vs_jax": diff,
                "opset": OPSET,
            }
        )
    _write_atomic(out / "export.json", (json.dumps(records, indent=1) + "\n").encode())
    return records


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_command(task_name: str, onnx_graphs: Callable, argv: Sequence[str]) -> list[dict]:
    """`python -m experiments.<task> export RUN_DIR [--out DIR]`: the run's models as ONNX files."""
    import argparse

    p = argparse.ArgumentParser(
        prog=f"python -m experiments.{task_name} export",
        description="Write the trained models of a run as ONNX files, each checked in ONNX Runtime.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder")
    p.add_argument("--onnx", action="store_true", help="ONNX (the one format for now; the default)")
    p.add_argument("--out", metavar="DIR", help="where the files go (default RUN_DIR/export/onnx)")
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").is_file():
        raise InputError(run_dir, "not a run folder (no config.json)")
    require_converter()
    out = Path(args.out) if args.out else run_dir / "export" / "onnx"
    records = export(onnx_graphs(run_dir), out)
    for r in records:
        shapes = ", ".join(f"{i['name']}{i['shape']}" for i in r["inputs"])
        print(
            f"[{task_name}] {out / r['file']}  ({shapes} -> {', '.join(r['outputs'])}; "
            f"|ORT - JAX| <= {r['max_abs_diff_vs_jax']:.1e})"
        )
    return records
