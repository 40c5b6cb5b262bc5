from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from hpo_core.data import (
    LABEL_HORIZON,
    BinaryData,
    TabularConfig,
    check_table,
    chronological_split,
    generate_binary_dataset,
    load_binary_data,
    load_table,
    select_features,
    write_table,
)
from hpo_core.data.tabular import files
from hpo_core.errors import DataError

TIERS = {
    "a50": ["ret_*", "vol_20", "volume_z", "alpha_0[0-4]?", "alpha_050"],
    "a100": ["ret_*", "vol_20", "volume_z", "alpha_*"],
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_binary_dataset(seed=0, with_regime=True)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate_binary_dataset(2000, n_alpha=12, n_informative=6, seed=1)


@pytest.fixture
def small_path(small: pd.DataFrame, tmp_path: Path) -> Path:
    return write_table(small, tmp_path / "small.parquet")


def _config(path: Path, **overrides: Any) -> TabularConfig:
    return TabularConfig(path=str(path), **{"window": 8, "gap": LABEL_HORIZON, **overrides})


# --------------------------------------------------------------------------- generator


def test_generator_is_deterministic_imbalanced_and_hourly(frame: pd.DataFrame) -> None:
    again = generate_binary_dataset(seed=0, with_regime=True)
    pd.testing.assert_frame_equal(frame, again)
    assert not frame.drop(columns="time").equals(
        generate_binary_dataset(seed=1, with_regime=True).drop(columns="time")
    )
    assert len(frame) == 20000
    assert frame.columns[:6].tolist() == ["time", "ret_1", "ret_5", "ret_20", "vol_20", "volume_z"]
    assert frame.columns[6] == "alpha_001" and frame.columns[-3] == "alpha_100"
    assert frame.columns[-1] == "label" and frame["label"].dtype == np.int64
    assert frame["time"].iloc[0] == pd.Timestamp("2020-01-01")
    assert (frame["time"].diff().dropna() == pd.Timedelta(hours=1)).all()
    assert not frame.isna().any().any()
    for seed in range(3):
        rate = generate_binary_dataset(5000, seed=seed)["label"].mean()
        assert 0.05 <= rate <= 0.10


def test_regimes_shift_the_base_rate(frame: pd.DataFrame) -> None:
    by_regime = frame.groupby("regime")["label"].mean()
    assert len(by_regime) == 3
    assert by_regime.max() - by_regime.min() > 0.05  # e.g. 3% in a calm regime, 14% in another
    single = generate_binary_dataset(3000, n_regimes=1, with_regime=True)
    assert set(single["regime"]) == {0}


def test_signal_is_learnable_on_a_chronological_split(frame: pd.DataFrame) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    informative = [f"alpha_{j:03d}" for j in range(1, 31)]
    x, y = frame[informative].to_numpy(), frame["label"].to_numpy()
    x = (x - x[:14000].mean(axis=0)) / x[:14000].std(axis=0)
    model = LogisticRegression(max_iter=1000).fit(x[:14000], y[:14000])
    val = slice(14000 + LABEL_HORIZON, 17000)
    auc = roc_auc_score(y[val], model.predict_proba(x[val])[:, 1])
    assert 0.6 < auc < 0.95


def test_generator_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError, match="n_informative"):
        generate_binary_dataset(100, n_alpha=10, n_informative=20)
    with pytest.raises(ValueError, match="positive_rate"):
        generate_binary_dataset(100, positive_rate=1.5)


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip(small: pd.DataFrame, tmp_path: Path, suffix: str) -> None:
    path = write_table(small, tmp_path / "nested" / f"table{suffix}")
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == [path.name]
    back = load_table(path)
    back["time"] = pd.to_datetime(back["time"]).astype(small["time"].dtype)
    pd.testing.assert_frame_equal(back, small, check_exact=False, rtol=1e-12)


def test_load_table_errors_name_data_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^data.path: .*missing.parquet does not exist"):
        load_table(tmp_path / "missing.parquet")
    with pytest.raises(DataError, match=r"^data.path: .*has suffix '.xlsx'; use a .parquet or"):
        load_table(tmp_path / "table.xlsx")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"^data.path: cannot read .*garbage.parquet as Parquet"):
        load_table(garbage)
    with pytest.raises(DataError, match=r"^data\.path: "):
        load_binary_data(_config(tmp_path / "missing.csv"))


# --------------------------------------------------------------------------- config


