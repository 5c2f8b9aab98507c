from __future__ import annotations

import numpy as np
import pytest
import torch

from fakereasoning.models import cpm

from .conftest import make_samples


def test_probability_is_softmax_of_scaled_pair():
    pair = torch.tensor([[3.0, 7.0], [-2.0, -12.0], [0.5, 0.5]])
    p = cpm.cpm_probability(pair, scale=10.0)
    expected = torch.softmax(pair / 10.0, dim=-1)[:, 1]
    assert torch.allclose(p, expected)
    assert p[0] > 0.5 > p[1] and p[2] == pytest.approx(0.5)
    # temperature flattens but never flips the decision
    p_t = cpm.cpm_probability(pair, scale=10.0, temperature=3.0)
    assert torch.all((p_t >= 0.5) == (p >= 0.5)) and abs(p_t[0] - 0.5) < abs(p[0] - 0.5)


def test_verdict_logits_gather_and_mask():
    logits = torch.randn(3, 5, 11)
    slots = torch.tensor([1, -1, 4])
    pair = cpm.verdict_logits(logits, slots, (7, 9))
    assert torch.equal(pair[0], logits[0, 1, [7, 9]])
    assert torch.equal(pair[2], logits[2, 4, [7, 9]])
    assert torch.equal(pair[1], torch.zeros(2))


def test_loss_masks_samples_without_slot():
    pair = torch.tensor([[1.0, 4.0], [9.0, -9.0], [2.0, 0.0]], requires_grad=True)
    labels = torch.tensor([1, 1, 0])
    valid = torch.tensor([True, False, True])
    loss = cpm.cpm_loss(pair, labels, valid, scale=10.0)
    z = pair.detach() / 10.0
    expected = torch.nn.functional.cross_entropy(z[[0, 2]], labels[[0, 2]])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert torch.all(pair.grad[1] == 0)  # masked sample gets no gradient
    none = cpm.cpm_loss(pair, labels, torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad


def test_fit_temperature_recovers_true_temperature():
    rng = np.random.default_rng(0)
    margin = rng.normal(0, 4.0, 4000)  # model's fake-minus-real margins, overconfident by T = 2.5
    p_true = 1 / (1 + np.exp(-margin / 2.5))
    labels = (rng.random(4000) < p_true).astype(int)
    logits = np.stack([np.zeros_like(margin), margin], 1)
    t = cpm.fit_temperature(logits, labels)
    assert t == pytest.approx(2.5, rel=0.15)
    probs_raw = 1 / (1 + np.exp(-margin))
    probs_cal = 1 / (1 + np.exp(-margin / t))
    assert cpm.expected_calibration_error(probs_cal, labels) < cpm.expected_calibration_error(
        probs_raw, labels
    )


def test_ece_known_values():
    assert cpm.expected_calibration_error([0.9, 0.1, 0.9, 0.1], [1, 0, 1, 0]) == pytest.approx(0.1)
    assert cpm.expected_calibration_error([1.0, 0.0], [1, 0]) == pytest.approx(0.0)
    assert cpm.expected_calibration_error([1.0, 0.0], [0, 1]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        cpm.expected_calibration_error([0.5], [1, 0])


def test_model_cpm_matches_lm_logits_and_masks(tiny_model, images):
    samples = make_samples(images[:3]) + [(images[3], "fake", "an answer with no conclusion", "full")]
    batch = tiny_model.collate(samples)
    out = tiny_model(batch)
    slots = batch["slots"]
    assert slots[3] == -1 and bool(out.cpm_valid[3]) is False and bool(out.cpm_valid[:3].all())
    real_id, fake_id = tiny_model.text.verdict_ids
    for i in range(3):
        logit_pair = out.logits[i, slots[i], [real_id, fake_id]]
        expected = torch.softmax(logit_pair / tiny_model.config.cpm_scale, -1)[1]
        assert out.prob_fake[i].item() == pytest.approx(expected.item(), abs=1e-6)
        # the slot predicts the verdict word: the next input token is the label's verdict token
        label = samples[i][1]
        assert batch["input_ids"][i, slots[i] + 1].item() == (fake_id if label == "fake" else real_id)
    z = out.cpm_logits[:3].detach()
    expected_loss = torch.nn.functional.cross_entropy(z, batch["cpm_labels"][:3])
    assert out.cpm_loss.item() == pytest.approx(expected_loss.item(), rel=1e-5)


def test_cpm_loss_decreases_when_optimised_alone(tiny_model, images):
    # The trainer's learning rate (optim.lr = 3e-4). At 3e-3 plain Adam overshoots on this random tiny model
    # for about a third of the random draws (main included): within a step the verdict slot stops
    # reading the image, every sample gets the same margin and the loss sticks at ln 2; which draws do
    # depends on the tokenizer's merges, so any change to the schema texts reshuffles them.
    torch.manual_seed(0)
    batch = tiny_model.collate([(im, lab, None, "fast") for im, lab, _, _ in make_samples(images[:4])])
    params = [p for p in tiny_model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=3e-4)
    losses = []
    for _ in range(40):
        out = tiny_model(batch)
        opt.zero_grad()
        out.cpm_loss.backward()
        opt.step()
        losses.append(out.cpm_loss.item())
    assert losses[-1] < 0.85 * losses[0], losses
    assert sum(losses[-3:]) < sum(losses[:3])


def test_platt_recovers_a_shifted_margin() -> None:
    import numpy as np

    from fakereasoning.models.cpm import fit_platt

    rng = np.random.default_rng(0)
    true = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-true))).astype(int)
    observed = (true - 1.5) * 3.0  # the detector's margin: leaning to "real" and over-confident
    t, bias = fit_platt(observed, y)
    assert abs(t - 3.0) < 0.4 and abs(bias - 1.5) < 0.25
    p = cpm.cpm_probability(torch.tensor([[0.0, 3.0]]), 1.0, t, bias)
    assert float(p) == pytest.approx(1 / (1 + np.exp(-(3.0 / t + bias))), rel=1e-5)
