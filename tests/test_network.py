"""The network's structure: published parameter counts, derived buffers, masks, attention paths."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import SHARED, shared_path
from swinir import PRESETS, ModelConfig, SwinIR
from swinir.checkpoints import count_parameters, reference_state_dict
from swinir.network import border_mask_patterns, relative_position_index, shift_attention_mask

# The paper's parameter counts (arXiv 2108.10257, as ../shared/PAPER_RESULTS.md quotes them), typed from the paper:
# SwinIR-S without its relative-position bias tables, in thousands; SwinIR-M x4 in millions.
PAPER_SWINIR_S_THOUSANDS = {"lightweight_sr_x2": 878, "lightweight_sr_x3": 886, "lightweight_sr_x4": 897}
PAPER_SWINIR_M_X4_MILLIONS = 11.9
# The reference implementation's parameter counts of the official configs, in the order of the table in
# ../shared/REFERENCE_BASELINES.md ("Parameter counts"), which the test reads them from.
REFERENCE_TABLE_ORDER = ("classical_sr_x2", "classical_sr_x3", "classical_sr_x4", "classical_sr_x8",
                         "lightweight_sr_x2", "lightweight_sr_x3", "lightweight_sr_x4", "real_sr_x4_m", "real_sr_x4_l",
                         "gray_dn", "color_dn", "gray_car", "color_car")
# state_dict key counts of the reference models, derived buffers included (REFERENCE_BASELINES.md).
REFERENCE_KEYS = {"classical_sr_x2": 548, "classical_sr_x4": 550, "classical_sr_x8": 552, "lightweight_sr_x2": 366,
                  "real_sr_x4_m": 552, "real_sr_x4_l": 859, "gray_dn": 544, "color_car": 544}
ORACLE_CASES = sorted(p.name for p in (SHARED / "oracle").glob("*.json")) or ["<no oracle>"]


def without_bias_tables(model: torch.nn.Module) -> int:
    """Parameters, the relative-position bias tables left out (as the paper counts SwinIR-S)."""
    return sum(p.numel() for name, p in model.named_parameters() if "relative_position_bias_table" not in name)


@pytest.mark.parametrize("name", sorted(PAPER_SWINIR_S_THOUSANDS))
def test_swinir_s_has_the_papers_parameter_count(name: str) -> None:
    model = PRESETS[name].config.build()
    assert round(without_bias_tables(model) / 1000) == PAPER_SWINIR_S_THOUSANDS[name]


def test_swinir_m_x4_has_the_papers_parameter_count() -> None:
    assert round(count_parameters(PRESETS["classical_sr_x4"].config.build()) / 1e6, 1) == PAPER_SWINIR_M_X4_MILLIONS


def reference_parameter_counts() -> dict[str, int]:
    """The ``params`` column of REFERENCE_BASELINES.md's parameter table, by preset (REFERENCE_TABLE_ORDER)."""
    text = shared_path("REFERENCE_BASELINES.md").read_text()
    table = text[text.index("## Parameter counts"):].split("\n## ")[0]
    cells = [line.split("|") for line in table.splitlines() if line.startswith("|")]
    rows = [row for row in cells if row[3].strip().replace(",", "").isdigit()]  # not the header, not the rule
    assert len(rows) == len(REFERENCE_TABLE_ORDER), "the table's rows changed: update REFERENCE_TABLE_ORDER"
    return {name: int(row[3].strip().replace(",", "")) for name, row in zip(REFERENCE_TABLE_ORDER, rows, strict=True)}


@pytest.mark.parametrize("name", REFERENCE_TABLE_ORDER)
def test_presets_count_what_the_reference_implementation_counts(name: str) -> None:
    """Each preset's network and its ``official_params`` against the reference's own count (not this code's)."""
    expected = reference_parameter_counts()[name]
    model = PRESETS[name].config.build()
    assert count_parameters(model) == expected == PRESETS[name].official_params
    if name in REFERENCE_KEYS:
        assert len(reference_state_dict(model)) == REFERENCE_KEYS[name]


@pytest.mark.parametrize("case", ORACLE_CASES)
def test_oracle_configs_count_what_the_reference_counted(case: str) -> None:
    """The oracle's small configs: parameter and state-dict key counts the reference implementation wrote down."""
    meta = json.loads(shared_path("oracle", case).read_text())
    model = ModelConfig.from_dict(meta["constructor_kwargs"]).build()
    assert count_parameters(model) == meta["parameter_count"]
    assert len(reference_state_dict(model)) == meta["state_dict_keys"]


def test_presets_outside_the_reference_table_state_their_networks_count() -> None:
    """real_sr_x2_m: the reference publishes no figure; its ``official_params`` is the count of its network."""
    for name in sorted(set(PRESETS) - set(REFERENCE_TABLE_ORDER)):
        assert count_parameters(PRESETS[name].config.build()) == PRESETS[name].official_params, name


def test_every_paper_task_has_a_preset() -> None:
    assert {PRESETS[name].task for name in REFERENCE_TABLE_ORDER} == {
        "classical_sr", "lightweight_sr", "real_sr", "gray_dn", "color_dn", "gray_car", "color_car"}


