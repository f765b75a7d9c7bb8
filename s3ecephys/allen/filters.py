"""AllenSDK's unit quality filters: the default bounds and how keyword arguments select them.

AllenSDK 2.16.2 (``allensdk.brain_observatory.ecephys.get_unit_filter_value`` and
``EcephysProjectCache._get_units``) keeps a unit when

    amplitude_cutoff <= amplitude_cutoff_maximum      (default 0.1)
    presence_ratio   >= presence_ratio_minimum        (default 0.95, not the 0.9 of the tutorials)
    isi_violations   <= isi_violations_maximum        (default 0.5)

A bound left out takes its default; a bound given as ``None`` means "no bound" and becomes
``+inf`` / ``-inf``. The comparisons are plain float comparisons, so a unit whose metric is NaN
fails them and is dropped even when every bound is infinite. Any other keyword is ignored here.

The session object of AllenSDK filters its NWB units with ``bound or inf`` instead (so a bound of
``0`` means "no bound" there); that quirk belongs to the session code, not to these tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "UNIT_FILTER_DEFAULTS",
    "UnitFilterBounds",
    "quality_metrics_mask",
    "resolve_unit_filter_bounds",
]

# keyword -> (default bound, the bound that ``None`` stands for)
UNIT_FILTER_DEFAULTS: Mapping[str, tuple[float, float]] = {
    "amplitude_cutoff_maximum": (0.1, math.inf),
    "presence_ratio_minimum": (0.95, -math.inf),
    "isi_violations_maximum": (0.5, math.inf),
}


@dataclass(frozen=True)
class UnitFilterBounds:
    """The three quality-metric bounds a units table is filtered with."""

    amplitude_cutoff_maximum: float = 0.1
    presence_ratio_minimum: float = 0.95
    isi_violations_maximum: float = 0.5


def resolve_unit_filter_bounds(**unit_filter_kwargs: Any) -> UnitFilterBounds:
    """The bounds that AllenSDK would use for these keyword arguments.

    A missing keyword takes its default, ``None`` takes the unbounded value (``±inf``); other
    keywords (``filter_out_of_brain_units``, typos …) are accepted and ignored, as AllenSDK does.
    """
    chosen: dict[str, Any] = {}
    for keyword, (default, unbounded) in UNIT_FILTER_DEFAULTS.items():
        value = unit_filter_kwargs.get(keyword, default)
        chosen[keyword] = unbounded if value is None else value
    return UnitFilterBounds(**chosen)


def quality_metrics_mask(units: pd.DataFrame, bounds: UnitFilterBounds) -> np.ndarray:
    """Boolean array: which rows of ``units`` pass the three bounds (NaN metrics fail)."""
    passes = (
        (units["amplitude_cutoff"] <= bounds.amplitude_cutoff_maximum)
        & (units["presence_ratio"] >= bounds.presence_ratio_minimum)
        & (units["isi_violations"] <= bounds.isi_violations_maximum)
    )
    return passes.to_numpy(dtype=bool)
