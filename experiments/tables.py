"""Markdown tables: every table the experiments print or write is made here."""

from __future__ import annotations

import statistics


def markdown(header, rows) -> str:
  """A Markdown table from a header and rows of already formatted cells."""
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
  return "\n".join(lines)


def mean_std(values, digits: int = 2) -> str:
  """``mean ± standard deviation`` of ``values`` (just the mean for one value)."""
  values = list(values)
  mean = statistics.fmean(values)
  if len(values) < 2:
    return f"{mean:,.{digits}f}"
  return f"{mean:,.{digits}f} ± {statistics.stdev(values):,.{digits}f}"


def cell(mean: float, std: float, digits: int = 2) -> str:
  """``mean ± std`` from figures already computed."""
  return f"{mean:,.{digits}f} ± {std:,.{digits}f}"
