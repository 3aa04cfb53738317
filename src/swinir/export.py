"""ONNX export of a SwinIR network, and the onnxruntime runner of an export.

Export (``swinir export``, :func:`export_onnx`): one graph for every batch, height and width. The reference
code's export is tied to one size because its shifted blocks keep an attention mask computed for the training
size; here the shift mask is never a tensor over all windows (three cached border patterns, see
:mod:`swinir.network`), so ``torch.export`` traces the network with symbolic sizes: batch, and height and
width as multiples of the window. The graph therefore takes *window-padded* input, which is what the engine
hands a network anyway (the reference padding, :func:`swinir.engine.pad_reference`, always ends on a window
multiple); :class:`OnnxRuntimeModel` pads any other size as the network's own ``forward`` does. The file
carries the model config and the ``swinir.*`` metadata in its ``metadata_props``, so it is all a backend needs.

Runner (:class:`OnnxRuntimeModel`): the export, callable on a float tensor (B, C, H, W) as the network is. It
computes in float32 on the CPU (``CPUExecutionProvider``); results equal the PyTorch network in float32 to
~1e-6 (``tests/test_onnx.py``). :func:`swinir.backends.open_model` puts it behind a
:class:`~swinir.descriptor.ModelDescriptor` like a PyTorch network. The graph runs the whole image at once (no
chunks of windows, unlike the PyTorch path), so its memory grows with the pixels: ~20 KB per input pixel for
SwinIR-S x4 against ~2-5 KB in PyTorch; the engine tiles it from the backend's own estimate and default
budget (:data:`swinir.descriptor.BACKENDS`); the session's arena is off, so memory goes back after every tile.

:func:`read_onnx_file` describes an export (``swinir info``): its config, task, opset, precision.

``onnx``, ``onnxscript`` (the exporter's) and ``onnxruntime`` are optional: ``pip install 'swinir[onnx]'``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .descriptor import ModelDescriptor, describe
from .errors import SwinIRError
from .metadata import CONFIG_KEY, PREFIX, ModelMetadata, entries, key
from .network import SwinIR
from .presets import ModelConfig

DEFAULT_OPSET = 18  # the lowest opset torch's exporter translates to (LayerNormalization needs 17)
INPUT_NAME, OUTPUT_NAME = "input", "output"
INSTALL_HINT = "pip install 'swinir[onnx]' (onnx, onnxscript, onnxruntime)"
EXAMPLE_WINDOWS = (3, 5)  # traced example: 3 x 5 windows, batch 2 (sizes of 1 or 2 windows would be specialised)
EXPORT_STAGES = ("tracing the network", "translating to ONNX", "optimising the graph", "writing the file",
                 "checking it against PyTorch")  # what swinir export says it is doing, in order


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_onnx` wrote, and how far the file's output is from PyTorch's on a check input."""

    path: Path
    config: ModelConfig
    opset: int
    seconds: float
    max_abs_diff: float
    size_bytes: int

    def line(self) -> str:
        c = self.config
        what = f"x{c.upscale} {c.upsampler}" if c.upscale > 1 else "same-size"
        return (f"wrote {self.path} ({what}, {c.in_chans}-channel, window {c.window_size}, opset {self.opset}, "
                f"{self.size_bytes / 1e6:.1f} MB, any batch/height/width, in {self.seconds:.0f} s; "
                f"onnxruntime vs PyTorch max abs diff {self.max_abs_diff:.1e})")


