"""Feature extractors: the difflab classifier's features and a local Inception TorchScript file."""

import pytest
import torch

from difflab.core.errors import DataError
from difflab.evaluation import ClassifierFeatures, InceptionFeatures, weights_fingerprint


class _FakeInception(torch.nn.Module):
    """Stands in for inception-2015-12-05.pt: same call, features that reveal the input."""

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        is_uint8 = torch.full((img.shape[0],), float(img.dtype == torch.uint8))
        channels = torch.full((img.shape[0],), float(img.shape[1]))
        mean = img.to(torch.float32).mean(dim=(1, 2, 3))
        flag = torch.full((img.shape[0],), float(return_features))
        return torch.stack([is_uint8, channels, mean, flag], dim=1)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_inception_features_call_the_torchscript_file_like_stylegan(tmp_path):
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(_FakeInception()).save(str(path))
    extractor = InceptionFeatures(path, batch_size=3)
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    features = extractor(images)
    assert features.shape == (5, 4) and features.dtype == torch.float32
    assert (features[:, 0] == 1).all()  # uint8 passed through; the file does its own scaling
    assert (features[:, 1] == 3).all()  # grey repeated to RGB
    assert (features[:, 3] == 1).all()  # return_features=True
    torch.testing.assert_close(features[:, 2], images.float().mean(dim=(1, 2, 3)))
    assert extractor.name == "inception-v3-pool3" and len(extractor.fingerprint) == 16


def test_missing_inception_file_names_the_path(tmp_path):
    path = tmp_path / "weights" / "inception-2015-12-05.pt"
    with pytest.raises(DataError, match="never downloads") as err:
        InceptionFeatures(path)
    assert str(path) in str(err.value)


def test_corrupt_inception_file_is_a_data_error(tmp_path):
    path = tmp_path / "inception.pt"
    path.write_bytes(b"not a torchscript archive")
    with pytest.raises(DataError, match="inception.pt"):
        InceptionFeatures(path)


def test_classifier_features_are_the_penultimate_layer(digits_split, digits_classifier):
    extractor = ClassifierFeatures(digits_classifier, batch_size=7)
    images = digits_split[1].images[:20]
    features = extractor(images)
    x = images.float() / 127.5 - 1.0
    with torch.no_grad():
        expected = digits_classifier.features(x)
        logits = digits_classifier.out(features)
    torch.testing.assert_close(features, expected)
    torch.testing.assert_close(logits, digits_classifier.logits(x).detach())
    assert extractor.name == "difflab-digits"
    assert extractor.fingerprint == weights_fingerprint(digits_classifier)
