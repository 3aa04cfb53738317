"""This project against the reference implementation itself, measured side by side in one run.

The reference is JingyunLiang/SwinIR's ``models/network_swinir.py``, which is not part of this project: fetch
the repository yourself and point ``SWINIR_REFERENCE`` at that file. Its three ``timm`` imports (DropPath,
to_2tuple, trunc_normal_) are replaced by small stand-ins defined here, so timm is not needed. Without the
variable the reference columns read "missing" and the rest is still measured.

Cases (each implementation and precision in a fresh process, so page faults and peak RSS are its own):

* ``m256``: SwinIR-M x2 (classical_sr_x2) on a 256x256 input, fp32 and bf16;
* ``s256``: SwinIR-S x2 (lightweight_sr_x2) on 256x256, fp32 and bf16;
* ``photo``: a real 512x768 photo (LIVE1 parrots) through the bundled JPEG model;
* ``train``: one training step of SwinIR-S x2, batch 8, LR patch 64: the reference model's fp32 step
  (forward, L1, backward, Adam) against ``swinir train``'s own loop (data loading from the shared training
  images included) in bf16;
* ``big`` (with ``--big``): SwinIR-M x2 on 2048x2048, tiled by a 2 GB memory budget: peak RSS.

``m256`` and ``photo`` also run the ONNX export (``swinir export``, exported in the worker, not timed) through
``--backend onnxruntime`` (fp32), and through OpenVINO when the ``openvino`` package is installed (it is not a
dependency: the row decides whether it would be worth one).

Ours runs through ``swinir.pipeline.restore_image`` (the reference test script's padding included; the
reference gets the unpadded tensor, so ours does slightly more work). Reported per case: wall time (median
of ``--repeat`` calls taken while the rest of the machine was idle), user and system CPU time and minor page
faults of one call, peak RSS, GFLOP/s against the 2048^3 ``torch.mm`` ceilings of the same run, and the ratio
to the reference's fp32 time of the same run.

    SWINIR_REFERENCE=/path/to/SwinIR/models/network_swinir.py python benchmarks/compare_reference.py
    python benchmarks/compare_reference.py --cases m256 photo --repeat 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from _common import forward_flops, machine_line, markdown_table, matmul_ceiling, peak_rss_mb, timed

RESULTS = Path(__file__).resolve().parent / "results" / "compare_reference.md"
ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SWINIR_SHARED", ROOT.parent / "shared"))
CASES = ("m256", "s256", "photo", "train")


# --------------------------------------------------------------------------------------------------
# The reference, loaded from the user's copy with stand-ins for its timm imports
# --------------------------------------------------------------------------------------------------


def _timm_stand_ins() -> None:
    """Minimal ``timm.models.layers`` with the three names the reference imports."""
    if "timm.models.layers" in sys.modules:
        return

    class DropPath(torch.nn.Module):
        def __init__(self, p: float = 0.0) -> None:
            super().__init__()
            self.p = p

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.p == 0.0 or not self.training:
                return x
            keep = 1 - self.p
            return x * x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep) / keep

    def to_2tuple(x: object) -> tuple:
        return tuple(x) if isinstance(x, list | tuple) else (x, x)

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath, layers.to_2tuple, layers.trunc_normal_ = DropPath, to_2tuple, torch.nn.init.trunc_normal_
    sys.modules["timm"] = types.ModuleType("timm")
    sys.modules["timm.models"] = types.ModuleType("timm.models")
    sys.modules["timm.models.layers"] = layers


def reference_module() -> types.ModuleType | None:
    path = os.environ.get("SWINIR_REFERENCE")
    if not path or not Path(path).is_file():
        return None
    _timm_stand_ins()
    spec = importlib.util.spec_from_file_location("reference_network_swinir", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def reference_model(config: object, state: dict | None = None) -> torch.nn.Module:
    """The reference SwinIR with our config's architecture (and our weights, re-keyed with its buffers)."""
    from swinir.checkpoints import reference_state_dict

    ref = reference_module()
    if ref is None:
        raise RuntimeError("SWINIR_REFERENCE is not set")
    c = config.to_dict()  # type: ignore[attr-defined]
    model = ref.SwinIR(upscale=c["upscale"], in_chans=c["in_chans"], img_size=c["img_size"],
                       window_size=c["window_size"], img_range=c["img_range"], depths=c["depths"],
                       embed_dim=c["embed_dim"], num_heads=c["num_heads"], mlp_ratio=c["mlp_ratio"],
                       upsampler=c["upsampler"], resi_connection=c["resi_connection"])
    if state is not None:
        ours = config.build()  # type: ignore[attr-defined]
        ours.load_state_dict(state, strict=True)
        model.load_state_dict(reference_state_dict(ours), strict=True)
    return model


# --------------------------------------------------------------------------------------------------
# One measurement, in a fresh process
# --------------------------------------------------------------------------------------------------


