"""Pictures of sparse weights, written to PNG (the paper's Figs. 1 and 2).

Only this package writes files; the library computes, these functions draw.
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, path, title: str = "") -> pathlib.Path:
  """Titles, writes and closes a figure; returns the path."""
  path = pathlib.Path(path)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def as_matrix(kernel) -> np.ndarray:
  """A kernel as ``(fan_in, fan_out)``: conv kernels fold their taps into rows."""
  kernel = np.asarray(kernel, np.float64)
  if kernel.ndim <= 1:
    return kernel.reshape(-1, 1)
  if kernel.ndim == 2:
    return kernel
  # (kh, kw, in, out) -> rows grouped by input channel: (in * kh * kw, out).
  return np.moveaxis(kernel, -2, 0).reshape(-1, kernel.shape[-1])


def weight_matrices_png(kernels: dict, path, *, title: str = "") -> pathlib.Path:
  """Draws kernels as images, exact zeros white, whole zero rows easy to see.

  Rows are inputs (Flax layout), so a removed input neuron is a white row. As
  in the paper's Fig. 2, magnitudes use a logarithmic scale.

  Args:
    kernels: ``{name: kernel}`` in Flax layouts.
    path: the PNG to write.
    title: a title over the figure.

  Returns:
    The path written.
  """
  fig, axes = plt.subplots(1, len(kernels), figsize=(4 * len(kernels), 4), squeeze=False)
  for ax, (name, kernel) in zip(axes[0], kernels.items()):
    matrix = np.abs(as_matrix(kernel))
    shown = np.ma.masked_equal(matrix, 0.0)
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    positive = matrix[matrix > 0]
    low = positive.min() if positive.size else 1e-8
    high = max(matrix.max(), low * 10)
    image = ax.imshow(shown, aspect="auto", interpolation="nearest", cmap=cmap,
                      norm=matplotlib.colors.LogNorm(vmin=max(low, high * 1e-6), vmax=high))
    dead_rows = int(np.sum(~matrix.any(axis=1)))
    ax.set_title(f"{name} {matrix.shape[0]}x{matrix.shape[1]}\n"
                 f"{np.mean(matrix != 0):.1%} non-zero, {dead_rows} zero rows")
    ax.set_xlabel("output")
    ax.set_ylabel("input")
    fig.colorbar(image, ax=ax, label="|w|")
  return save(fig, path, title)


def weight_distributions_png(weights: dict, path, *, title: str = "", bins: int = 101) -> pathlib.Path:
  """Draws histograms (log counts) of weight values, one curve per entry (Fig. 1).

  Args:
    weights: ``{label: array}``, e.g. the same layer trained by several methods.
    path: the PNG to write.
    title: a title over the figure.
    bins: histogram bins over the common range.

  Returns:
    The path written.
  """
  arrays = {label: np.asarray(w, np.float64).ravel() for label, w in weights.items()}
  limit = max((np.abs(a).max() for a in arrays.values() if a.size), default=1.0) or 1.0
  edges = np.linspace(-limit, limit, bins + 1)
  centres = 0.5 * (edges[:-1] + edges[1:])
  fig, ax = plt.subplots(figsize=(6, 4))
  for label, values in arrays.items():
    counts, _ = np.histogram(values, edges)
    zeros = np.mean(values == 0)
    ax.semilogy(centres, np.maximum(counts, 0.5), label=f"{label} ({zeros:.0%} exact zeros)")
  ax.set_xlabel("weight")
  ax.set_ylabel("count")
  ax.legend()
  return save(fig, path, title)
