"""Extract pretrained-architecture features from scikit-learn's bundled photos."""

import numpy as np
from sklearn.datasets import load_sample_images

from sktransfer import FeatureExtractor

photos = load_sample_images()
X = np.stack(photos.images)  # (2, 427, 640, 3) uint8
features = FeatureExtractor(backbone="resnet18", weights=None, random_state=0).fit_transform(X)
print(f"{len(X)} photos {X.shape[1:]} -> features {features.shape}")