def test_relative_position_index_hand_case() -> None:
    # window 2: positions (0,0),(0,1),(1,0),(1,1); table side 3; index = (dy+1)*3 + (dx+1)
    expected = torch.tensor([[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
    assert torch.equal(relative_position_index(2), expected)


def test_shift_mask_hand_case() -> None:
    # 4x4 map, window 2, shift 1: window (0,0) is one region; the corner window mixes 4 regions.
    mask = shift_attention_mask(4, 4, 2, 1)
    assert mask.shape == (4, 4, 4)
    assert mask[0].abs().sum() == 0
    corner = mask[3]
    assert torch.equal(corner.diagonal(), torch.zeros(4))
    assert (corner - torch.diag(torch.diagonal(corner)) == -100).sum() == 12  # every off-diagonal pair crosses
    # bottom window: rows differ, columns do not -> pixels 0,1 vs 2,3
    assert torch.equal(mask[2], torch.tensor([[0, 0, -100, -100]] * 2 + [[-100, -100, 0, 0]] * 2).float())
    # the three border patterns equal the masks of a larger map's border windows
    big = shift_attention_mask(8 * 3, 8 * 4, 8, 4)  # 3 x 4 windows
    pats = border_mask_patterns(8, 4)
    assert torch.equal(big[2 * 4 + 1], pats[0]) and torch.equal(big[0 * 4 + 3], pats[1])
    assert torch.equal(big[11], pats[2]) and big[5].abs().sum() == 0


def tiny(**kw: object) -> SwinIR:
    args = dict(upscale=2, img_size=16, window_size=4, depths=(2,), embed_dim=8, num_heads=(2,), mlp_ratio=2.0,
                upsampler="pixelshuffledirect")
    args.update(kw)
    torch.manual_seed(0)
    model = SwinIR(**args).eval()
    with torch.no_grad():  # visible attention: large random tables
        for block in model.blocks():
            block.attn.relative_position_bias_table.normal_(0, 1)
    return model


@pytest.mark.parametrize("size", [(12, 20), (4, 4), (8, 28), (17, 9)])
def test_fused_attention_equals_reference_attention(size: tuple[int, int]) -> None:
    model = tiny().double()
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        fused = model(x)
        sdpa = model.set_attention("sdpa")(x)
        ref = model.set_attention("reference")(x)
    assert (fused - ref).abs().max() < 1e-12
    assert (sdpa - ref).abs().max() < 1e-12


def test_fused_attention_gradients_equal_reference() -> None:
    model = tiny().double().train()
    model.eval()  # no drop path, deterministic
    x = torch.rand(1, 3, 12, 16, dtype=torch.float64)
    grads = []
    for attention in ("fused", "sdpa", "reference"):
        model.zero_grad()
        model.set_attention(attention)(x).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[2], atol=1e-12)
    assert torch.allclose(grads[1], grads[2], atol=1e-12)


def test_bias_cache_follows_parameter_updates() -> None:
    model = tiny()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        a = model(x)
        for block in model.blocks():
            block.attn.relative_position_bias_table.add_(1.0)  # shifts all logits equally: output unchanged
        b = model(x)
        model.blocks()[0].attn.relative_position_bias_table[0, 0] += 5.0
        c = model(x)
        fresh = tiny()
        fresh.load_state_dict(model.state_dict())
        expected = fresh(x)  # a new model has no cache: what c must be
    assert torch.allclose(a, b, atol=1e-5)
    assert (a - c).abs().max() > 1e-6
    assert torch.allclose(c, expected, rtol=0, atol=1e-7)


def test_small_img_size_shrinks_the_window_as_reference() -> None:
    model = SwinIR(upscale=1, img_size=4, window_size=8, depths=(2,), embed_dim=8, num_heads=(2,))
    assert [b.window_size for b in model.blocks()] == [4, 4]
    assert [b.shift_size for b in model.blocks()] == [0, 0]


def test_derived_buffers_load_into_any_img_size_and_are_checked() -> None:
    src = tiny(img_size=16)
    state = reference_state_dict(src)
    assert any(k.endswith("attn_mask") for k in state)
    dst = tiny(img_size=64)
    dst.load_state_dict(state, strict=True)
    bad = dict(state)
    key = next(k for k in state if k.endswith("attn_mask"))
    bad[key] = torch.zeros_like(state[key])
    with pytest.raises(RuntimeError, match="shift mask"):
        dst.load_state_dict(bad, strict=True)
    params_only = {k: v for k, v in state.items() if not k.endswith(("attn_mask", "relative_position_index"))}
    dst.load_state_dict(params_only, strict=True)  # never required


def test_bad_constructor_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="upsampler"):
        SwinIR(upsampler="bilinear")
    with pytest.raises(ValueError, match="divisible"):
        SwinIR(upscale=1, embed_dim=10, num_heads=(3,), depths=(1,))
    with pytest.raises(ValueError, match="attention must be one of fused, sdpa, reference, got 'flash'"):
        SwinIR(upscale=1, attention="flash")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attention must be one of"):
        tiny().set_attention("flash")  # type: ignore[arg-type]
