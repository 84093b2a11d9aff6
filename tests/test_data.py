"""Loading the datasets from every source, and the batches they give."""

import gzip
import hashlib
import pathlib
import pickle

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import data

import fake_data

REAL_MNIST = fake_data.REAL_MNIST


def test_idx_files_gzipped_or_not(tmp_path):
  for compress in (True, False):
    folder = tmp_path / f"idx_{compress}"
    arrays = fake_data.idx_dataset(folder, compress=compress)
    dataset = data.load("mnist", folder, verify=False)
    np.testing.assert_array_equal(dataset.train_images[..., 0], arrays["train"][0])
    np.testing.assert_array_equal(dataset.test_labels, arrays["test"][1])
    assert dataset.train_images.dtype == np.uint8 and dataset.train_images.shape == (256, 28, 28, 1)
    assert str(folder) in dataset.source
    pixels = arrays["train"][0].astype(np.float64)
    np.testing.assert_allclose(dataset.mean, [pixels.mean()], rtol=1e-6)
    np.testing.assert_allclose(dataset.std, [pixels.std()], rtol=1e-5)


def test_cifar_python_batches(tmp_path):
  written = fake_data.cifar_batches(tmp_path / "cifar-10-batches-py")
  dataset = data.load("cifar10", tmp_path)  # finds the batches folder inside
  assert dataset.train_images.shape == (100, 32, 32, 3) and dataset.test_images.shape == (20, 32, 32, 3)
  rows, labels = written["data_batch_2"]
  # Row layout: 1024 red, then green, then blue values, each row-major.
  image = dataset.train_images[20 + 3]
  assert image[5, 7, 0] == rows[3, 5 * 32 + 7] and image[5, 7, 2] == rows[3, 2048 + 5 * 32 + 7]
  assert dataset.train_labels[20 + 3] == labels[3]


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_tensorflow_datasets_through_mock_data(name, shape):
  with tfds.testing.mock_data(num_examples=12):
    dataset = data.load(name)
  assert dataset.source == "tensorflow-datasets"
  assert dataset.train_images.shape == (12,) + shape and dataset.train_images.dtype == np.uint8
  assert dataset.test_labels.shape == (12,) and dataset.test_labels.max() < 10


def test_nothing_reachable_says_what_was_tried(tmp_path, monkeypatch):
  monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")

  def offline(name, data_dir):
    raise ConnectionError("Failed to reach the dataset host\nlong stack")

  monkeypatch.setattr(data, "_load_tfds", offline)
  with pytest.raises(data.DataUnavailable) as caught:
    data.load("fashion_mnist")
  message = str(caught.value)
  assert "Debian's dataset-fashion-mnist" in message and "not-installed" in message
  assert "tensorflow-datasets: ConnectionError: Failed to reach" in message
  assert "apt-get install dataset-fashion-mnist" in message and "long stack" not in message


def test_a_named_folder_that_fails_is_an_error_not_another_copy(tmp_path):
  missing = tmp_path / "no" / "such" / "dir"
  with pytest.raises(data.DataUnavailable) as caught:
    data.load("fashion_mnist", missing)  # Debian's copy may be installed: not used
  message = str(caught.value)
  assert message == f"--data-dir {missing}: no such directory"


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_of_any_pickle_protocol(tmp_path, protocol):
  written = fake_data.cifar_batches(tmp_path, protocol=protocol)
  dataset = data.load("cifar10", tmp_path)
  np.testing.assert_array_equal(dataset.test_labels, written["test_batch"][1])


class _Touch:
  """Unpickling it creates a file: the smallest proof that code ran."""

  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return (pathlib.Path.touch, (self.path,))


def test_a_crafted_cifar_batch_is_refused_without_running_its_code(tmp_path):
  fake_data.cifar_batches(tmp_path)
  target = tmp_path / "pwned"
  payload = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0],
                          b"x": _Touch(target)})
  (tmp_path / "data_batch_3").write_bytes(payload)
  with pytest.raises(data.DataUnavailable) as caught:
    data.load("cifar10", tmp_path)
  message = str(caught.value)
  assert "refusing to unpickle" in message and len(message.splitlines()) == 1
  assert not target.exists()


def test_corrupt_idx_is_reported(tmp_path):
  fake_data.idx_dataset(tmp_path)
  (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
  with pytest.raises(data.DataUnavailable, match="--data-dir"):
    data.load("mnist", tmp_path, verify=False)


def test_generated_mnist_fails_the_checksum_with_one_line_naming_the_file(tmp_path):
  fake_data.idx_dataset(tmp_path)
  with pytest.raises(data.ChecksumMismatch) as caught:
    data.load("mnist", tmp_path)  # never falls back to another source
  message = str(caught.value)
  assert len(message.splitlines()) == 1 and "--no-verify" in message
  assert str(tmp_path / "train-images-idx3-ubyte.gz") in message
  assert hashlib.md5(gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
                     ).hexdigest() in message


def test_every_file_read_is_listed_with_its_sha256(tmp_path):
  fake_data.idx_dataset(tmp_path, compress=False)
  dataset = data.load("fashion_mnist", tmp_path)  # not checksummed: any content
  names = [pathlib.Path(path).name for path, _ in dataset.files]
  assert names == ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                   "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
  for path, digest in dataset.files:
    assert digest == hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason="../shared/data/mnist is not beside the checkout")
def test_real_mnist_is_the_original_release():
  dataset = data.load("mnist", REAL_MNIST)
  assert dataset.train_images.shape == (60_000, 28, 28, 1)
  assert dataset.test_images.shape == (10_000, 28, 28, 1)
  np.testing.assert_array_equal(dataset.train_labels[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
  np.testing.assert_allclose(dataset.mean, [33.318], atol=5e-4)
  assert len(dataset.files) == 4 and all(len(digest) == 64 for _, digest in dataset.files)


def test_normalise_standardises_uint8_images():
  images = np.full((3, 2, 2, 1), 51, np.uint8)
  x = data.normalise(images, np.full(1, 50, np.float32), np.full(1, 0.5, np.float32))
  assert x.dtype == np.float32
  np.testing.assert_allclose(x, 2.0)