def require_optional(module: str) -> Any:
    """Import an optional dependency, or say in one line how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise SwinIRError(f"the ONNX features need the '{module}' package ({err}); {INSTALL_HINT}") from err


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress prints, its warnings and its notes about torchvision (not used here)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_network(model: ModelDescriptor | SwinIR, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                   metadata: Mapping[str, str] | None = None,
                   stage: Callable[[str], None] | None = None) -> ExportSummary:
    """Write ``model`` as one ONNX graph with dynamic batch, height and width (multiples of the window).

    The caller's model is not changed: a float32 CPU copy is traced with the whole-map inference path
    (``set_inference_chunk(None)``) and the fused attention. The file is written atomically, with the config
    and ``metadata`` (``swinir.*`` keys) in its ``metadata_props``, and then checked: onnxruntime runs it on
    a small input and its output is compared with PyTorch's. ``stage`` is called with each of
    :data:`EXPORT_STAGES` as it starts (the whole takes minutes for a full-size model; see :func:`stage_display`).
    """
    stage = stage or (lambda name: None)
    for module in ("onnx", "onnxscript", "onnxruntime"):
        require_optional(module)
    import onnx

    from . import __version__
    from .fileio import atomic_path

    if opset < DEFAULT_OPSET:
        raise SwinIRError(f"--opset {opset} is too old for the exporter: use {DEFAULT_OPSET} or newer")
    path = Path(path)
    if path.is_dir():
        raise SwinIRError(f"{path} is a folder; give the ONNX file to write, e.g. {path / 'model.onnx'}")
    described = describe(model)
    if described is None or described.backend != "torch":
        raise SwinIRError("only a PyTorch SwinIR exports: build it with ModelConfig.build or load it with swinir.load")
    config = described.config
    started = time.monotonic()
    net = copy.deepcopy(described.network).float().cpu().eval().set_inference_chunk(None).set_attention("fused")
    props = entries(config, {"format": "onnx/1", "version": __version__,
                             "input": f"float32 (B, {config.in_chans}, H, W) in [0, 1], H and W multiples of "
                                      f"{config.window_size} (pad with swinir.engine.pad_reference; crop the output)"})
    for name, value in (metadata or {}).items():
        if name.startswith(PREFIX) and name not in props:
            props[name] = value if isinstance(value, str) else json.dumps(value)
    with atomic_path(path) as tmp:
        tmp.touch()  # an unwritable folder fails now, not after minutes of tracing
        proto = _trace(net, opset, stage)
        stage(EXPORT_STAGES[3])
        del proto.metadata_props[:]
        for key, value in sorted(props.items()):
            proto.metadata_props.add(key=key, value=value)
        onnx.save_model(proto, str(tmp))
    stage(EXPORT_STAGES[4])
    diff = _self_check(net, path)
    return ExportSummary(path, config, opset, time.monotonic() - started, diff, path.stat().st_size)


def _trace(net: SwinIR, opset: int, stage: Callable[[str], None]) -> Any:
    """The ONNX ``ModelProto`` of ``net``, traced by ``torch.export`` with symbolic batch, height and width."""
    ws = net.window_size
    rows, cols = EXAMPLE_WINDOWS
    example = torch.rand(2, net.in_chans, rows * ws, cols * ws, generator=torch.Generator().manual_seed(0))
    dim = torch.export.Dim
    shapes = ({0: dim("batch", min=1), 2: ws * dim("window_rows", min=1), 3: ws * dim("window_cols", min=1)},)
    try:
        with torch.no_grad(), _quiet_exporter():
            stage(EXPORT_STAGES[0])
            program = torch.export.export(net, (example,), dynamic_shapes=shapes, strict=False)
            stage(EXPORT_STAGES[1])
            onnx_program = torch.onnx.export(program, dynamo=True, input_names=[INPUT_NAME],
                                             output_names=[OUTPUT_NAME], opset_version=opset, optimize=False)
            stage(EXPORT_STAGES[2])
            onnx_program.optimize()
    except Exception as err:  # the exporter's messages run to pages; the first line names the problem
        first = (str(err).strip().splitlines() or [""])[0]
        raise SwinIRError(f"ONNX export failed ({type(err).__name__}: {first}); try another --opset") from err
    proto = onnx_program.model_proto
    _check_dynamic(proto)
    return proto


def export_onnx(weights: str | os.PathLike, path: str | os.PathLike, *, preset: str | None = None,
                opset: int = DEFAULT_OPSET, stage: Callable[[str], None] | None = None) -> ExportSummary:
    """Export a checkpoint (.pth or .safetensors, see :func:`swinir.checkpoints.load`) to ``path``."""
    from .checkpoints import load

    model = load(weights, preset)
    meta = {key("source"): Path(weights).name, **model.metadata}
    return export_network(model, path, opset=opset, metadata=meta, stage=stage)


@contextlib.contextmanager
def stage_display(*, quiet: bool = False, prefix: str = "export") -> Iterator[Callable[[str], None]]:
    """A ``stage`` callback for :func:`export_network` that shows the stage and the time since the start on
    stderr: one line per stage when stderr is a file or pipe, a bar redrawn every second on a terminal (so a
    minute of tracing does not look like a hang)."""
    started = time.monotonic()
    if quiet:
        yield lambda name: None
        return
    if not sys.stderr.isatty():
        def line(name: str) -> None:
            print(f"{prefix}: {name}... ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)

        yield line
        print(f"{prefix}: done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        return
    from tqdm import tqdm

    bar = tqdm(total=len(EXPORT_STAGES), file=sys.stderr, leave=False,
               bar_format=prefix + ": {n_fmt}/{total_fmt} {desc} [{elapsed}]")
    stop = threading.Event()

    def tick() -> None:  # redraw the elapsed time while a stage runs
        while not stop.wait(1):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()

    def show(name: str) -> None:
        bar.update(EXPORT_STAGES.index(name) + 1 - bar.n if name in EXPORT_STAGES else 0)  # stage n of 5
        bar.set_description_str(name)

    try:
        yield show
    finally:
        stop.set()
        ticker.join()
        bar.close()


def _check_dynamic(proto: Any) -> None:
    """Refuse a graph whose batch, height or width came out fixed (the exporter specialised a size)."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    fixed = [name for name, d in zip(("batch", "height", "width"), (dims[0], dims[2], dims[3]), strict=True)
             if not d.dim_param]
    if fixed:
        raise SwinIRError(f"ONNX export fixed the {', '.join(fixed)} of the input; this network cannot be "
                          "exported with dynamic sizes (please report it)")


