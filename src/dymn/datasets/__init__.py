"""Training and evaluation datasets (AudioSet/FSD50K/OpenMIC HDF5, ESC-50, DCASE2020, folders, CSV)."""

from .common import DataError, EpochSampler, WaveAugment, collate
from .sets import FileListDataset, HDF5Dataset, csv_split, dcase20_split, esc50_split, folder_split

__all__ = [
    "DataError",
    "EpochSampler",
    "FileListDataset",
    "HDF5Dataset",
    "WaveAugment",
    "collate",
    "csv_split",
    "dcase20_split",
    "esc50_split",
    "folder_split",
]
