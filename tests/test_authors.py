"""The registry of the authors' release: its 30 files, their public records, presets, names and paper numbers.

Checked against facts written down independently of the code: the release's file names (issue 26), the public
sizes and SHA-256 (issue 26's table), the numbers of ``shared/PAPER_RESULTS.md``, and the parameter counts of the
presets (``tests/test_network.py``) through the files' sizes.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from swinir import SwinIRError
from swinir.authors import MODELS, PAPER_RESULTS, RELEASE_FILE, estimated_size, get_model, models_for_task
from swinir.bundled import bundled_model
from swinir.catalog import pull_selection
from swinir.cli import main
from swinir.hub import paper_quality_hint
from swinir.presets import PRESETS
from swinir.tasks import get_task

RELEASE = (
    [f"001_classicalSR_DF2K_s64w8_SwinIR-M_x{s}.pth" for s in (2, 3, 4, 8)]
    + [f"001_classicalSR_DIV2K_s48w8_SwinIR-M_x{s}.pth" for s in (2, 3, 4, 8)]
    + [f"002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{s}.pth" for s in (2, 3, 4)]
    + ["003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x2_GAN.pth", "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth",
       "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth", "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_PSNR.pth",
       "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_PSNR.pth"]
    + [f"004_grayDN_DFWB_s128w8_SwinIR-M_noise{n}.pth" for n in (15, 25, 50)]
    + [f"005_colorDN_DFWB_s128w8_SwinIR-M_noise{n}.pth" for n in (15, 25, 50)]
    + [f"006_CAR_DFWB_s126w7_SwinIR-M_jpeg{q}.pth" for q in (10, 20, 30, 40)]
    + [f"006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg{q}.pth" for q in (10, 20, 30, 40)]
)
# Issue 26's table of public records (first and last rows, and the two of equal size), copied by hand.
PUBLIC = {
    "001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth":
        (67277475, "2032ebf8f401dd3ce2fae5f3852117cb72101ec6ed8358faa64c2a3fa09ed4ac"),
    "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth":
        (142473939, "99adfa91350a84c99e946c1eb3d8fce34bc28f57d807b09dc8fe40a316328c0a"),
    "005_colorDN_DFWB_s128w8_SwinIR-M_noise25.pth":
        (122905743, "39e264322ba762682de5acee4705aaeda7077b947204b9ce1899519ebd540724"),
    "006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg20.pth":
        (102873665, "1b47fa32f358630e3de3430c91296535a0011b16f0518dacd5b847f123023d45"),
}


def test_the_registry_is_the_release() -> None:
    assert sorted(m.file for m in MODELS.values()) == sorted(RELEASE) and len(MODELS) == 30
    assert len({m.name for m in MODELS.values()}) == 30 and all(name == m.name for name, m in MODELS.items())
    for m in MODELS.values():
        assert RELEASE_FILE.fullmatch(m.file), m.file
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", m.name), m.name  # typeable: lowercase words and dashes
        assert m.url() == "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/" + m.file


def test_public_records() -> None:
    with_record = [m for m in MODELS.values() if m.sha256]
    assert len(with_record) == 20  # the ten others have none
    for m in with_record:
        assert re.fullmatch(r"[0-9a-f]{64}", m.sha256) and m.size > 1_000_000, m.name
    for file, record in PUBLIC.items():
        model = next(m for m in MODELS.values() if m.file == file)
        assert (model.size, model.sha256) == record
    assert all(m.size is None for m in MODELS.values() if m.file.startswith(("004_", "006_CAR_")))


def test_every_file_builds_its_preset_and_the_file_name_agrees() -> None:
    for m in MODELS.values():
        assert m.preset is PRESETS[m.preset.name], m.name
        match = re.search(r"_s(\d+)w(\d+)_SwinIR-([SML])_(?:x(\d)|noise(\d+)|jpeg(\d+))", m.file)
        patch, window, size, scale, sigma, quality = match.groups()
        assert (m.config.img_size, m.config.window_size) == (int(patch), int(window)), m.name
        assert m.scale == int(scale or 1) and m.level == (int(sigma or quality) if sigma or quality else None)
        assert m.config.embed_dim == {"S": 60, "M": 180, "L": 240}[size], m.name
        assert m.config.in_chans == (1 if m.file.startswith(("004_", "006_CAR_")) else 3), m.name
        spec = get_task(m.task)
        assert spec.level == ("sigma" if sigma else "quality" if quality else None), m.name


def test_the_presets_explain_every_public_size() -> None:
    """float32 parameters (the presets' published counts) plus the reference's buffers make the file: within 1%
    for all 20 public records, so every preset has the released file's shape (SwinIR-L is 2x the M size)."""
    for m in MODELS.values():
        if m.size is not None:
            assert abs(estimated_size(m) - m.size) / m.size < 0.01, m.name


def test_paper_numbers() -> None:
    assert MODELS["classical-x4"].paper["Set5"] == {"psnr_y": 32.92}
    assert MODELS["classical-div2k-x3"].paper["Manga109"] == {"psnr_y": 34.74}
    assert MODELS["lightweight-x2"].paper["Manga109"] == {"psnr_y": 39.12, "ssim_y": 0.9783}
    assert MODELS["gray-dn-50"].paper == {"Set12": {"psnr": 27.91}, "BSD68": {"psnr": 26.58},
                                          "Urban100": {"psnr": 27.98}}
    assert MODELS["color-dn-25"].paper["McMaster"] == {"psnr": 33.20}
    assert MODELS["gray-jpeg-30"].paper["LIVE1"] == {"psnr": 33.69, "ssim": 0.9174, "psnrb": 33.01}
    assert MODELS["color-jpeg-40"].paper == {"LIVE1": {"psnr": 32.75, "psnrb": 32.12, "ssim": 0.9174}}
    assert MODELS["real-x4"].paper == {} and MODELS["classical-x8"].paper == {}
    assert set(PAPER_RESULTS) <= set(MODELS)
    for name, sets in PAPER_RESULTS.items():  # keys are the metrics swinir eval reports for the task
        keys = set(get_task(MODELS[name].task).metric_keys)
        assert all(set(values) <= keys for values in sets.values()), name


def test_lookup_selection_and_suggestions() -> None:
    assert get_model("001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth") is MODELS["classical-x2"]
    assert get_model("006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg10") is MODELS["color-jpeg-10"]
    with pytest.raises(SwinIRError, match="did you mean color-dn-25"):
        get_model("colour-dn-25")
    assert len(models_for_task("denoise")) == 6 and len(models_for_task("gray_car")) == 4
    assert len(models_for_task("photo")) == 5
    args = argparse.Namespace(names=["real-x4", "classical-x2"], task="sr", all=False)
    chosen = [m.name for m in pull_selection(args)]
    assert chosen[:2] == ["real-x4", "classical-x2"] and len(chosen) == 12  # 11 SR models, named once each
    assert len(pull_selection(argparse.Namespace(names=[], task=None, all=True))) == 30
    with pytest.raises(SwinIRError, match="--all or --task"):
        pull_selection(argparse.Namespace(names=[], task=None, all=False))


def test_models_lists_bundled_and_authors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SWINIR_HOME", str(tmp_path))
    assert main(["models", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    authors = [e for e in entries if e["source"] == "authors"]
    assert len(authors) == 30 and {e["source"] for e in entries} == {"bundled", "authors"}
    for e in entries:
        assert {"name", "source", "file", "url", "size", "sha256", "downloaded"} <= set(e)
    assert sum(e["sha256"] is None for e in authors) == 10 and not any(e["downloaded"] for e in authors)
    bundled = next(e for e in entries if e["source"] == "bundled")
    assert bundled["downloaded"] and bundled["size"] == Path(bundled["path"]).stat().st_size
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"classical-x4 +classical_sr x4 +67\.9 MB +11\.9M +no +public +Set5 32\.92", out)
    assert re.search(r"gray-dn-25 +gray_dn sigma 25 +about 123 MB .* first download\*", out)


def test_hint_after_a_restore_with_a_bundled_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SWINIR_HOME", str(tmp_path / "home"))
    assert paper_quality_hint("sr", 4) == ("the paper's quality for sr x4: --model classical-x4 (the authors' SwinIR, "
                                           "67.9 MB to download)")
    assert "color-dn-15, color-dn-25 or color-dn-50" in paper_quality_hint("denoise", 1)
    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]) == 0
    default = bundled_model()  # the photo model (x4 GAN advice) where shipped, else the bicubic x4
    want = {"photo": "--model real-x4 (the authors' SwinIR, 67.1 MB to download)",
            "sr": "--model classical-x4 (the authors' SwinIR, 67.9 MB to download)"}[default.task]
    assert want in capsys.readouterr().out
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "q"), "--quiet"]) == 0
    assert "--model" not in capsys.readouterr().out