def _self_check(net: SwinIR, path: Path) -> float:
    """Max abs difference between onnxruntime on ``path`` and PyTorch, on a (1, C, 2ws, 3ws) random input."""
    ws = net.window_size
    x = torch.rand(1, net.in_chans, 2 * ws, 3 * ws, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net(x)
    got = OnnxRuntimeModel(path, threads=torch.get_num_threads())(x)
    return float((got - expected).abs().max())


# --------------------------------------------------------------------------------------------------
# The onnxruntime runner
# --------------------------------------------------------------------------------------------------


class OnnxRuntimeModel:
    """An exported SwinIR run by onnxruntime on the CPU, callable as the network is.

    Args:
        path: an ONNX file written by :func:`export_network`; its config and ``swinir.*`` metadata are read
            from the file (``config``, ``metadata``).
        threads: intra-op threads (default: PyTorch's thread count, which ``swinir restore --threads`` sets).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        ort = require_optional("onnxruntime")
        self.path = Path(path)
        if not self.path.is_file():
            raise SwinIRError(f"{self.path}: no such ONNX file; write one with swinir export WEIGHTS --onnx FILE")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        options.enable_cpu_mem_arena = False  # give the memory back after each run (the arena keeps its peak)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise SwinIRError(f"{self.path}: not a readable ONNX model ({str(err).strip().splitlines()[0]}); "
                              "re-export it with swinir export") from err
        self.metadata = ModelMetadata(self.session.get_modelmeta().custom_metadata_map)
        config = self.metadata.config
        if config is None:
            raise SwinIRError(f"{self.path}: not a swinir export (no '{CONFIG_KEY}' metadata); export the weights "
                              "with swinir export WEIGHTS --onnx FILE")
        self.config: ModelConfig = config
        self.threads = options.intra_op_num_threads

    def __call__(self, x: Tensor) -> Tensor:
        """(B, in_chans, h, w) -> (B, in_chans, h*upscale, w*upscale) float32, as ``SwinIR.forward``: a size
        that is not a window multiple is reflect-padded to one and the output cropped back."""
        chans, ws, scale = self.config.in_chans, self.config.window_size, self.config.upscale
        if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point() or x.shape[1] != chans:
            raise SwinIRError(f"the ONNX model takes a float tensor (B, {chans}, H, W)")
        h, w = x.shape[-2:]
        x = x.detach().to(device="cpu", dtype=torch.float32)
        if h % ws or w % ws:
            x = F.pad(x, (0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws), mode="reflect")
        out = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x.numpy())})[0]
        return torch.from_numpy(out)[..., : h * scale, : w * scale]

    def __repr__(self) -> str:
        return f"OnnxRuntimeModel({str(self.path)!r}, threads={self.threads})"


_ELEMENT_TYPES = {1: "fp32", 10: "fp16", 11: "fp64", 16: "bf16"}  # onnx.TensorProto data types


@dataclass(frozen=True)
class OnnxFileInfo:
    """What an ONNX file says about itself, read without running it (``swinir info``)."""

    path: Path
    config: ModelConfig | None  # None: not written by swinir export
    opset: int
    precision: str  # the input's element type: fp32 for swinir's exports
    inputs: str  # e.g. "input (*, 3, *, *)": * for a dynamic size
    metadata: dict[str, str]


def read_onnx_file(path: str | os.PathLike) -> OnnxFileInfo:
    """The config, opset, precision and metadata of an ONNX file (any ONNX file; a swinir export has a config)."""
    onnx = require_optional("onnx")
    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise SwinIRError(f"{path}: not a readable ONNX file ({str(err).strip().splitlines()[0]}); re-export it "
                          "with swinir export") from err
    meta = {prop.key: prop.value for prop in proto.metadata_props}
    config = ModelMetadata(meta).config
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    graph_inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    kinds = {_ELEMENT_TYPES.get(i.type.tensor_type.elem_type, f"type {i.type.tensor_type.elem_type}")
             for i in graph_inputs}
    dims = {i.name: ["*" if d.dim_param else str(d.dim_value) for d in i.type.tensor_type.shape.dim]
            for i in graph_inputs}
    inputs = ", ".join(f"{name} ({', '.join(shape)})" for name, shape in dims.items())
    return OnnxFileInfo(path, config, opset, "/".join(sorted(kinds)) or "none", inputs,
                        {k: v for k, v in meta.items() if k != CONFIG_KEY})
