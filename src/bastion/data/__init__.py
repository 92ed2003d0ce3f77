"""Data sets and the embedded model zoo: validated arrays, safe file loaders, small models.

`Dataset` holds validated samples with their bounds and names; `load_data` reads one from an
embedded name, a NumPy or CSV file, or an image folder without running code from the file;
`load_zoo_model` returns a small trained model on an embedded data set, the default every
command runs on.
"""

from bastion.data.datasets import Dataset
from bastion.data.embedded import (
    EMBEDDED,
    load_breast_cancer,
    load_digits_features,
    load_digits_images,
    load_digits_images_32,
    load_embedded,
    load_wine,
    upsample_bilinear,
)
from bastion.data.files import SUPPORTED_FORMS, load_csv, load_data, load_npy, load_npz
from bastion.data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, load_image_folder
from bastion.data.validation import (
    BOUNDS_TOLERANCE,
    check_bounds,
    infer_bounds,
    validate_features,
    validate_labels,
)
from bastion.data.zoo import (
    ZOO,
    CancerMLP,
    DigitsCNN,
    WideDigitsCNN,
    ZooEntry,
    load_zoo_model,
    zoo_cache_dir,
    zoo_name,
)

__all__ = [
    "BOUNDS_TOLERANCE",
    "DEFAULT_MAX_PIXELS",
    "EMBEDDED",
    "IMAGE_EXTENSIONS",
    "SUPPORTED_FORMS",
    "ZOO",
    "CancerMLP",
    "Dataset",
    "DigitsCNN",
    "WideDigitsCNN",
    "ZooEntry",
    "check_bounds",
    "infer_bounds",
    "load_breast_cancer",
    "load_csv",
    "load_data",
    "load_digits_features",
    "load_digits_images",
    "load_digits_images_32",
    "load_embedded",
    "load_image_folder",
    "load_npy",
    "load_npz",
    "load_wine",
    "load_zoo_model",
    "upsample_bilinear",
    "validate_features",
    "validate_labels",
    "zoo_cache_dir",
    "zoo_name",
]
