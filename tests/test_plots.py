"""The figures are written as real PNG images."""

import numpy as np

from experiments import plots


def test_weight_matrix_and_distribution_pngs(tmp_path):
  rng = np.random.default_rng(0)
  dense = rng.normal(size=(20, 8))
  sparse = dense.copy()
  sparse[::2] = 0.0
  conv = rng.normal(size=(3, 3, 4, 5))
  assert plots.as_matrix(conv).shape == (36, 5)
  np.testing.assert_array_equal(plots.as_matrix(conv)[:9, 0], conv[:, :, 0, 0].ravel())
  matrices = plots.weight_matrices_png({"fc1": sparse, "conv": conv, "dead": np.zeros((4, 4))},
                                       tmp_path / "matrices.png", title="t")
  histograms = plots.weight_distributions_png({"adam": dense, "pgl11": sparse},
                                              tmp_path / "hist.png")
  for path in (matrices, histograms):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
