"""Small datasets written to disk in the real formats (IDX, CIFAR-10 batches)."""

import gzip
import pathlib
import pickle
import struct

import numpy as np

from experiments import data

# The full MNIST release beside the checkout (CI clones next to shared/).
REAL_MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def write_idx(path: pathlib.Path, array: np.ndarray, compress: bool = True) -> None:
  header = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
  payload = header + np.ascontiguousarray(array, np.uint8).tobytes()
  if compress:
    with gzip.open(f"{path}.gz", "wb") as f:
      f.write(payload)
  else:
    path.write_bytes(payload)


def idx_dataset(directory, *, train=256, test=64, seed=0, compress=True, learnable=True):
  """MNIST-shaped IDX files; with ``learnable`` the label is drawn into the image."""
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, n in (("train", train), ("test", test)):
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    if learnable:
      for i, label in enumerate(labels):  # a bright bar whose row is the label
        images[i, 2 + 2 * label: 4 + 2 * label, 4:24] = 255
    images_name, labels_name = data.IDX_NAMES[split]
    write_idx(directory / images_name, images, compress)
    write_idx(directory / labels_name, labels, compress)
    arrays[split] = (images, labels)
  return arrays


def cifar_batches(directory, *, per_batch=20, seed=0, protocol=pickle.HIGHEST_PROTOCOL):
  """CIFAR-10 python batches (rows of 3072 bytes, channel-major)."""
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  written = {}
  for name in data.CIFAR_TRAIN + (data.CIFAR_TEST,):
    rows = rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8)
    labels = rng.integers(0, 10, per_batch).tolist()
    with open(directory / name, "wb") as f:
      pickle.dump({b"data": rows, b"labels": labels}, f, protocol=protocol)
    written[name] = (rows, labels)
  return written