def test_from_params_reads_data_settings_and_ignores_the_rest() -> None:
    params = {
        "data_path": "/data/buy.parquet",
        "tiers": TIERS,
        "tier": "a50",
        "window": 32,
        "gap": 12,
        "max_rows": 5000,
        "lr": 1e-3,
    }
    config = TabularConfig.from_params(params, {"data_path": "data", "tiers": "data"})
    assert config.path == "/data/buy.parquet" and config.window == 32 and config.tier == "a50"
    assert config.tiers == TIERS and config.tiers is not TIERS
    assert config.val_fraction == 0.15 and config.label_column == "label"
    assert config == TabularConfig.from_params(params) and hash(config) == hash(
        TabularConfig.from_params(params)
    )
    assert TabularConfig.from_params({"path": "x.csv"}).path == "x.csv"


def test_problems_name_the_spec_section_and_the_fix() -> None:
    where = {"data_path": "data", "tiers": "data", "tier": "data"}
    bad = {
        "data_path": "x.parquet",
        "tiers": TIERS,
        "tier": "a70",
        "window": 0,
        "val_fraction": 0.5,
        "test_fraction": 0.45,
        "gap": -1,
    }
    found = dict(TabularConfig.problems(bad, where))
    assert found == {
        "data.tier": "'a70' is not a tier; use one of: a50, a100",
        "fixed.window": "`window >= 1` must hold, but got (window=0)",
        "fixed.test_fraction": "`val_fraction + test_fraction < 0.9` must hold, but got "
        "(val_fraction=0.5, test_fraction=0.45); leave 10% or more to train",
        "fixed.gap": "`gap >= 0` must hold, but got (gap=-1)",
    }
    assert TabularConfig.problems({}, where) == [
        ("data.data_path", "required, got None; set the .parquet or .csv file to use")
    ]
    assert TabularConfig.problems({"path": "x.csv", "val_fraction": 0}) == [
        ("fixed.val_fraction", "`0 < val_fraction < 1` must hold, but got (val_fraction=0)")
    ]
    with pytest.raises(DataError, match=r"^data.tier: 'a70' is not a tier"):
        TabularConfig.from_params(bad, where)
    with pytest.raises(DataError, match=r"^data.window: `window >= 1`"):
        TabularConfig(path="x.csv", window=0)


# --------------------------------------------------------------------------- features


def test_tiers_select_names_and_patterns_in_file_order() -> None:
    columns = ["time", "alpha_002", "ret_1", "alpha_001", "alpha_051", "ret_5", "label", "x"]
    config = TabularConfig(path="t.csv", tiers={"t": ["x", "alpha_0[0-4]?", "ret_*"]}, tier="t")
    assert select_features(columns, config) == ["alpha_002", "ret_1", "alpha_001", "ret_5", "x"]
    everything = TabularConfig(path="t.csv", tiers={"all": ["*"]}, tier="all")
    assert select_features(columns, everything) == [
        c for c in columns if c not in {"time", "label"}
    ]
    assert select_features(columns, TabularConfig(path="t.csv")) == select_features(
        columns, everything
    )


def test_tier_errors_name_the_tier(small_path: Path) -> None:
    columns = load_table(small_path).columns.tolist()
    nothing = _config(small_path, tiers={"a50": ["ret_*", "beta_*"]}, tier="a50")
    with pytest.raises(
        DataError,
        match=r"^data.tiers.a50: pattern 'beta_\*' matches no column of .*small.parquet; use one of: ret_1, ret_5",
    ):
        select_features(columns, nothing)
    with pytest.raises(
        DataError,
        match=r"^data.tiers.a50: column 'ret_7' not in .*small.parquet; use one of: ret_1, ",
    ):
        select_features(columns, _config(small_path, tiers={"a50": ["ret_7"]}, tier="a50"))
    with pytest.raises(DataError, match=r"^data.tiers.a50: 'label' is the label or time column"):
        select_features(columns, _config(small_path, tiers={"a50": ["label"]}, tier="a50"))
    with pytest.raises(DataError, match=r"^data.tiers.a50: pattern 'beta_\*'"):
        load_binary_data(nothing)


def test_missing_label_column_names_the_field(small_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"^data.label_column: column 'y' not in .*small.parquet; use one of: time, ret_1, ret_5",
    ):
        load_binary_data(_config(small_path, label_column="y"))
    with pytest.raises(DataError, match=r"^data.time_column: column 'ts' not in"):
        load_binary_data(_config(small_path, time_column="ts"))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            [0, 1, 2],
            r"^data.label_column: column 'label' in .* has values other than 0 and 1 \(e.g. 2\)",
        ),
        ([0.0, 1.0, np.nan], r"^data.label_column: .* has 1 missing label\(s\)"),
        (
            ["no", "yes", "no"],
            r"^data.label_column: .* has values other than 0 and 1 \(e.g. 'no', 'yes'",
        ),
    ],
)
def test_labels_must_be_binary(
    small: pd.DataFrame, tmp_path: Path, labels: list[object], message: str
) -> None:
    bad = small.copy()
    bad["label"] = bad["label"].astype(object)
    bad.loc[: len(labels) - 1, "label"] = labels
    if isinstance(labels[0], str):
        bad["label"] = bad["label"].astype(str)
    with pytest.raises(DataError, match=message):
        load_binary_data(_config(write_table(bad, tmp_path / "bad.parquet")))


