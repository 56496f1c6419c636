"""Row buffers of the clustering that start small and double up to their cap as the stream needs them.

The clustering keeps its window, its group sums and its history as rows of numpy arrays
(statusd.reports.clustering). At the default capacities they take 56 MiB, which an idle
detector never uses; so each starts at a few rows, and when its end is reached it either
moves its live rows to the front (as a full-size double buffer always did) or, when more
than half of its rows are live, moves them into a new buffer twice the size, up to the cap.
Either way each row is copied O(1) times on average, and only live rows are copied: a move
changes where rows sit, never their values, so everything computed from them is the same.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import numpy as np

T = TypeVar("T")


def mapped(shape: tuple[int, ...], dtype: type = np.float32, order: Literal["C", "F"] = "C") -> np.ndarray:
    """Zeros already written, so their memory is mapped now rather than mid-stream.

    Fresh zeros are mapped lazily, and a column-major array's first row touches every column:
    with transparent huge pages the first report to leave the window faulted in the whole
    32 MB history at once, a 36–66 ms stall for the reports behind it. A buffer is mapped when
    it is allocated instead: while the detector is built, then at each doubling, whose cost is
    proportional to the rows the stream already needed.
    """
    array: np.ndarray = np.empty(shape, dtype=dtype, order=order)
    array.fill(0)
    return array


def next_size(size: int, live: int, cap: int) -> int:
    """The size for a buffer of `size` rows whose end was reached with `live` rows in use.

    Twice the size (at most `cap`) when more than half are live, else the same: moving at most
    half the rows to the front then frees at least half for new ones, so moves stay O(1) a row.
    """
    return min(2 * size, cap) if 2 * live > size else size


def moved(array: np.ndarray, size: int, lo: int, hi: int, order: Literal["C", "F"] = "C") -> np.ndarray:
    """`array` with rows [lo, hi) moved to the front: in place if it has `size` rows, else into a new buffer of `size`.

    `order` is the new buffer's (the array's own: numpy cannot tell it from one of a single row).
    """
    n = hi - lo
    if size != len(array):
        grown = mapped((size, *array.shape[1:]), array.dtype.type, order)
        grown[:n] = array[lo:hi]
        return grown
    array[:n] = array[lo:hi]  # numpy copies overlapping rows as if through a temporary
    return array


def moved_list(items: list[T | None], size: int, lo: int, hi: int) -> list[T | None]:
    """Items [lo, hi) at the front of a list of `size`, the rest None (a slot left holding a value would keep it alive)."""
    return [*items[lo:hi], *[None] * (size - (hi - lo))]


def regrown(array: np.ndarray, size: int, used: int, order: Literal["C", "F"] = "C") -> np.ndarray:
    """A buffer of `size` rows in `order`: the first `used` rows of `array`, then zeros."""
    return moved(array, size, 0, used, order) if size != len(array) else array
