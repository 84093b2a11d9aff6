"""Small datasets written to disk in the real formats (IDX, CIFAR-10 batches)."""

import pathlib
import pickle

import numpy as np

from experiments import data

# The full MNIST release beside the checkout (CI clones next to shared/).
REAL_MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


write_idx = data.write_idx
idx_dataset = data.write_synthetic_idx


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
