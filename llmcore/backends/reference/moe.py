"""The reference kernels of mixture-of-experts routing, in llama.cpp's CPU order: the gating
softmax, the top-k choice of experts (ggml_argsort's std::sort, ties included), the expert-routed
product (ggml_mul_mat_id) and the weighted sum of the experts' outputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from llmcore.backends.reference.attention import libm_expf
from llmcore.backends.reference.kernels import _reduce16, expf

SOFTMAX_LANES = 16  # ggml_vec_soft_max_f32 (AVX-512): exps of 16 values at a time by ggml_v_expf


def softmax(x: np.ndarray) -> np.ndarray:
    """ggml_soft_max without a mask over the last axis: exps of x - max, 16 at a time by ggml's
    vectorised expf with each group's float sum added in double, the rest one by one by the C
    library's expf; then every exp times the float of 1 / sum."""
    x = x.astype(np.float32)
    shifted = x - x.max(axis=-1, keepdims=True)
    n = x.shape[-1]
    whole = n - n % SOFTMAX_LANES
    exps = np.empty_like(shifted)
    exps[..., :whole] = expf(shifted[..., :whole])
    exps[..., whole:] = libm_expf(shifted[..., whole:])
    total = np.zeros(x.shape[:-1], np.float64)
    for start in range(0, whole, SOFTMAX_LANES):
        total += _reduce16(exps[..., start:start + SOFTMAX_LANES]).astype(np.float64)
    for i in range(whole, n):
        total += exps[..., i].astype(np.float64)
    return exps * (1.0 / total).astype(np.float32)[..., None]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.float32(1) / (np.float32(1) + libm_expf(-x))


def sum_rows(x: np.ndarray) -> np.ndarray:
    """ggml_vec_sum_f32: the values added in double, in order, rounded once."""
    total = np.zeros(x.shape[:-1], np.float64)
    for i in range(x.shape[-1]):
        total += x[..., i].astype(np.float64)
    return total.astype(np.float32)[..., None]