def test_bool_labels_are_accepted(small: pd.DataFrame, tmp_path: Path) -> None:
    flagged = small.assign(label=small["label"].astype(bool))
    data = load_binary_data(_config(write_table(flagged, tmp_path / "bool.parquet")))
    assert data.labels.dtype == np.int64 and data.labels.sum() == small["label"].sum()


def test_time_column_must_be_unique_and_parseable(small: pd.DataFrame, tmp_path: Path) -> None:
    twice = small.copy()
    twice.loc[5, "time"] = twice.loc[4, "time"]
    with pytest.raises(
        DataError,
        match=r"^data.time_column: column 'time' in .* has 1 repeated time\(s\) \(first 2020-01-01T04:00",
    ):
        load_binary_data(_config(write_table(twice, tmp_path / "twice.parquet")))
    words = small.assign(time=[f"hour {i}" for i in range(len(small))])
    with pytest.raises(DataError, match=r"^data.time_column: .* cannot be parsed as datetimes"):
        load_binary_data(_config(write_table(words, tmp_path / "words.csv")))
    numeric = small.assign(time=np.arange(len(small))[::-1] * 60)  # integer times, reversed
    data = load_binary_data(_config(write_table(numeric, tmp_path / "numeric.csv")))
    assert (np.diff(data.times) > 0).all()
    assert data.labels.tolist() == small["label"].tolist()[::-1]


# --------------------------------------------------------------------------- splits and leaks


def test_chronological_split_sizes_order_and_gap() -> None:
    train, val, test = chronological_split(
        1000, window=16, val_fraction=0.15, test_fraction=0.2, gap=12
    )
    usable = 1000 - 15 - 24
    assert (len(val), len(test)) == (round(usable * 0.15), round(usable * 0.2))
    assert len(train) + len(val) + len(test) == usable
    assert train[0] == 15 and test[-1] == 999  # the first window-1 rows are history only
    assert val[0] - train[-1] == 13 and test[0] - val[-1] == 13  # 12 embargo rows in between
    for part in (train, val, test):
        assert (np.diff(part) == 1).all()
    with pytest.raises(DataError, match=r"^data.path: 40 rows leave the val split empty"):
        chronological_split(40, window=16, val_fraction=0.01, test_fraction=0.1, gap=12)


@pytest.fixture
def row_data(small: pd.DataFrame, tmp_path: Path) -> tuple[BinaryData, int]:
    """Data with a ``row`` feature holding each row's time position, from a shuffled file."""
    table = small.assign(row=np.arange(len(small), dtype=np.float64))
    shuffled = table.sample(frac=1.0, random_state=0)
    path = write_table(shuffled, tmp_path / "shuffled.parquet")
    data = load_binary_data(_config(path, window=10, gap=5))
    return data, data.feature_names.index("row")


def _rows_in_windows(data: BinaryData, column: int, idx: np.ndarray) -> np.ndarray:
    standardised = data.windows(idx)[..., column].double().numpy()
    return np.asarray(np.rint(standardised * data.std[column] + data.mean[column]), dtype=np.int64)


def test_windows_hold_only_the_past_and_present(row_data: tuple[BinaryData, int]) -> None:
    data, column = row_data
    assert data.train_idx[-1] < data.val_idx[0] and data.val_idx[-1] < data.test_idx[0]
    assert data.val_idx[0] - data.train_idx[-1] == 6 and data.test_idx[0] - data.val_idx[-1] == 6
    every = np.concatenate([data.train_idx, data.val_idx, data.test_idx])
    rows = _rows_in_windows(data, column, every)
    assert rows.shape == (len(every), data.window)
    expected = every[:, None] + np.arange(-data.window + 1, 1)[None, :]
    assert np.array_equal(rows, expected)  # oldest first, own row last, nothing after it
    assert (data.times[rows] <= data.times[every][:, None]).all()
    train_rows = _rows_in_windows(data, column, data.train_idx)
    assert train_rows.max() < data.val_idx[0]
    val_rows = _rows_in_windows(data, column, data.val_idx)
    assert val_rows.max() < data.test_idx[0]
    with pytest.raises(ValueError, match=r"sample rows must be in 9\.\.1999"):
        data.windows(np.array([3]))


