"""A labelled split's pairs: each caption encoded once, each image paired with its class's."""

import pytest
import torch

from difflab.config.recipes import load_config
from difflab.config.schema import DataConfig
from difflab.core.errors import ConfigError
from difflab.encoders import TextEncoding
from difflab.integrations.unclip.pairs import check_tokens, labelled_pairs
from difflab.training.batches import make_transform

E = 4
TO_SYMMETRIC = make_transform(DataConfig(), train=False)  # uint8 -> [-1, 1]


class WordEncoder:
    """One token per word, token j = [len(word j)] * 3; pooled: a unit vector per caption."""

    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        words = [t.split() for t in texts]
        length = max(map(len, words))
        tokens = torch.zeros(len(texts), length, 3)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, ws in enumerate(words):
            mask[i, : len(ws)] = True
            tokens[i, : len(ws)] = torch.tensor([float(len(w)) for w in ws])[:, None]
        pooled = torch.nn.functional.normalize(tokens.sum(1)[:, :1].repeat(1, E) + 1, dim=1)
        return TextEncoding(tokens, mask, pooled)


class PixelEncoder:
    def to(self, device):
        return self

    def encode(self, images):
        assert images.min() >= -1 and images.max() <= 1
        return torch.nn.functional.normalize(images.flatten(1)[:, :E], dim=1)


def test_captions_encoded_once_and_images_paired_with_their_class():
    images = torch.randint(0, 256, (3, 1, 2, 2), dtype=torch.uint8)
    labels = torch.tensor([1, 0, 1])
    captions = [["a zero"], ["a one", "the digit one here"]]
    text = WordEncoder()
    pairs = labelled_pairs(images, labels, captions, text, PixelEncoder(), TO_SYMMETRIC, "cpu")
    assert text.calls == 1 and pairs.tokens.shape == (3, 4, 3)  # 3 captions, padded to 4
    assert pairs.mask.tolist()[0] == [True, True, False, False]
    assert torch.equal(pairs.counts, torch.tensor([2, 1, 2]))
    assert pairs.choices.tolist() == [[1, 2], [0, 0], [1, 2]]
    expected = torch.nn.functional.normalize(images.flatten(1)[:, :E] / 127.5 - 1, dim=1)
    torch.testing.assert_close(pairs.image, expected)


def test_text_and_image_embeddings_of_other_sizes_are_refused():
    class Wide(PixelEncoder):
        def encode(self, images):
            return images.flatten(1)[:, : E - 1]

    images = torch.zeros(2, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="one joint space"):
        labelled_pairs(
            images, torch.tensor([0, 0]), [["x"]], WordEncoder(), Wide(), TO_SYMMETRIC, "cpu"
        )


def test_options_that_do_not_fit_the_encodings_are_config_errors():
    images = torch.zeros(2, 1, 2, 2, dtype=torch.uint8)
    pairs = labelled_pairs(
        images,
        torch.tensor([0, 0]),
        [["a b c"]],
        WordEncoder(),
        PixelEncoder(),
        TO_SYMMETRIC,
        "cpu",
    )
    config = load_config("unclip-prior-digits", ["model.options={text_dim: 3}"])
    check_tokens(config, pairs)
    with pytest.raises(ConfigError, match="model.options.text_dim' is 384"):
        check_tokens(load_config("unclip-prior-digits"), pairs)
    short = load_config("unclip-prior-digits", ["model.options={text_dim: 3, max_text_tokens: 2}"])
    with pytest.raises(ConfigError, match="max_text_tokens' is 2 but a caption has 3"):
        check_tokens(short, pairs)
