"""Input adapters: whatever the user holds -> validated, lazily decoded samples.

Accepted ``X``:

* numpy arrays ``(N, H, W, C)``, ``(N, C, H, W)`` or ``(N, H, W)`` and the same
  as torch tensors (``_arrays``: dtypes, value ranges, layouts);
* 2-D arrays ``(N, F)`` for backbones that take vectors;
* lists, tuples, object arrays or pandas Series of file paths (``str`` or
  ``Path``), decoded lazily, one sample at a time, in the data loader (``_decode``);
* lists of PIL images of any size and mode;
* a one-column DataFrame or ``(N, 1)`` object array of paths or PIL images (what
  ``df[["image"]]`` and ``ColumnTransformer`` hand over) is that column;
* texts, for a backbone that takes them (``sktransfer._text``);
* audio clips (waveforms or audio files), for a backbone that takes them
  (``sktransfer._audio``).

One module per step: ``_inputs`` (``as_input``: validation, the input kinds),
``_arrays``, ``_decode`` (files and PIL images), ``_preprocess`` (channels,
resize / crop, normalisation, datasets and batching), ``_resize`` (the resize +
centre crop, for float tensors and for 8-bit PIL images), ``_loader`` (worker
processes and pinned memory for the data loaders), ``_augment`` and
``_folders`` (``load_image_folder``, ``load_audio_folder``, and ``list_files``, the one
folder walker they and the command line share), ``_tables`` (CSV files of paths or texts
and labels). The caller's ``X`` is never modified.
"""

from .._text import TextInput, TextPreprocessor
from ._arrays import torch_ready
from ._augment import make_augment
from ._folders import (AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, list_files, load_audio_folder,
                       load_image_folder)
from ._inputs import ImageInput, VectorInput, as_input
from ._loader import (check_num_workers, dataset_source, loader_options, resolve_num_workers,
                      worker_context)
from ._preprocess import (PairCollate, PreparedBatch, Preprocessor, SampleDataset,
                          collate_samples, network_input, split_batch)
from ._resize import MAX_ASPECT_RATIO
from ._tables import csv_items, is_csv, numeric_column, read_csv

__all__ = ["ImageInput", "VectorInput", "TextInput", "as_input", "SampleDataset", "Preprocessor",
           "TextPreprocessor", "collate_samples", "split_batch", "PairCollate",
           "PreparedBatch", "network_input",
           "load_image_folder", "load_audio_folder", "list_files", "is_csv", "read_csv",
           "numeric_column", "csv_items", "make_augment", "IMAGE_EXTENSIONS",
           "AUDIO_EXTENSIONS", "MAX_ASPECT_RATIO",
           "torch_ready", "check_num_workers", "resolve_num_workers", "loader_options",
           "worker_context", "dataset_source"]
