"""The authors' released checkpoints: one typed row per file of the SwinIR release, and the paper's numbers.

Every file of ``https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/`` has a short name a person can
type. The scheme is ``<kind>[-<variant>]-<scale or level>[-l][-psnr]``:

- ``classical-x2`` ... ``classical-x8``: SwinIR-M classical (bicubic) SR trained on DF2K, the paper's best;
  ``classical-div2k-x2`` ...: the same trained on DIV2K alone (the paper's "DIV2K" column);
- ``lightweight-x2`` ... ``lightweight-x4``: SwinIR-S;
- ``real-x2``, ``real-x4``: real-world SR, SwinIR-M, GAN-trained (what practitioners run on photos);
  ``-l``: SwinIR-L; ``-psnr``: the PSNR-trained model before its GAN stage (smoother);
- ``gray-dn-15`` / ``color-dn-25``: denoising at one noise sigma; ``gray-jpeg-10`` / ``color-jpeg-40``: JPEG
  artifact reduction at one quality.

A row names its file; the preset it must build comes from :func:`swinir.presets.preset_for_checkpoint_name`
(the presets list their official files), its task, scale and level from that preset and the file name, so
nothing is written down twice. ``size`` and ``sha256`` are the public records of the files where one exists
(OpenModelDB's data and independent configs agree; the authors publish no checksums); None elsewhere: those
files are checked against the SHA-256 of their first download (:mod:`swinir.hub`).

:data:`PAPER_RESULTS` holds the paper's numbers (``shared/PAPER_RESULTS.md``) per model, benchmark set and
metric key of :mod:`swinir.evaluation`; ``swinir reproduce`` compares against it, and tests pass a fake one.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import SwinIRError
from .presets import ModelConfig, Preset, preset_for_checkpoint_name
from .tasks import TASKS, Family, family_of, get_task

RELEASE_URL = "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/"
BASE_URL_ENV = "SWINIR_MODEL_BASE_URL"  # a mirror, an internal server or a file:// folder with the same names
RELEASE_FILE = re.compile(
    r"00[1-6]_(classicalSR|lightweightSR|realSR|grayDN|colorDN|CAR|colorCAR)_(DF2K|DIV2K|BSRGAN_DFO(WMFC)?|DFWB)"
    r"_s(?P<patch>\d+)w(?P<window>\d+)_SwinIR-[SML]_(x\d|noise\d+|jpeg\d+)(_GAN|_PSNR)?\.pth"
)
_PATCH_WINDOW = re.compile(r"_s(\d+)w(\d+)_")


@dataclass(frozen=True)
class AuthorsModel:
    """One file of the authors' release.

    Attributes:
        name: what users type (module docstring).
        file: the release's file name.
        size: bytes of the public record, None where there is none.
        sha256: SHA-256 of the public record (lowercase hex), None where there is none.
        level: the noise sigma or JPEG quality the model was trained for (None for SR).
        description: one line on what it is for.
    """

    name: str
    file: str
    size: int | None
    sha256: str | None
    level: int | None
    description: str

    @property
    def stem(self) -> str:
        return self.file.removesuffix(".pth")

    @property
    def preset(self) -> Preset:
        """The preset this file must build (every key and shape)."""
        preset = preset_for_checkpoint_name(self.file)
        if preset is None:
            raise SwinIRError(f"{self.file}: no preset lists this file; add it to swinir.presets")
        return preset

    @property
    def task(self) -> str:
        """The paper's task name (a key of :data:`swinir.tasks.TASKS`)."""
        return self.preset.task

    @property
    def family(self) -> Family:
        return get_task(self.task).family

    @property
    def scale(self) -> int:
        return int(self.preset.config.upscale)

    @property
    def config(self) -> ModelConfig:
        """The preset's config with the training patch size of the file name (``s64``) as ``img_size``: it
        sizes the reference's shift-mask buffers (the DF2K classical models used 64, the DIV2K ones 48)."""
        config = self.preset.config
        match = _PATCH_WINDOW.search(self.file)
        return config.replace(img_size=int(match.group(1))) if match else config

    def url(self) -> str:
        """The file's URL: the release, or the same name under ``$SWINIR_MODEL_BASE_URL``."""
        base = os.environ.get(BASE_URL_ENV) or RELEASE_URL
        return base.rstrip("/") + "/" + self.file

    @property
    def paper(self) -> dict[str, dict[str, float]]:
        """The paper's numbers for this model: benchmark set -> metric key -> value (empty where it has none)."""
        return paper_results(self)


