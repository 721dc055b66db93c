"""Worker for tests/test_distributed.py: the same short training, on one or several processes.

    python -m tests.distributed_worker --devices 8 --ckpt DIR
    python -m tests.distributed_worker --devices 4 --ckpt DIR --coordinator localhost:PORT \
        --num-processes 2 --process-id {0,1}

Runs `jaxhep.train.fit` (grain input sliced per process, `shard_batch`, orbax checkpoints in
one shared directory, `predict_rows` gathered across processes) and prints, from process 0
only, one JSON line: per-epoch losses and validation accuracy, and every parameter leaf's
sum and sum of squares after training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"

N_ROWS = 1024  # 1024 / (64 x 4) = 4 chunks per epoch
CFG_FIELDS = dict(
    epochs=2,
    batch_size=64,
    steps_per_call=4,
    optimizer="sgd",
    learning_rate=0.05,
    progress=False,
    patience=10,
    eval_batch_size=128,
    keep_checkpoints=2,
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--devices", type=int, required=True, help="fake CPU devices of this process")
    p.add_argument("--ckpt", required=True, help="checkpoint directory (the same for every process)")
    p.add_argument("--coordinator")
    p.add_argument("--num-processes", type=int)
    p.add_argument("--process-id", type=int)
    args = p.parse_args(argv)

    import jax

    jax.config.update("jax_num_cpu_devices", args.devices)

    from jaxhep import mesh as mesh_lib

    if args.coordinator:
        mesh_lib.initialize_distributed(args.coordinator, args.num_processes, args.process_id)

    import numpy as np
    from flax import nnx

    from jaxhep.train import TrainConfig, Trainer, fit
    from tests.toy import ToyMLP, toy_data, toy_fns

    mesh = mesh_lib.make_mesh()  # every device of every process
    x, y = toy_data(N_ROWS)
    read, loss_fn, predict_fn, validate = toy_fns(x, y, n_val=300)  # 300: the last eval batch is padded
    cfg = dataclasses.replace(TrainConfig(), **CFG_FIELDS)
    trainer = Trainer(ToyMLP(), loss_fn, predict_fn, cfg, mesh, total_steps=2 * 16)
    result = fit(trainer, read, N_ROWS, validate, args.ckpt)

    params = nnx.state(trainer.model(), nnx.Param)
    # Replicated arrays: every process holds a full copy on its first addressable device.
    leaves = [
        np.asarray(leaf.addressable_shards[0].data, dtype=np.float64) for leaf in jax.tree.leaves(params)
    ]
    out = {
        "process_count": jax.process_count(),
        "global_devices": len(jax.devices()),
        "local_devices": len(jax.local_devices()),
        "mesh_devices": int(mesh.devices.size),
        "loss": [h["loss"] for h in result.history],
        "val_accuracy": [h["val_accuracy"] for h in result.history],
        "best_epoch": result.best_epoch,
        "param_sums": [float(v.sum()) for v in leaves],
        "param_sq_sums": [float((v * v).sum()) for v in leaves],
        "preds_checksum": float(np.abs(trainer.predict_rows(read, 300, 128)).sum()),
    }
    if jax.process_index() == 0:
        print("RESULT " + json.dumps(out), flush=True)
    if args.coordinator:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
