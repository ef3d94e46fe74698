"""Bars for a run: several symbols aligned on one timeline, checked before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from quant.errors import ValidationError
from quant.strategies.base import FloatArray

COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass
class MarketData:
    """``columns[symbol][name]`` are float64 arrays on ``ts`` (NaN where the symbol has no bar)."""

    ts: npt.NDArray[np.datetime64]
    symbols: tuple[str, ...]
    columns: dict[str, dict[str, FloatArray]]

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_frames(
        cls,
        frames: Mapping[str, pd.DataFrame] | pd.DataFrame,
        *,
        symbols: tuple[str, ...] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> MarketData:
        """Check and align per-symbol frames (UTC DatetimeIndex; open/high/low/close/volume).

        ``start``/``end`` keep bars with start <= ts <= end. Every problem names its symbol.
        """
        if isinstance(frames, pd.DataFrame):
            if not symbols or len(symbols) != 1:
                raise ValidationError("a single frame needs exactly one symbol")
            frames = {symbols[0]: frames}
        symbols = tuple(symbols or frames)
        missing = [s for s in symbols if s not in frames]
        if missing:
            raise ValidationError(f"no bars given for {', '.join(missing)}")
        cleaned = {s: _checked(s, frames[s], start, end) for s in symbols}
        empty = [s for s, f in cleaned.items() if f.empty]
        if empty:
            span = _span(start, end)
            raise ValidationError(f"no bars for {', '.join(empty)}{span}")
        index = pd.DatetimeIndex(cleaned[symbols[0]].index)
        for symbol in symbols[1:]:
            index = index.union(pd.DatetimeIndex(cleaned[symbol].index))
        columns: dict[str, dict[str, FloatArray]] = {}
        for symbol in symbols:
            frame = cleaned[symbol]
            aligned = frame if frame.index.equals(index) else frame.reindex(index)
            columns[symbol] = {
                name: np.ascontiguousarray(aligned[name].to_numpy(dtype=np.float64))
                for name in COLUMNS
            }
            for array in columns[symbol].values():
                array.flags.writeable = False  # strategies get views they cannot edit
        # keep the index's own resolution: second-resolution indexes reach past the year 2262
        ts = index.tz_convert("UTC").tz_localize(None).to_numpy()
        return cls(ts=ts, symbols=symbols, columns=columns)

    def has_bar(self, symbol: str) -> npt.NDArray[np.bool_]:
        return ~np.isnan(self.columns[symbol]["close"])

    def close_filled(self, symbol: str) -> FloatArray:
        """Close carried forward over missing bars; 0.0 before the symbol's first bar."""
        raw = self.columns[symbol]["close"]
        if not np.isnan(raw).any():
            return raw
        close = pd.Series(raw).ffill().fillna(0.0)
        return np.asarray(close.to_numpy(), dtype=np.float64)


def _span(start: datetime | None, end: datetime | None) -> str:
    if start and end:
        return f" between {start:%Y-%m-%d} and {end:%Y-%m-%d}"
    if start:
        return f" from {start:%Y-%m-%d}"
    if end:
        return f" until {end:%Y-%m-%d}"
    return ""


def _checked(
    symbol: str, frame: pd.DataFrame, start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    lowered = {str(c).lower(): c for c in frame.columns}
    absent = [c for c in COLUMNS if c not in lowered]
    if absent:
        raise ValidationError(f"{symbol}: bars lack the column(s) {', '.join(absent)}")
    frame = frame[[lowered[c] for c in COLUMNS]].set_axis(list(COLUMNS), axis=1)
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise ValidationError(f"{symbol}: bars need a DatetimeIndex of bar start times")
    index = frame.index
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    try:
        frame = frame.set_axis(index, axis=0).astype("float64")
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{symbol}: bars hold a value that is not a number ({exc})") from None
    if not index.is_monotonic_increasing:
        frame = frame.sort_index()
    if frame.index.has_duplicates:
        first = frame.index[frame.index.duplicated()][0]
        raise ValidationError(f"{symbol}: two bars share the timestamp {first.isoformat()}")
    if start is not None:
        frame = frame[frame.index >= pd.Timestamp(start)]
    if end is not None:
        frame = frame[frame.index <= pd.Timestamp(end)]
    values = frame.to_numpy()
    if np.isnan(values).any():
        row, col = np.argwhere(np.isnan(values))[0]
        raise ValidationError(
            f"{symbol}: {COLUMNS[col]} is missing at {frame.index[row].isoformat()}"
        )
    if np.isinf(values).any():
        row, col = np.argwhere(np.isinf(values))[0]
        raise ValidationError(
            f"{symbol}: {COLUMNS[col]} is infinite at {frame.index[row].isoformat()}"
        )
    prices = values[:, :4]
    bad = (prices <= 0).any(axis=1) | (values[:, 4] < 0)
    bad |= (values[:, 1] < values[:, [0, 3, 2]].max(axis=1)) | (
        values[:, 2] > values[:, [0, 3]].min(axis=1)
    )
    if bad.any():
        row = int(np.argmax(bad))
        raise ValidationError(
            f"{symbol}: bar at {frame.index[row].isoformat()} is not a valid OHLCV bar "
            "(prices must be > 0, low <= open/close <= high, volume >= 0)"
        )
    return frame
