"""Run the unchanged trainer through accelerate's FSDP2 path on CPU processes (gloo), for tests.

Why: accelerate (1.15) shards only on GPUs and other accelerators. For CPU processes it picks
``DistributedType.MULTI_CPU`` (DDP) even when an FSDP plugin is given (accelerate/state.py: the
branch that turns a plugin into ``DistributedType.FSDP`` lists only the MULTI_GPU/NPU/XPU/...
types), so ``fsdp: true`` falls back to DDP there and the trainer warns. PyTorch's FSDP2
(``fully_shard``) itself runs on CPU over gloo, so :func:`lift_cpu_gate` makes accelerate take
its FSDP branch for CPU processes too. Nothing else is patched: the trainer's own FSDP code
(sharded state gathering, checkpoint save, resume, export) runs as it would on GPUs.

Usage (the keys are illada-train's)::

    torchrun --standalone --nproc_per_node 2 -m fsdp_cpu_launch --cpu true --fsdp true --key value ...

Before training, every process checks that the model really is sharded -- each parameter a
DTensor split along dim 0 over all processes -- and exits with an error if not; the main
process prints what it found as one line ``LAYOUT_PREFIX {json}``.
"""
from __future__ import annotations

import json
import sys

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType
from torch.distributed.tensor import DTensor, Shard

from illada_eval.train.config import load_config
from illada_eval.train.trainer import Trainer

LAYOUT_PREFIX = "fsdp layout:"


def lift_cpu_gate() -> None:
    """Let accelerate use FSDP for CPU processes, as it does for GPU ones, when given a plugin."""
    build_state = AcceleratorState.__init__

    def init_with_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):
        build_state(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            # what accelerate's GPU branch does with a plugin; PartialState too, as accelerate does,
            # since every later AcceleratorState() copies its distributed_type from there
            self.distributed_type = DistributedType.FSDP
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            if self._mixed_precision != "no":
                fsdp_plugin.set_mixed_precision(self._mixed_precision)

    AcceleratorState.__init__ = init_with_fsdp_on_cpu


def sharding_layout(trainer: Trainer) -> dict:
    """What this process holds: the distributed type and how each parameter is split."""
    parameters = dict(trainer.model.named_parameters())
    world = trainer.accelerator.num_processes
    unsharded = [
        name for name, parameter in parameters.items()
        if not (isinstance(parameter, DTensor) and parameter.placements == (Shard(0),)
                and parameter.device_mesh.size() == world)
    ]
    return {
        "distributed_type": trainer.accelerator.distributed_type.value,
        "world_size": world,
        "parameters": len(parameters),
        "unsharded": unsharded,
        "full_numel": sum(p.numel() for p in parameters.values()),
        "local_numel": sum(p.to_local().numel() for p in parameters.values() if isinstance(p, DTensor)),
    }


def main(argv: list[str]) -> int:
    lift_cpu_gate()
    trainer = Trainer(load_config(None, argv))
    layout = sharding_layout(trainer)
    if trainer.accelerator.is_main_process:
        print(LAYOUT_PREFIX, json.dumps(layout), flush=True)
    if layout["distributed_type"] != DistributedType.FSDP.value or layout["unsharded"]:
        raise RuntimeError(f"the run is not FSDP-sharded over {layout['world_size']} processes: {layout}")
    trainer.train()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
