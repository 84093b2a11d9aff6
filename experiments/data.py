"""MNIST, Fashion-MNIST and CIFAR-10 as uint8 NumPy arrays, from where they are.

Sources:

1. ``--data-dir DIR``, when given, is the only source: the standard IDX files
   of MNIST or Fashion-MNIST (``train-images-idx3-ubyte[.gz]`` and its three
   siblings), or CIFAR-10's python batches (``data_batch_1`` ...
   ``data_batch_5``, ``test_batch``, also inside ``DIR/cifar-10-batches-py``),
   read by an unpickler that admits only NumPy arrays, so a crafted batch
   cannot run code. A folder that fails is an error, never replaced by
   another copy. Without it, in order:
2. For Fashion-MNIST, Debian's ``dataset-fashion-mnist`` package
   (``/usr/share/datasets/fashion-mnist``), found without any flag.
3. tensorflow-datasets (``tfds.data_source``), which downloads and prepares
   the dataset where the network allows it.

MNIST's IDX files are checked against the MD5 sums of the original release
(of the uncompressed files, so any gzip level passes); a mismatch is an error,
never a fall-back to another source. Every file read is listed with its
SHA-256 in :attr:`Dataset.files`, so a result says exactly which bytes
produced it.

The training set is held once, as uint8; :func:`batches` gathers each batch
by index and converts only that batch to float32, standardised with the
training set's per-channel mean and standard deviation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import pathlib
import io
import pickle
import struct

import numpy as np

DATASETS = ("mnist", "fashion_mnist", "cifar10")
# How tables and plots name each dataset.
DISPLAY_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
IMAGE_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
NUM_CLASSES = 10
DEBIAN_FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# MD5 of the uncompressed files of the original MNIST release.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"


class DataUnavailable(RuntimeError):
  """No source could provide the dataset; the message says what was tried."""


class ChecksumMismatch(ValueError):
  """A file is not the one its name promises (wrong or corrupted data)."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A dataset as uint8 NHWC images and integer labels.

  Attributes:
    name: one of :data:`DATASETS`.
    train_images, train_labels, test_images, test_labels: the splits.
    source: where the data came from, e.g. ``"idx files in /path"``.
    mean, std: per-channel statistics of the training images (0..255 scale).
    files: ``(path, sha256)`` of every file read, in reading order (empty
      when tensorflow-datasets was the source).
  """

  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  source: str
  mean: np.ndarray
  std: np.ndarray
  files: tuple[tuple[str, str], ...] = ()


def _find(directory: pathlib.Path, name: str) -> pathlib.Path:
  for candidate in (directory / f"{name}.gz", directory / name):
    if candidate.is_file():
      return candidate
  raise FileNotFoundError(f"no {name}[.gz] in {directory}")


@dataclasses.dataclass(frozen=True)
class IdxFile:
  """An IDX file as read: its array and the digests of its bytes."""

  array: np.ndarray
  sha256: str  # of the file as stored (compressed or not)
  md5: str  # of the uncompressed content, as the datasets publish it


def read_idx(path: pathlib.Path) -> IdxFile:
  """Reads an IDX file (uint8 data, big-endian int32 dimensions), gzipped or not."""
  stored = pathlib.Path(path).read_bytes()
  content = gzip.decompress(stored) if pathlib.Path(path).suffix == ".gz" else stored
  header = content[:4]
  if len(header) != 4 or header[:2] != b"\0\0" or header[2] != 0x08:
    raise ValueError(f"{path} is not an IDX file of unsigned bytes")
  dims = np.frombuffer(content[4:4 + 4 * header[3]], ">i4")
  data = np.frombuffer(content[4 + 4 * header[3]:], np.uint8)
  if data.size != int(np.prod(dims)):
    raise ValueError(f"{path} holds {data.size} bytes, its header promises {int(np.prod(dims))}")
  return IdxFile(data.reshape(tuple(int(d) for d in dims)), hashlib.sha256(stored).hexdigest(),
                 hashlib.md5(content).hexdigest())


def _read_checked(directory: pathlib.Path, name: str, expected_md5: str | None, files: list):
  path = _find(directory, name)
  idx = read_idx(path)
  if expected_md5 is not None and idx.md5 != expected_md5:
    raise ChecksumMismatch(
        f"{path} is not the original {name} (MD5 of its content {idx.md5}, expected "
        f"{expected_md5}); replace the file, or pass --no-verify to use it anyway")
  files.append((str(path), idx.sha256))
  return idx.array


def _load_idx(directory: pathlib.Path, name: str, verify: bool = True):
  checksums = MNIST_MD5 if verify and name == "mnist" else {}
  splits, files = {}, []
  for split, (images_name, labels_name) in IDX_NAMES.items():
    images = _read_checked(directory, images_name, checksums.get(images_name), files)
    labels = _read_checked(directory, labels_name, checksums.get(labels_name), files)
    labels = labels.astype(np.int32)
    if images.ndim != 3 or len(images) != len(labels):
      raise ValueError(f"{directory}: {split} images {images.shape} and labels {labels.shape} disagree")
    splits[split] = (images[..., None], labels)
  if splits["train"][0].shape[1:] != IMAGE_SHAPES[name]:
    raise ValueError(f"{directory}: images of shape {splits['train'][0].shape[1:]}, "
                     f"{name} has {IMAGE_SHAPES[name]}")
  return splits, tuple(files)


class _BatchUnpickler(pickle.Unpickler):
  """Unpickles CIFAR-10's python batches and nothing else.

  A batch holds a dict of bytes, lists of ints and one NumPy array. Any other
  global a pickle names (``os.system``, ``builtins.eval``, ...) is refused:
  unpickling a crafted file would otherwise run its code.
  """

  ALLOWED = {
      ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
      ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
      ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
  }

  def find_class(self, module, name):
    if (module, name) not in self.ALLOWED:
      raise pickle.UnpicklingError(
          f"refusing to unpickle {module}.{name}: not part of a CIFAR-10 batch")
    return super().find_class(module, name)


def _load_cifar(directory: pathlib.Path):
  if not (directory / CIFAR_TEST).is_file() and (directory / "cifar-10-batches-py").is_dir():
    directory = directory / "cifar-10-batches-py"

  files = []

  def batch(file_name):
    path = directory / file_name
    if not path.is_file():
      raise FileNotFoundError(f"no {file_name} in {directory}")
    stored = path.read_bytes()
    files.append((str(path), hashlib.sha256(stored).hexdigest()))
    content = _BatchUnpickler(io.BytesIO(stored), encoding="bytes").load()
    images = np.asarray(content[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(content[b"labels"], np.int32)

  images, labels = [], []
  for name in CIFAR_TRAIN:
    batch_images, batch_labels = batch(name)
    images.append(batch_images)
    labels.append(batch_labels)
    del batch_images
  # The five batches are 150 MB; concatenating them briefly doubles that,
  # after which only the one training array remains.
  train = (np.concatenate(images), np.concatenate(labels))
  del images
  test = batch(CIFAR_TEST)
  return {"train": train, "test": test}, tuple(files)


@contextlib.contextmanager
def _one_download_attempt():
  """tensorflow-datasets retries a failed download 10 times with back-off:
  minutes where there is no network. One attempt tells the same."""
  from tensorflow_datasets.core.download import downloader

  retries = getattr(downloader, "MAX_RETRIES", None)
  if retries is not None:
    downloader.MAX_RETRIES = 0
  try:
    yield
  finally:
    if retries is not None:
      downloader.MAX_RETRIES = retries


def _load_tfds(name: str, data_dir: str | None):
  import tensorflow_datasets as tfds  # heavy: only when it is the source

  splits = {}
  for split in ("train", "test"):
    with _one_download_attempt():
      source = tfds.data_source(name, split=split, data_dir=data_dir)
    images, labels = [], []
    for start in range(0, len(source), 4096):
      records = [source[i] for i in range(start, min(start + 4096, len(source)))]
      images.append(np.stack([np.asarray(r["image"], np.uint8) for r in records]))
      labels.append(np.asarray([r["label"] for r in records], np.int32))
    splits[split] = (np.concatenate(images), np.concatenate(labels))
  return splits, ()


def channel_statistics(images: np.ndarray, chunk: int = 4096):
  """Per-channel mean and standard deviation, in chunks (no float copy of the set)."""
  total = np.zeros(images.shape[-1])
  squares = np.zeros(images.shape[-1])
  for start in range(0, len(images), chunk):
    part = images[start:start + chunk].astype(np.float64)
    total += part.sum(axis=tuple(range(part.ndim - 1)))
    squares += (part * part).sum(axis=tuple(range(part.ndim - 1)))
  count = images.size / images.shape[-1]
  mean = total / count
  return mean.astype(np.float32), np.sqrt(np.maximum(squares / count - mean ** 2, 1e-12)).astype(np.float32)


def _how_to_get(name: str) -> str:
  if name == "fashion_mnist":
    offline = ("install Debian's package (apt-get install dataset-fashion-mnist), or put the "
               "four IDX .gz files in a folder and pass --data-dir")
  elif name == "mnist":
    offline = "put the four MNIST IDX .gz files in a folder and pass --data-dir"
  else:
    offline = "unpack cifar-10-python.tar.gz and pass its folder with --data-dir"
  return (f"To get {name}: {offline}; or, with network access, tensorflow-datasets "
          "downloads and prepares it.")


def _first_line(error: Exception) -> str:
  reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
  return f"{type(error).__name__}{': ' + reason if reason else ''}"


def _dataset(name, splits, files, source) -> Dataset:
  (train_images, train_labels), (test_images, test_labels) = splits["train"], splits["test"]
  mean, std = channel_statistics(train_images)
  return Dataset(name, train_images, train_labels, test_images, test_labels,
                 source, mean, std, files)


def load(name: str, data_dir=None, *, tfds_data_dir: str | None = None,
         verify: bool = True) -> Dataset:
  """Loads ``name`` from the first source that has it (see the module docstring).

  Args:
    name: one of :data:`DATASETS`.
    data_dir: a folder of IDX files or CIFAR-10 batches; when given, the only source.
    tfds_data_dir: where tensorflow-datasets keeps its data.
    verify: check MNIST's files against the original release's MD5 sums.

  Raises:
    ChecksumMismatch: an MNIST file differs from the original (one line
      naming the file).
    DataUnavailable: with one message naming every source tried and why it
      failed, and how to get the data.
  """
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
  attempts = []
  sources = []
  file_loader = _load_cifar if name == "cifar10" else (lambda d: _load_idx(d, name, verify))
  if data_dir is not None:
    # A folder the user names is the only source: never silently another copy.
    if not pathlib.Path(data_dir).is_dir():
      raise DataUnavailable(f"--data-dir {data_dir}: no such directory")
    try:
      splits, files = file_loader(pathlib.Path(data_dir))
    except ChecksumMismatch:
      raise
    except Exception as error:
      raise DataUnavailable(f"--data-dir {data_dir}: {_first_line(error)}. "
                            + _how_to_get(name)) from None
    return _dataset(name, splits, files, f"--data-dir {data_dir}")
  if name == "fashion_mnist":
    sources.append((f"Debian's dataset-fashion-mnist ({DEBIAN_FASHION_MNIST})",
                    lambda: _load_idx(DEBIAN_FASHION_MNIST, name)))
  sources.append(("tensorflow-datasets", lambda: _load_tfds(name, tfds_data_dir)))
  for description, loader in sources:
    try:
      splits, files = loader()
    except ChecksumMismatch:
      raise  # the data is there but wrong: never silently replaced by another source
    except Exception as error:  # every failure is reported, none is fatal alone
      attempts.append(f"{description}: {_first_line(error)}")
      continue
    return _dataset(name, splits, files, description)
  raise DataUnavailable(f"No source could provide {name}. Tried: " + "; ".join(attempts)
                        + ". " + _how_to_get(name))


def normalise(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
  """uint8 images to standardised float32."""
  return (images.astype(np.float32) - mean) / std


def write_idx(path: pathlib.Path, array: np.ndarray, compress: bool = True) -> None:
  """Writes ``array`` (uint8) as an IDX file, gzipped to ``path.gz`` by default."""
  header = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
  payload = header + np.ascontiguousarray(array, np.uint8).tobytes()
  if compress:
    with gzip.open(f"{path}.gz", "wb") as f:
      f.write(payload)
  else:
    pathlib.Path(path).write_bytes(payload)


def write_synthetic_idx(directory, *, train=256, test=64, seed=0, compress=True,
                        learnable=True) -> dict:
  """MNIST-shaped IDX files of noise; with ``learnable`` the label is drawn in.

  Each image of label k carries a bright bar at rows 2 + 2k, so a network can
  learn them: a stand-in for MNIST where the real files are absent (it needs
  ``--no-verify``). Returns ``{split: (images, labels)}``.
  """
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, n in (("train", train), ("test", test)):
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    if learnable:
      for i, label in enumerate(labels):
        images[i, 2 + 2 * label: 4 + 2 * label, 4:24] = 255
    images_name, labels_name = IDX_NAMES[split]
    write_idx(directory / images_name, images, compress)
    write_idx(directory / labels_name, labels, compress)
    arrays[split] = (images, labels)
  return arrays