def top_k(x: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` of each row's descending argsort, as ggml's CPU argsort orders it (libstdc++'s
    std::sort of the indices by ``x[a] > x[b]``). Rows without equal values sort the same whatever
    the algorithm; rows with ties are sorted by the emulated std::sort."""
    order = np.argsort(-x, axis=-1, kind="stable").astype(np.int32)
    ranked = np.take_along_axis(x, order, axis=-1)
    for row in np.flatnonzero((ranked[:, 1:] == ranked[:, :-1]).any(axis=1)):
        order[row] = std_sort(list(range(x.shape[1])), lambda a, b, v=x[row]: v[a] > v[b])
    return np.ascontiguousarray(order[:, :k])


_THRESHOLD = 16  # libstdc++'s _S_threshold


def std_sort(items: list[int], less: Callable[[int, int], bool]) -> list[int]:
    """libstdc++'s std::sort (introsort: median-of-three quicksort down to runs of 16, heapsort past
    the depth limit, then insertion sort), step for step, so that equal elements end where it puts them."""
    a = list(items)
    if len(a) > 1:
        _introsort_loop(a, 0, len(a), 2 * (len(a).bit_length() - 1), less)
        _final_insertion_sort(a, 0, len(a), less)
    return a


def _introsort_loop(a: list[int], first: int, last: int, depth: int, less) -> None:
    while last - first > _THRESHOLD:
        if depth == 0:
            _heap_sort(a, first, last, less)
            return
        depth -= 1
        mid = first + (last - first) // 2
        _move_median_to_first(a, first, first + 1, mid, last - 1, less)
        cut = _unguarded_partition(a, first + 1, last, first, less)
        _introsort_loop(a, cut, last, depth, less)
        last = cut


def _move_median_to_first(a, result, i, j, k, less) -> None:
    if less(a[i], a[j]):
        if less(a[j], a[k]):
            a[result], a[j] = a[j], a[result]
        elif less(a[i], a[k]):
            a[result], a[k] = a[k], a[result]
        else:
            a[result], a[i] = a[i], a[result]
    elif less(a[i], a[k]):
        a[result], a[i] = a[i], a[result]
    elif less(a[j], a[k]):
        a[result], a[k] = a[k], a[result]
    else:
        a[result], a[j] = a[j], a[result]


def _unguarded_partition(a, first, last, pivot, less) -> int:
    while True:
        while less(a[first], a[pivot]):
            first += 1
        last -= 1
        while less(a[pivot], a[last]):
            last -= 1
        if not first < last:
            return first
        a[first], a[last] = a[last], a[first]
        first += 1


def _final_insertion_sort(a, first, last, less) -> None:
    if last - first > _THRESHOLD:
        _insertion_sort(a, first, first + _THRESHOLD, less)
        for i in range(first + _THRESHOLD, last):
            _unguarded_linear_insert(a, i, less)
    else:
        _insertion_sort(a, first, last, less)


def _insertion_sort(a, first, last, less) -> None:
    for i in range(first + 1, last):
        if less(a[i], a[first]):
            value = a[i]
            a[first + 1:i + 1] = a[first:i]
            a[first] = value
        else:
            _unguarded_linear_insert(a, i, less)


def _unguarded_linear_insert(a, last, less) -> None:
    value = a[last]
    while less(value, a[last - 1]):
        a[last] = a[last - 1]
        last -= 1
    a[last] = value


def _heap_sort(a, first, last, less) -> None:
    """std::partial_sort(first, last, last): make_heap, then sort_heap (the __adjust_heap of both)."""
    n = last - first
    for parent in range((n - 2) // 2, -1, -1):
        _adjust_heap(a, first, parent, n, a[first + parent], less)
    while n > 1:
        n -= 1
        value = a[first + n]
        a[first + n] = a[first]
        _adjust_heap(a, first, 0, n, value, less)


def _adjust_heap(a, first, hole, length, value, less) -> None:
    top = hole
    child = hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if less(a[first + child], a[first + child - 1]):
            child -= 1
        a[first + hole] = a[first + child]
        hole = child
    if length % 2 == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        a[first + hole] = a[first + child - 1]
        hole = child - 1
    parent = (hole - 1) // 2
    while hole > top and less(a[first + parent], value):
        a[first + hole] = a[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    a[first + hole] = value


def mul_mat_id(expert_matrix: Callable[[int], np.ndarray], x: np.ndarray, ids: np.ndarray,
               n_out: int) -> np.ndarray:
    """out[t, j] = expert ids[t, j]'s product with x[t, j] (x[t, 0] when x has one slot);
    ``expert_matrix(e)`` multiplies the rows routed to expert ``e`` as ``kernels.mul_mat`` would."""
    n, k = ids.shape
    out = np.zeros((n, k, n_out), np.float32)
    for expert in np.unique(ids):
        tokens, slots = np.nonzero(ids == expert)
        rows = x[tokens, slots if x.shape[1] > 1 else 0]
        out[tokens, slots] = expert_matrix(int(expert))(rows)
    return out


def mask_groups(x: np.ndarray, groups: np.ndarray, size: int) -> np.ndarray:
    """x with every group of ``size`` values that a row's ``groups`` do not list set to -inf."""
    grouped = x.reshape(x.shape[0], -1, size)
    kept = np.zeros(grouped.shape[:2], bool)
    np.put_along_axis(kept, groups, True, axis=1)
    return np.where(kept[:, :, None], grouped, np.float32(-np.inf)).reshape(x.shape)


def weighted_sum(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """x[:, 0] * w[:, 0] + x[:, 1] * w[:, 1] + ..., each product rounded, added in order."""
    total = x[:, 0] * weights[:, 0, None]
    for j in range(1, x.shape[1]):
        total = total + x[:, j] * weights[:, j, None]
    return total
