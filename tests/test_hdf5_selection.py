"""Index expressions become regular per-axis selections; applying them gives numpy's result."""

from __future__ import annotations

import numpy as np
import pytest

from s3ecephys.hdf5.selection import regular, select

VALUES = np.arange(6 * 7 * 5).reshape(6, 7, 5)


@pytest.mark.parametrize(
    "expression",
    [
        (),
        Ellipsis,
        1,
        -1,
        (2, 3, 4),
        np.s_[1:4],
        np.s_[1:4, ::2],
        np.s_[::-1],
        np.s_[5:0:-2, 1],
        np.s_[..., 2],
        np.s_[1, ..., 1:3],
        np.s_[[0, 2, 5]],
        np.s_[:, [6, 0, 3, 3]],
        np.s_[..., [-1, 0]],
        np.s_[np.array([True, False, True, False, False, True])],
        np.s_[2:2],
        np.s_[:, []],
        np.s_[np.int64(3), np.int32(-2)],
    ],
)
def test_selection_applied_to_an_array_matches_numpy(expression):
    selection = select(expression, VALUES.shape)
    result = selection.apply(VALUES)
    expected = VALUES[expression]
    assert np.array_equal(result, expected)
    assert np.shape(result) == selection.result_shape == np.shape(expected)


def test_axes_hold_ascending_coordinates_and_the_order_is_restored_afterwards():
    selection = select(np.s_[::-2, [6, 1, 1, 2]], (5, 7))
    assert selection.axes[0] == slice(0, 5, 2)
    assert np.array_equal(selection.axes[1], [1, 2, 6])
    assert selection.counts == (3, 3)
    assert selection.result_shape == (3, 4)


def test_integer_indices_drop_their_axis_and_a_full_integer_index_gives_a_scalar():
    selection = select((2, -1), (4, 3))
    assert selection.drop == (True, True)
    value = selection.apply(np.arange(12).reshape(4, 3))
    assert value == 8 and np.ndim(value) == 0


def test_evenly_spaced_index_lists_become_slices():
    assert regular(np.array([3, 5, 7])) == slice(3, 8, 2)
    assert regular(np.array([4])) == slice(4, 5, 1)
    assert isinstance(regular(np.array([1, 2, 4])), np.ndarray)


def test_a_block_selection_shifts_into_dataset_coordinates():
    block = select(np.s_[1:3, [0, 1, 3]], (4, 4)).shifted((10, 20), (100, 100))
    assert block.axes[0] == slice(11, 13, 1)
    assert np.array_equal(block.axes[1], [20, 21, 23])
    assert block.bounds() == ((11, 13), (20, 24))


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        (np.s_[6], IndexError),
        (np.s_[-7], IndexError),
        (np.s_[0, 0, 0, 0], IndexError),
        (np.s_[..., 0, ...], IndexError),
        (np.s_[[0, 9]], IndexError),
        (np.s_[[0, 1], [0, 1]], TypeError),
        (np.s_[None], TypeError),
        (np.s_[[0.5]], TypeError),
        (np.s_[np.array([True, False])], IndexError),
    ],
)
def test_invalid_expressions_raise_like_h5py(expression, error):
    with pytest.raises(error):
        select(expression, VALUES.shape)
