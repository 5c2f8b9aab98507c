from __future__ import annotations

import pytest
import torch

from fakereasoning.models import facl

from .conftest import make_samples


def test_supcon_prefers_same_label_clusters():
    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.1], [1.0, -0.1], [-1.0, 0.1], [-1.0, -0.1]]), dim=-1
    )
    mixed = clustered[[0, 2, 1, 3]]
    good = facl.supervised_contrastive(clustered, labels, 0.1)
    bad = facl.supervised_contrastive(mixed, labels, 0.1)
    assert good < bad


def test_supcon_without_positives_is_zero():
    emb = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1).requires_grad_()
    loss = facl.supervised_contrastive(emb, torch.tensor([0, 1, 2]), 0.1)
    assert loss.item() == 0.0 and loss.requires_grad


def test_info_nce_is_symmetric_and_lowest_when_matched():
    img = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    scale = torch.tensor(2.0)
    matched = facl.info_nce(img, img, scale)
    shuffled = facl.info_nce(img, img[[1, 2, 3, 4, 0]], scale)
    assert matched < shuffled
    txt = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    assert facl.info_nce(img, txt, scale).item() == pytest.approx(
        facl.info_nce(txt, img, scale).item(), rel=1e-5
    )


def test_attribute_weights_raise_shared_attributes():
    a = frozenset({"Low Image Quality", "Irregular Image Edges"})
    w = facl.attribute_weights(
        [a, a, frozenset({"Low Image Quality"}), frozenset()], torch.tensor([1, 1, 1, 0])
    )
    assert w[0, 1] == pytest.approx(2.0) and w[0, 2] == pytest.approx(1.5) and w[0, 3] == pytest.approx(1.0)


def test_terms_switch_off(tiny_tokenizer, images):
    from fakereasoning.models import FakeReasoning

    from .conftest import TINY_KW

    model = FakeReasoning.build(
        "tiny", tokenizer=tiny_tokenizer, **{**TINY_KW, "facl_text_weight": 0.0, "facl_image_weight": 0.0}
    )
    out = model(model.collate(make_samples(images[:4])))
    assert set(out.facl_terms) == {"cross"}
    off = FakeReasoning.build("tiny", tokenizer=tiny_tokenizer, **{**TINY_KW, "use_facl": False})
    out = off(off.collate(make_samples(images[:4])))
    assert out.facl_terms == {} and out.facl_loss.item() == 0.0 and out.image_embeds is None


@pytest.mark.parametrize("term", ["cross", "image", "text"])
def test_each_facl_term_decreases_when_optimised_alone(tiny_model, images, term):
    torch.manual_seed(0)
    samples = make_samples(images[:6])
    samples = [(im, lab, ans, "full") for im, lab, ans, _ in samples]  # every sample has a reasoning span
    batch = tiny_model.collate(samples)
    assert batch["reasoning_mask"].any(dim=1).all()
    params = [p for p in tiny_model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=3e-4)
    losses = []
    for _ in range(12):
        out = tiny_model(batch)
        value = out.facl_terms[term]
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(value.item())
    assert losses[0] > 0
    assert losses[-1] < 0.7 * losses[0], losses
    assert sum(losses[-3:]) < sum(losses[:3])
    emb = out.image_embeds if term != "text" else out.text_embeds
    assert torch.allclose(emb.norm(dim=-1), torch.ones(emb.shape[0]), atol=1e-5)