def _usage() -> tuple[float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def _measure(fn, repeat: int) -> dict:
    u0, s0, f0 = _usage()
    start = time.perf_counter()
    fn()  # warm-up, also the call whose CPU time and faults are reported (and timed, with --repeat 0)
    first = time.perf_counter() - start
    u1, s1, f1 = _usage()
    if repeat == 0:
        return {"wall": first, "user": u1 - u0, "sys": s1 - s0, "faults": f1 - f0, "discarded": 0}
    t = timed(fn, repeat=repeat, warmup=0)
    return {"wall": t.median, "user": u1 - u0, "sys": s1 - s0, "faults": f1 - f0, "discarded": t.discarded}


def _onnx_runner(model, impl: str, tmp: Path):
    """The exported ``model`` (a network or a descriptor) behind a descriptor that runs it with onnxruntime, or
    OpenVINO on the same file, as the pipeline runs any model."""
    from swinir.descriptor import ModelDescriptor, ModelInfo
    from swinir.export import OnnxRuntimeModel, export_network

    path = export_network(model, tmp / "model.onnx").path
    runner = OnnxRuntimeModel(path)
    config = runner.config
    if impl == "openvino":
        import openvino

        compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

        def run(x: torch.Tensor) -> torch.Tensor:
            ws, (h, w) = config.window_size, x.shape[-2:]
            x = torch.nn.functional.pad(x, (0, (-w) % ws, 0, (-h) % ws), mode="reflect")
            out = torch.from_numpy(compiled(x.contiguous().numpy())[0])
            return out[..., : h * config.upscale, : w * config.upscale]

        runner = run
    return ModelDescriptor(runner, config, ModelInfo.of_architecture(config), backend="onnxruntime")


def worker(case: str, impl: str, precision: str, repeat: int) -> dict:
    import swinir
    from swinir.pipeline import RestoreOptions, restore_image
    from swinir.presets import get_preset

    torch.manual_seed(0)
    flops = 0
    if case in ("m256", "s256", "big"):
        config = get_preset("classical_sr_x2" if case != "s256" else "lightweight_sr_x2").config
        size = 2048 if case == "big" else 256
        image = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8)
        if impl == "ref":
            model = reference_model(config).eval()
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255

            def fn() -> None:
                with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                    model(x)
        elif impl in ("ort", "openvino"):
            import tempfile

            runner = _onnx_runner(config.build().eval(), impl, Path(tempfile.mkdtemp()))

            def fn() -> None:
                restore_image(runner, image, RestoreOptions(precision="fp32"))
        else:
            model = config.build().eval()
            budget = 2 * 10**9 if case == "big" else None

            def fn() -> None:
                restore_image(model, image, RestoreOptions(precision=precision, max_memory=budget))
        if case != "big":
            flops = forward_flops(config.build().eval(), torch.rand(1, 3, size, size))
    elif case == "photo":
        from swinir.bundled import bundled_model
        from swinir.checkpoints import read_checkpoint, resolve_config
        from swinir.images import read_image

        path = bundled_model("jpeg").path
        state, meta = read_checkpoint(path)
        config = resolve_config(state, meta, None)
        image = read_image(SHARED / "datasets" / "LIVE1" / "parrots.bmp")
        if impl == "ref":
            model = reference_model(config, state).eval()
            x = torch.from_numpy(image.pixels).permute(2, 0, 1)[None].float() / 255
            pad_h, pad_w = (-x.shape[2]) % config.window_size, (-x.shape[3]) % config.window_size
            x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")

            def fn() -> None:
                with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                    model(x)
        elif impl in ("ort", "openvino"):
            import tempfile

            runner = _onnx_runner(swinir.load(path), impl, Path(tempfile.mkdtemp()))

            def fn() -> None:
                restore_image(runner, image, RestoreOptions(precision="fp32"))
        else:
            model = swinir.load(path)

            def fn() -> None:
                restore_image(model, image, RestoreOptions(precision=precision))
        flops = forward_flops(config.build().eval(), torch.rand(1, 3, *image.pixels.shape[:2]))
    elif case == "train":
        return _train_worker(impl, precision, repeat)
    else:
        raise SystemExit(f"unknown case {case}")
    out = _measure(fn, repeat)
    return {**out, "flops": flops, "rss_mb": peak_rss_mb()}


def _train_worker(impl: str, precision: str, repeat: int) -> dict:
    """One training step of SwinIR-S x2, batch 8, LR 64: the reference's plain step, or swinir train's loop."""
    from swinir.presets import get_preset

    config = get_preset("lightweight_sr_x2").config
    if impl == "ref":
        model = reference_model(config).train()
        opt = torch.optim.Adam(model.parameters(), lr=2e-4)
        lq, hr = torch.rand(8, 3, 64, 64), torch.rand(8, 3, 128, 128)

        def fn() -> None:
            with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                out = model(lq)
            loss = (out.float() - hr).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return {**_measure(fn, repeat), "flops": 0, "rss_mb": peak_rss_mb()}
    import tempfile

    from swinir.memory import tune_allocator
    from swinir.training import Trainer, load_config
    from swinir.training.data import make_loader

    tune_allocator()  # as `swinir train` does

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(recipe="lightweight_sr_x2", overrides=[
            f"data.root={SHARED / 'datasets'}", "data.train=[train/T91, train/BSD200, train/BSDS500_test200]",
            "data.batch_size=8", "data.patch_size=64", "data.num_workers=0", f"train.precision={precision}",
            "val.folder=null", "log.tensorboard=false", "log.plot=false", "log.progress=false",
            "checkpoint.every=0", "checkpoint.export_best=false", "train.iterations=100000"])
        trainer = Trainer(cfg, Path(tmp) / "run", log=lambda message: None)
        trainer.model.train()
        batches = iter(make_loader(trainer.dataset, 0, 10**5, num_workers=0))

        def fn() -> None:
            lq, hr = next(batches)
            trainer.step(lq, hr)

        return {**_measure(fn, repeat), "flops": 0, "rss_mb": peak_rss_mb()}


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------


