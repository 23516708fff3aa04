"""Loading a model draws no "Loading weights" bar (it opened every notebook), and leaves transformers' and the
hub's progress-bar settings as they were."""

import pytest
from huggingface_hub.utils import are_progress_bars_disabled
from transformers.utils import logging as hf_logging

import swiftlab


@pytest.mark.parametrize("bars_on", [True, False])
def test_no_loading_bar_and_settings_restored(local_llama_dir, capfd, bars_on):
    (hf_logging.enable_progress_bar if bars_on else hf_logging.disable_progress_bar)()
    try:
        capfd.readouterr()
        swiftlab.load_model(local_llama_dir)
        assert "Loading weights" not in "".join(capfd.readouterr())
        assert hf_logging.is_progress_bar_enabled() == bars_on
        assert are_progress_bars_disabled() == (not bars_on)
    finally:
        hf_logging.enable_progress_bar()


def test_transformers_would_draw_it(local_llama_dir, capfd):
    """The check above can fail: without swiftlab's wrapper, this load draws the bar."""
    from transformers import AutoModelForCausalLM

    hf_logging.enable_progress_bar()
    capfd.readouterr()
    AutoModelForCausalLM.from_pretrained(local_llama_dir)
    assert "Loading weights" in "".join(capfd.readouterr())
