from __future__ import annotations

from pathlib import Path

import pytest

from mlrig.config import load_settings
from mlrig.errors import ConfigError


def test_defaults_use_embedded_stores_under_home(tmp_path: Path) -> None:
    s = load_settings()
    assert s.home_dir == (tmp_path / ".mlrig").resolve()
    assert s.tracking_uri == f"sqlite:///{tmp_path.resolve() / '.mlrig' / 'mlflow.db'}"
    assert s.registry_uri == s.tracking_uri
    assert s.served_model == "wine-quality@champion"
    assert s.serving.host == "127.0.0.1"


def test_precedence_overrides_then_env_then_file_then_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mlrig.toml").write_text(
        '[data]\nsource = "x.csv"\nseparator = ";"\n[train]\nalpha = 0.1\nl1_ratio = 0.2\nseed = 7\n'
    )
    monkeypatch.setenv("MLRIG_TRAIN__L1_RATIO", "0.3")
    s = load_settings(overrides={"train": {"alpha": 0.9, "seed": None}})
    assert s.train.alpha == 0.9  # override beats file
    assert s.train.l1_ratio == 0.3  # env beats file
    assert s.train.seed == 7  # None override does not mask the file
    assert s.data.separator == ";"
    assert s.data.target == "quality"  # default


def test_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*nope.toml: not found"):
        load_settings(tmp_path / "nope.toml")


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nalpha = ")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        load_settings(bad)


def test_unknown_or_invalid_key_names_file_and_field(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nalpah = 0.3\nl1_ratio = 2\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert "c.toml" in str(err.value)
    assert "train.alpah" in str(err.value)
    assert "train.l1_ratio" in str(err.value)


def test_mlflow_env_vars_win_over_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tracking]\nuri = "sqlite:///from-file.db"\n')
    assert load_settings(cfg).tracking_uri == "sqlite:///from-file.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:///reg.db")
    s = load_settings(cfg)
    assert s.tracking_uri == "http://127.0.0.1:5999"
    assert s.registry_uri == "sqlite:///reg.db"


def test_short_env_names_and_secrets_stay_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLRIG_PREDICTIONS_URL", "postgresql+psycopg://u:pw@127.0.0.1/db")
    monkeypatch.setenv("MLRIG_ADMIN_TOKEN", "s3cret")
    s = load_settings()
    assert s.predictions_url == "postgresql+psycopg://u:pw@127.0.0.1/db"
    assert s.serving.admin_token is not None
    assert s.serving.admin_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