def run_worker(case: str, impl: str, precision: str, repeat: int, threads: int) -> dict | None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--worker", case, impl, precision, "--repeat", str(repeat)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"{case} {impl} {precision} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=[*CASES, "big"])
    parser.add_argument("--big", action="store_true", help="also SwinIR-M x2 at 2048x2048 (minutes)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed calls after the first (0: time the first call only, e.g. for --cases big)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--impls", nargs="+", choices=("ref", "ours", "ort", "openvino"),
                        help="only these implementations (the reference fp32 base row is always kept)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        torch.set_num_threads(args.threads)
        print(json.dumps(worker(*args.worker, repeat=args.repeat)))
        return
    torch.set_num_threads(args.threads)
    ceiling32, ceiling16 = matmul_ceiling(torch.float32), matmul_ceiling(torch.bfloat16)
    have_ref = reference_module() is not None
    cases = list(args.cases) + (["big"] if args.big and "big" not in args.cases else [])
    onnx = [("ort", "fp32")] + ([("openvino", "fp32")] if importlib.util.find_spec("openvino") else [])
    plan = {"m256": [("ref", "fp32"), ("ref", "bf16"), ("ours", "fp32"), ("ours", "bf16"), *onnx],
            "s256": [("ref", "fp32"), ("ref", "bf16"), ("ours", "fp32"), ("ours", "bf16")],
            "photo": [("ref", "fp32"), ("ours", "fp32"), ("ours", "bf16"), *onnx],
            "train": [("ref", "fp32"), ("ours", "bf16")],
            "big": [("ours", "bf16")]}
    labels = {"m256": "SwinIR-M x2, 256x256", "s256": "SwinIR-S x2, 256x256",
              "photo": "LIVE1 parrots 512x768, bundled JPEG model",
              "train": "training step, SwinIR-S x2, batch 8, LR 64",
              "big": "SwinIR-M x2, 2048x2048, tiled (2 GB budget)"}
    header = ["case", "implementation", "precision", "wall s", "user s", "sys s", "minor faults", "peak RSS",
              "GFLOP/s (% of mm ceiling)", "vs reference fp32"]
    rows = []
    for case in cases:
        base = None
        for impl, precision in plan[case]:
            if args.impls and impl not in args.impls and (impl, precision) != ("ref", "fp32"):
                continue
            if impl == "ref" and not have_ref:
                rows.append([labels[case], "reference", precision, "missing (set SWINIR_REFERENCE)", *["-"] * 6])
                continue
            r = run_worker(case, impl, precision, args.repeat, args.threads)
            if r is None:
                rows.append([labels[case], impl, precision, "failed", *["-"] * 6])
                continue
            if impl == "ref" and precision == "fp32":
                base = r["wall"]
            ceiling = ceiling16 if precision == "bf16" else ceiling32
            rate = r["flops"] / r["wall"] / 1e9 if r["flops"] else math.nan
            name = {"ref": "reference", "ours": "swinir", "ort": "swinir onnxruntime", "openvino": "swinir OpenVINO"}
            rows.append([labels[case], name[impl], precision, f"{r['wall']:.2f}",
                         f"{r['user']:.2f}", f"{r['sys']:.2f}", f"{r['faults']:,}", f"{r['rss_mb'] / 1000:.2f} GB",
                         "-" if math.isnan(rate) else f"{rate:.0f} ({100 * rate / ceiling:.0f} %)",
                         f"{base / r['wall']:.2f}x" if base else "-"])
            print(" | ".join(rows[-1]), flush=True)
    text = "\n".join([
        "# Against the reference implementation (`benchmarks/compare_reference.py`)",
        "",
        f"- machine: {machine_line()}",
        f"- matmul ceilings (2048^3 `torch.mm`, same run, {args.threads} threads): fp32 {ceiling32:.0f} GFLOP/s, "
        f"bf16 {ceiling16:.0f} GFLOP/s",
        f"- wall: median of {args.repeat} undisturbed calls; user/sys CPU and minor page faults: one call; each row "
        "a fresh process; reference = JingyunLiang/SwinIR `models/network_swinir.py` (timm stand-ins)",
        "",
        markdown_table(header, rows, "lll" + "r" * (len(header) - 3)),
        "",
    ])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
