"""Templated class captions: held-out templates are disjoint from training ones, each caption
names its class, and draws follow the generator (so resumed training draws the same)."""

import torch

from difflab.data.captions import CIFAR10_SYNONYMS, captions_for

DIGITS = [str(d) for d in range(10)]


def test_held_out_captions_are_disjoint_and_every_caption_names_its_class():
    captions = captions_for(DIGITS)
    for label in range(10):
        train = set(captions.class_captions(label, "train"))
        held = set(captions.class_captions(label, "eval"))
        assert train and held and not train & held
        names = captions.synonyms[label]
        assert all(any(name in c for name in names) for c in train | held)
    assert "a handwritten seven" in captions.class_captions(7)
    assert "the digit 7" in captions.class_captions(7)


def test_cifar10_class_folders_get_photo_captions_with_synonyms():
    captions = captions_for(sorted(CIFAR10_SYNONYMS))
    cat = sorted(CIFAR10_SYNONYMS).index("cat")
    assert "a photo of a small cat" in captions.class_captions(cat)
    other = captions_for(["red_apple"])
    assert "a photo of a red apple" in other.class_captions(0)


def test_draws_follow_the_generator_and_stay_in_the_split():
    captions = captions_for(DIGITS)
    labels = torch.arange(10).repeat(20)
    g = torch.Generator().manual_seed(3)
    first = captions.draw(labels, g)
    state = g.get_state()
    second = captions.draw(labels, g)
    g.set_state(state)  # a resumed run restores the generator and draws the same
    assert captions.draw(labels, g) == second
    assert captions.draw(labels, torch.Generator().manual_seed(3)) == first
    for label, caption in zip(labels.tolist(), first + second, strict=False):
        assert caption in captions.class_captions(label, "train")
    assert len(set(first)) > 50  # every template and synonym is used
    held = captions.draw(labels, g, "eval")
    pairs = zip(labels.tolist(), held, strict=True)
    assert all(c in captions.class_captions(y, "eval") for y, c in pairs)
