"""Data: image folders and built-in photos as crop datasets; image I/O and grids."""
from .builtin import builtin_datasets
from .datasets import CropDataset, folder_datasets, image_batch, image_tensor, open_images
from .splits import split_indices
from .images import find_images, load_image, make_grid, save_grid, save_image

__all__ = ["builtin_datasets", "CropDataset", "folder_datasets", "image_batch", "image_tensor", "open_images", "split_indices",
           "find_images", "load_image", "make_grid", "save_grid", "save_image"]