def estimated_size(model: AuthorsModel) -> int:
    """Bytes of a release file from its architecture: float32 parameters, and the reference's derived buffers
    (an int64 ``relative_position_index`` per block, a float32 shift mask of ``img_size`` per shifted block).
    Within 1% of every public record (the rest is the pickle's key names); for the files that have none."""
    config, preset = model.config, model.preset
    params = preset.official_params or 0
    n = config.window_size**2
    shifted = sum(d // 2 for d in config.depths) if config.img_size > config.window_size else 0
    windows = (config.img_size // config.window_size) ** 2
    return 4 * params + 8 * n * n * sum(config.depths) + 4 * windows * n * n * shifted


def _row(name: str, file: str, level: int | None, description: str) -> AuthorsModel:
    size, sha256 = PUBLIC_RECORDS.get(file, (None, None))
    return AuthorsModel(name, file, size, sha256, level, description)


# Sizes and SHA-256 of the release files that have a public record (issue 26); the ten others have none.
PUBLIC_RECORDS: dict[str, tuple[int, str]] = {
    "001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth":
        (67277475, "2032ebf8f401dd3ce2fae5f3852117cb72101ec6ed8358faa64c2a3fa09ed4ac"),
    "001_classicalSR_DF2K_s64w8_SwinIR-M_x3.pth":
        (68016035, "6eca3aee41f53322cd2f5a13650e212b80be8f3c0439d6fe19aef13ab1f509c7"),
    "001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth":
        (67869037, "4e78e33f22c1aa8a773db0cf4a7381bae97c2362c717f155439ebc690cbd9215"),
    "001_classicalSR_DF2K_s64w8_SwinIR-M_x8.pth":
        (68460535, "6b522c1ea5c21006ce3398797eb20b131ca0024cc6e7b8f3d5d29fad1310a49c"),
    "001_classicalSR_DIV2K_s48w8_SwinIR-M_x2.pth":
        (59019939, "ac6d4895f73aa1b3d563937e29dcedcfdff4d401280e248f23db3c6f68e8343b"),
    "001_classicalSR_DIV2K_s48w8_SwinIR-M_x3.pth":
        (59758497, "d835497f2332aae839ae19a033290ced8686fa2a795f76fc5153ec2c83003f75"),
    "001_classicalSR_DIV2K_s48w8_SwinIR-M_x4.pth":
        (59611499, "129dc773ba2d4c07f3eb0bb116fbe692011b7cc072d9ca12797cd3748198610a"),
    "001_classicalSR_DIV2K_s48w8_SwinIR-M_x8.pth":
        (60202999, "3c3ae9238a7125e52aab457df052aa8981adb2fb8e42b6d4112a96b3c19432d7"),
    "002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth":
        (17147989, "193b229909ca89cd8b55de9c9e7fce146ae759d59dfcd78d8feb9dd1d6fa0fd7"),
    "002_lightweightSR_DIV2K_s64w8_SwinIR-S_x3.pth":
        (17180437, "53af0cf0b15876752c1c2646a71444f739523b3d562e126d200521a817ab5d2c"),
    "002_lightweightSR_DIV2K_s64w8_SwinIR-S_x4.pth":
        (17225941, "09fad24e32ae62722e1a055efde9921328f4137981bab0a42a4a3a806306c58e"),
    "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x2_GAN.pth":
        (66974517, "f397408977a3e07eb06afb7238d453a12ef35ebab7328a54241f307860dbe342"),
    "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth":
        (67129861, "b9afb61e65e04eb7f8aba5095d070bbe9af28df76acd0c9405aeb33b814bcfc6"),
    "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth":
        (142473939, "99adfa91350a84c99e946c1eb3d8fce34bc28f57d807b09dc8fe40a316328c0a"),
    "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_PSNR.pth":
        (67129849, "1fd8fed99684bd271db55563e4906d36459cf535446820053f7a1081d4781dc5"),
    "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_PSNR.pth":
        (142473947, "450be6eac63a59959b55a83df6743444de9f018547f81d16f699b3680d366ad7"),
    "005_colorDN_DFWB_s128w8_SwinIR-M_noise15.pth":
        (122905743, "917cd972f7ba80786871add249ad43e4477ce2db59b4ad63e2fa446f7221d013"),
    "005_colorDN_DFWB_s128w8_SwinIR-M_noise25.pth":
        (122905743, "39e264322ba762682de5acee4705aaeda7077b947204b9ce1899519ebd540724"),
    "006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg10.pth":
        (102873665, "0005b707e0e6f75b4d13c7447e2f184858ddbdcec95aa7eb8c07e8afa1d26bd9"),
    "006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg20.pth":
        (102873665, "1b47fa32f358630e3de3430c91296535a0011b16f0518dacd5b847f123023d45"),
}


def _release() -> list[AuthorsModel]:
    """The 30 files of the release, in its order."""
    rows = []
    for s in (2, 3, 4, 8):
        rows.append(_row(f"classical-x{s}", f"001_classicalSR_DF2K_s64w8_SwinIR-M_x{s}.pth", None,
                         f"classical (bicubic) SR x{s}, SwinIR-M trained on DF2K: the paper's best"))
    for s in (2, 3, 4, 8):
        rows.append(_row(f"classical-div2k-x{s}", f"001_classicalSR_DIV2K_s48w8_SwinIR-M_x{s}.pth", None,
                         f"classical (bicubic) SR x{s}, SwinIR-M trained on DIV2K"))
    for s in (2, 3, 4):
        rows.append(_row(f"lightweight-x{s}", f"002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{s}.pth", None,
                         f"lightweight classical SR x{s}, SwinIR-S (0.9M parameters)"))
    real = "real-world SR (photos as people have them)"
    rows += [
        _row("real-x2", "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x2_GAN.pth", None, f"{real} x2, SwinIR-M, GAN"),
        _row("real-x4", "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth", None, f"{real} x4, SwinIR-M, GAN"),
        _row("real-x4-l", "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth", None,
             f"{real} x4, SwinIR-L, GAN"),
        _row("real-x4-psnr", "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_PSNR.pth", None,
             f"{real} x4, SwinIR-M, PSNR-trained (smoother, before the GAN stage)"),
        _row("real-x4-l-psnr", "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_PSNR.pth", None,
             f"{real} x4, SwinIR-L, PSNR-trained (smoother, before the GAN stage)"),
    ]
    for kind, prefix in (("gray", "004_grayDN"), ("color", "005_colorDN")):
        for sigma in (15, 25, 50):
            rows.append(_row(f"{kind}-dn-{sigma}", f"{prefix}_DFWB_s128w8_SwinIR-M_noise{sigma}.pth", sigma,
                             f"{kind} denoising at noise sigma {sigma}, SwinIR-M"))
    for kind, prefix in (("gray", "006_CAR"), ("color", "006_colorCAR")):
        for quality in (10, 20, 30, 40):
            rows.append(_row(f"{kind}-jpeg-{quality}", f"{prefix}_DFWB_s126w7_SwinIR-M_jpeg{quality}.pth", quality,
                             f"{kind} JPEG artifact reduction at quality {quality}, SwinIR-M"))
    return rows


MODELS: dict[str, AuthorsModel] = {m.name: m for m in _release()}


# --------------------------------------------------------------------------------------------------
# The paper's numbers (shared/PAPER_RESULTS.md): model name -> benchmark set -> metric key -> value
# --------------------------------------------------------------------------------------------------

_SR_SETS = ("Set5", "Set14", "B100", "Urban100", "Manga109")


def _sr(psnr: tuple[float, ...], ssim: tuple[float, ...] = ()) -> dict[str, dict[str, float]]:
    return {s: {"psnr_y": p, **({"ssim_y": ssim[i]} if ssim else {})} for i, (s, p) in enumerate(zip(_SR_SETS, psnr,
                                                                                                     strict=True))}


def _per_level(sets: Mapping[str, tuple[tuple[float, ...], ...]], keys: tuple[str, ...], prefix: str,
               levels: tuple[int, ...]) -> dict[str, dict[str, dict[str, float]]]:
    """``{set: (values at level 1, values at level 2, ...)}`` -> ``{model name: {set: {key: value}}}``."""
    return {f"{prefix}-{level}": {s: dict(zip(keys, values[i], strict=True)) for s, values in sets.items()}
            for i, level in enumerate(levels)}


PAPER_RESULTS: dict[str, dict[str, dict[str, float]]] = {
    "lightweight-x2": _sr((38.14, 33.86, 32.31, 32.76, 39.12), (0.9611, 0.9206, 0.9012, 0.9340, 0.9783)),
    "lightweight-x3": _sr((34.62, 30.54, 29.20, 28.66, 33.98), (0.9289, 0.8463, 0.8082, 0.8624, 0.9478)),
    "lightweight-x4": _sr((32.44, 28.77, 27.69, 26.47, 30.92), (0.8976, 0.7858, 0.7406, 0.7980, 0.9151)),
    "classical-div2k-x2": _sr((38.35, 34.14, 32.44, 33.40, 39.60)),
    "classical-div2k-x3": _sr((34.89, 30.77, 29.37, 29.29, 34.74)),
    "classical-div2k-x4": _sr((32.72, 28.94, 27.83, 27.07, 31.67)),
    "classical-x2": _sr((38.42, 34.46, 32.53, 33.81, 39.92)),
    "classical-x3": _sr((34.97, 30.93, 29.46, 29.75, 35.12)),
    "classical-x4": _sr((32.92, 29.09, 27.92, 27.45, 32.03)),
    **_per_level({"Set12": ((33.36,), (31.01,), (27.91,)), "BSD68": ((31.97,), (29.50,), (26.58,)),
                  "Urban100": ((33.70,), (31.30,), (27.98,))}, ("psnr",), "gray-dn", (15, 25, 50)),
    **_per_level({"CBSD68": ((34.42,), (31.78,), (28.56,)), "Kodak24": ((35.34,), (32.89,), (29.79,)),
                  "McMaster": ((35.61,), (33.20,), (30.22,)), "Urban100": ((35.13,), (32.90,), (29.82,))},
                 ("psnr",), "color-dn", (15, 25, 50)),
    **_per_level({"classic5": ((30.27, 0.8249, 29.95), (32.52, 0.8748, 31.99), (33.73, 0.8961, 33.03),
                               (34.52, 0.9082, 33.66)),
                  "LIVE1": ((29.86, 0.8287, 29.50), (32.25, 0.8909, 31.70), (33.69, 0.9174, 33.01),
                            (34.67, 0.9317, 33.88))}, ("psnr", "ssim", "psnrb"), "gray-jpeg", (10, 20, 30, 40)),
    **_per_level({"LIVE1": ((28.06, 27.76, 0.8089), (30.45, 29.97, 0.8741), (31.82, 31.24, 0.9018),
                            (32.75, 32.12, 0.9174))}, ("psnr", "psnrb", "ssim"), "color-jpeg", (10, 20, 30, 40)),
}


def paper_results(model: AuthorsModel,
                  table: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None) -> dict[str, dict[str, float]]:
    """The paper's numbers for ``model`` in ``table`` (default :data:`PAPER_RESULTS`); empty where it has none
    (the real-world models, judged by eye, and x8)."""
    table = PAPER_RESULTS if table is None else table
    return {s: dict(values) for s, values in table.get(model.name, {}).items()}


# --------------------------------------------------------------------------------------------------
# Looking models up
# --------------------------------------------------------------------------------------------------


def find_model(name: str) -> AuthorsModel | None:
    """The model a user typed: its short name, or its release file name with or without ``.pth``."""
    key = str(name).strip()
    if key in MODELS:
        return MODELS[key]
    return next((m for m in MODELS.values() if key in (m.file, m.stem)), None)


def close_names(name: str) -> list[str]:
    """Up to three model names that look like ``name`` (for "did you mean")."""
    return difflib.get_close_matches(str(name).strip().lower(), list(MODELS), n=3, cutoff=0.5)


def get_model(name: str) -> AuthorsModel:
    """:func:`find_model`, or a one-line error suggesting the closest names."""
    model = find_model(name)
    if model is not None:
        return model
    close = close_names(name)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise SwinIRError(f"unknown model {name!r}: {hint}swinir models lists the authors' models "
                      "(e.g. classical-x4, lightweight-x2, real-x4, color-dn-25, color-jpeg-10)")


def models_for_task(task: str) -> list[AuthorsModel]:
    """The models of a paper task (``color_dn``) or of a task family (``denoise``, ``sr``, ``photo``)."""
    if task in TASKS:
        return [m for m in MODELS.values() if m.task == task]
    family = family_of(task)  # a one-line error for unknown names
    return [m for m in MODELS.values() if m.family == family]


def recommended(family: Family, scale: int) -> list[AuthorsModel]:
    """The authors' models that give the paper's quality for a task family and scale: the DF2K SwinIR-M for
    bicubic SR, the SwinIR-M GAN for photos, and the colour models of every level for denoising and JPEG."""
    if family == "sr":
        names = [f"classical-x{scale}"]
    elif family == "photo":
        names = [f"real-x{scale}"]
    else:
        prefix = "color-dn" if family == "denoise" else "color-jpeg"
        names = [m.name for m in MODELS.values() if m.name.startswith(prefix + "-")]
    return [MODELS[n] for n in names if n in MODELS]