def test_standardisation_uses_train_rows_only(small: pd.DataFrame, tmp_path: Path) -> None:
    table = small.copy()
    table.loc[::7, "alpha_003"] = np.nan
    base = load_binary_data(_config(write_table(table, tmp_path / "a.parquet")))
    last_train = int(base.train_idx[-1])
    changed = table.copy()
    later = changed.index > last_train  # the file is in time order
    features = base.feature_names
    changed.loc[later, features] = changed.loc[later, features] * 100.0 + 7.0
    other = load_binary_data(_config(write_table(changed, tmp_path / "b.parquet")))
    seen = slice(0, last_train + 1)
    assert np.array_equal(base.features[seen], other.features[seen])
    assert np.array_equal(base.mean, other.mean) and np.array_equal(base.std, other.std)
    assert not np.array_equal(base.features[base.val_idx], other.features[base.val_idx])
    train = base.features[seen].astype(np.float64)
    assert np.allclose(train.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(train.std(axis=0), 1.0, atol=1e-4)
    j = features.index("alpha_003")
    assert base.fill[j] == pytest.approx(np.nanmedian(table["alpha_003"].to_numpy()[seen]))
    assert not np.isnan(base.features).any()


def test_max_rows_keeps_the_earliest_rows(small_path: Path) -> None:
    data = load_binary_data(_config(small_path, max_rows=500))
    assert data.n_rows == 500 and data.times[-1] == np.datetime64("2020-01-21T19:00")


# --------------------------------------------------------------------------- batches


def test_batches_cover_train_once_and_keep_val_in_order(small_path: Path) -> None:
    tiers = {"short": ["ret_*", "alpha_00?"]}
    data = load_binary_data(_config(small_path, tiers=tiers, tier="short"))
    assert data.n_classes == 2 and data.n_features == 3 + 9
    batches = data.train_batches(64, torch.Generator().manual_seed(0))
    x, y = batches[0]
    assert x.shape == (64, 8, data.n_features) and x.dtype == torch.float32
    assert y.dtype == torch.float32
    labels = torch.cat([b[1] for b in batches])
    assert len(labels) == len(data.train_idx)
    assert labels.sum().item() == data.labels[data.train_idx].sum()
    again = data.train_batches(64, torch.Generator().manual_seed(0))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    val = data.val_batches(100)
    assert torch.equal(torch.cat([b[0] for b in val]), data.windows(data.val_idx))
    test_labels = torch.cat([b[1] for b in data.test_batches(100)]).numpy()
    assert np.array_equal(test_labels, data.labels[data.test_idx].astype(np.float32))
    n_pos = data.labels[data.train_idx].sum()
    assert data.pos_weight == pytest.approx((len(data.train_idx) - n_pos) / n_pos)


def test_balanced_sampling_is_about_half_positive(small_path: Path) -> None:
    data = load_binary_data(_config(small_path))
    assert data.positive_rate("train") < 0.15
    batches = data.train_batches(128, torch.Generator().manual_seed(1), sampling="balanced")
    labels = torch.cat([b[1] for b in batches])
    assert len(labels) == len(data.train_idx)
    assert 0.45 < labels.mean().item() < 0.55
    with pytest.raises(ValueError, match="sampling: 'smote' is not one of none, balanced"):
        data.train_batches(128, torch.Generator(), sampling="smote")


# --------------------------------------------------------------------------- cache and checks


def test_cache_returns_the_same_data_until_the_file_changes(
    small: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_table(small, tmp_path / "cached.parquet")
    config = _config(path)
    first = load_binary_data(config)
    assert load_binary_data(_config(path)) is first  # an equal config is a hit too
    with monkeypatch.context() as patch:
        patch.setattr(files, "load_table", lambda path: pytest.fail("read the file again"))
        assert load_binary_data(_config(path, window=4)).window == 4  # same file, new window
    flipped = small.assign(label=1 - small["label"])
    write_table(flipped, path)
    second = load_binary_data(config)
    assert second is not first
    assert np.array_equal(second.labels, 1 - first.labels)


def test_check_table_summarises_rows_tiers_and_positive_rates(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = write_table(frame.drop(columns="regime"), tmp_path / "buy.parquet")
    status, message, details = check_table(_config(path, tiers=TIERS, tier="a100"))
    assert status == "pass"
    assert message.startswith(
        f"20000 rows from {path}, 105 features in tier a100 (55 in a50), 7.0% positive (train "
    )
    assert details["tier_sizes"] == {"a50": 55, "a100": 105}
    assert set(details["positive_rate"]) == {"all", "train", "val", "test"}
    quiet = frame.drop(columns="regime").assign(label=0)
    quiet.loc[:100, "label"] = 1
    path = write_table(quiet, tmp_path / "quiet.parquet")
    status, message, _ = check_table(_config(path))
    assert status == "fail"  # no trial could be scored
    assert message.startswith("the val split of ") and "has no positive labels" in message


def test_importing_the_module_does_not_import_torch() -> None:
    code = (
        "import sys, hpo_core.data.tabular.check, hpo_core.data.tabular.synthetic; "
        "sys.exit('torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0
