"""GraphBackend: the input checks and feed that the ONNX Runtime and TensorRT backends share."""

from pathlib import Path

import pytest
import torch

from eradiff.export.artifact import GraphBackend


class Recorder(GraphBackend):
    made, rebuild = "built", "rebuild with --prompt-input"

    def __init__(self, *, has_sra: bool, has_prompt: bool, reference: torch.Tensor | None = None) -> None:
        self.artifact = Path("unet.plan")
        self.has_sra, self.has_prompt, self.prompt_reference = has_sra, has_prompt, reference
        self.feeds: list[dict[str, torch.Tensor]] = []

    def run(self, feed):
        self.feeds.append(feed)
        return feed["sample"].double() * 2  # another dtype: the caller gets the sample's back


def test_feed_expands_the_timestep_and_feeds_an_empty_mask_when_sra_is_off():
    backend = Recorder(has_sra=True, has_prompt=False)
    sample = torch.randn(3, 4, 8, 8)
    out = backend(sample, torch.tensor(5), None, sra=False, encoder_hidden_states=None)
    feed = backend.feeds[-1]
    assert out.dtype == sample.dtype and torch.equal(out, sample * 2)
    assert feed["timestep"].tolist() == [5, 5, 5]
    assert feed["sra_mask"].shape == (3, 8, 8) and not feed["sra_mask"].any()
    mask = torch.rand(3, 8, 8) > 0.5
    backend(sample, torch.tensor([1, 2, 3]), mask, sra=True, encoder_hidden_states=None)
    assert torch.equal(backend.feeds[-1]["sra_mask"], mask) and backend.feeds[-1]["timestep"].tolist() == [1, 2, 3]


def test_refusals_name_the_artifact_and_the_remedy():
    sample = torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match="unet.plan was built without SRA"):
        Recorder(has_sra=False, has_prompt=False)(sample, torch.tensor(1), None, sra=True, encoder_hidden_states=None)
    with pytest.raises(ValueError, match="sra_mask must have shape"):
        Recorder(has_sra=True, has_prompt=False)(
            sample, torch.tensor(1), torch.zeros(1, 4, 4, dtype=torch.bool), sra=True, encoder_hidden_states=None
        )
    with pytest.raises(ValueError, match="takes encoder_hidden_states"):
        Recorder(has_sra=False, has_prompt=True)(sample, torch.tensor(1), None, sra=False, encoder_hidden_states=None)
    baked = Recorder(has_sra=False, has_prompt=False, reference=torch.zeros(1, 2, 3))
    baked(sample, torch.tensor(1), None, sra=False, encoder_hidden_states=torch.zeros(1, 2, 3))  # the baked one: fine
    with pytest.raises(ValueError, match="rebuild with --prompt-input"):
        baked(sample, torch.tensor(1), None, sra=False, encoder_hidden_states=torch.ones(1, 2, 3))
