"""The environment settings: SWIFTLAB_HOME is the root of everything swiftlab writes by default,
SWIFTLAB_STORE moves the store alone, SWIFTLAB_QUICK takes 1 or 0 and refuses anything else."""

from pathlib import Path

import pytest

from swiftlab import SkipSet, SwiftlabError
from swiftlab.support import settings
from swiftlab.models.registry import models_home
from swiftlab.search.store import SkipSetStore


@pytest.mark.parametrize("value, quick", [("1", True), ("true", True), ("0", False), ("", False), ("no", False)])
def test_quick_takes_one_or_zero(monkeypatch, value, quick):
    monkeypatch.setenv("SWIFTLAB_QUICK", value)
    assert settings.quick() is quick


def test_quick_unset_is_full_size(monkeypatch):
    monkeypatch.delenv("SWIFTLAB_QUICK", raising=False)
    assert settings.quick() is False


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_an_unknown_quick_value_is_an_error_not_full_size(monkeypatch, value):
    monkeypatch.setenv("SWIFTLAB_QUICK", value)
    with pytest.raises(SwiftlabError, match=f"SWIFTLAB_QUICK='{value}' is neither 1 .* nor 0"):
        settings.quick()


def test_home_is_the_root_of_the_models_and_the_store(monkeypatch, tmp_path):
    monkeypatch.setenv("SWIFTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SWIFTLAB_STORE", raising=False)
    assert models_home() == tmp_path / "home" / "models"
    store = SkipSetStore()
    assert store.path == tmp_path / "home" / "skip_layers.json"
    store.put("lab", "story", SkipSet.uniform(16, 0.45))  # written there, nowhere else
    assert (tmp_path / "home" / "skip_layers.json").exists()


def test_store_moves_the_store_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("SWIFTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SWIFTLAB_STORE", str(tmp_path / "elsewhere.json"))
    assert SkipSetStore().path == tmp_path / "elsewhere.json"
    assert models_home() == tmp_path / "home" / "models"


def test_default_home(monkeypatch):
    monkeypatch.delenv("SWIFTLAB_HOME", raising=False)
    assert settings.home() == Path.home() / ".cache" / "swiftlab"
