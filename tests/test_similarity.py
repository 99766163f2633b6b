import numpy as np
import torch
from PIL import Image

from clipdemo.plots import similarity_heatmap


def images():
    rng = np.random.default_rng(2)
    return [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(2)]


def test_clip_score_matches_torchmetrics_per_pair(studio, tiny_clip_dir):
    from torchmetrics.multimodal import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    class TensorFeaturesCLIP(CLIPModel):
        """torchmetrics 1.9 expects get_*_features to return tensors, as in transformers 4."""

        def get_image_features(self, *args, **kwargs):
            return super().get_image_features(*args, **kwargs).pooler_output

        def get_text_features(self, *args, **kwargs):
            return super().get_text_features(*args, **kwargs).pooler_output

    texts = ["a dog wearing glasses", "a red circle", "一只戴眼镜的狗"]
    pics = images()
    result = studio.similarity(pics, texts)
    assert result.cosine.shape == (2, 3)
    metric = CLIPScore(model_name_or_path=lambda: (TensorFeaturesCLIP.from_pretrained(tiny_clip_dir),
                                                   CLIPProcessor.from_pretrained(tiny_clip_dir)))
    for i, image in enumerate(pics):
        tensor = torch.from_numpy(np.asarray(image)).permute(2, 0, 1)
        for j, text in enumerate(texts):
            expected = float(metric(tensor, text))
            metric.reset()
            assert abs(result.clip_score[i, j] - expected) < 1e-3


def test_heatmap_writes_every_value():
    cosine = np.array([[0.1, 0.25], [0.3, -0.05]])
    fig = similarity_heatmap(cosine, ["a.png", "b.png"], ["dog", "cat"])
    written = {t.get_text() for t in fig.axes[0].texts}
    assert written == {"0.100", "0.250", "0.300", "-0.050"}
