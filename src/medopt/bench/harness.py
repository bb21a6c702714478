"""Interleaved timing of benchmark arms and bootstrap confidence intervals for their medians and ratios.

Why interleaved: arms timed one after the other see different machine states (other jobs, thermal state, caches), so
their ratio mixes the effect with the drift. Round-robin with the order rotated each repeat spreads the drift over
all arms, and repeat ``i`` of every arm ran at about the same time, which the paired ratio CI uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

Arm = Callable[[], "float | None"]


def round_robin(names: Sequence[str], repeats: int, *, rotate: bool = True) -> Iterator[tuple[int, str]]:
    """``(repeat, name)`` in the interleaved order: every name once per repeat, repeat ``r`` starting at name
    ``r mod n`` when ``rotate`` (so no arm always runs first, right after a warm cache or a cold one)."""
    names = list(names)
    for r in range(repeats):
        start = r % len(names) if rotate and names else 0
        for name in names[start:] + names[:start]:
            yield r, name


def interleaved(arms: dict[str, Arm], *, repeats: int = 5, warmup: int = 1, rotate: bool = True
                ) -> dict[str, list[float]]:
    """Run the arms round-robin and return the raw samples per arm (in the arms' order).

    ``warmup`` untimed rounds come first. Repeat ``r`` starts at arm ``r mod n`` when ``rotate``. An arm returns the
    value it measured, or None to be timed with ``time.perf_counter()`` around the call (seconds).
    """
    if not arms:
        raise ValueError("interleaved() needs at least one arm")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats} warmup={warmup}")
    names = list(arms)
    for _ in range(warmup):
        for name in names:
            arms[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _, name in round_robin(names, repeats, rotate=rotate):
        start = time.perf_counter()
        value = arms[name]()
        elapsed = time.perf_counter() - start
        samples[name].append(float(elapsed if value is None else value))
    return samples


def _array(samples: Sequence[float], what: str) -> Any:
    import numpy as np

    a = np.asarray(samples, dtype=float).ravel()
    if a.size == 0:
        raise ValueError(f"{what}: no samples")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what}: samples must be finite")
    return a


def _interval(point: float, boot: Any, confidence: float, n: int) -> dict[str, float]:
    """Percentile interval of the bootstrap statistics, widened to contain the point estimate."""
    import numpy as np

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = (1 - confidence) / 2
    low, high = (float(v) for v in np.quantile(boot, [alpha, 1 - alpha]))
    return {"median": float(point), "ci_low": min(low, float(point)), "ci_high": max(high, float(point)), "n": n}


def median_ci(samples: Sequence[float], *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
              ) -> dict[str, float]:
    """Median with a bootstrap percentile CI over the samples, plus min and max for the spread."""
    import numpy as np

    a = _array(samples, "median_ci")
    idx = np.random.default_rng(seed).integers(0, a.size, size=(n_boot, a.size))
    out = _interval(float(np.median(a)), np.median(a[idx], axis=1), confidence, int(a.size))
    out.update(min=float(a.min()), max=float(a.max()))
    return out


def _paired_boot(num: Any, den: Any, paired: bool, n_boot: int, seed: int) -> tuple[Any, Any]:
    """Bootstrap medians of both sample sets: one shared index draw when paired, independent draws otherwise."""
    import numpy as np

    if paired and num.size != den.size:
        raise ValueError(f"paired samples need equal lengths, got {num.size} and {den.size}")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, num.size, size=(n_boot, num.size))
    j = i if paired else rng.integers(0, den.size, size=(n_boot, den.size))
    return np.median(num[i], axis=1), np.median(den[j], axis=1)


def ratio_ci(numerator_samples: Sequence[float], denominator_samples: Sequence[float], *, paired: bool = True,
             confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Ratio of medians with a bootstrap CI; paired resamples repeat indices jointly (repeat i ran at one time)."""
    import numpy as np

    num, den = _array(numerator_samples, "ratio_ci numerator"), _array(denominator_samples, "ratio_ci denominator")
    if np.median(den) == 0:
        raise ValueError("ratio_ci: the denominator's median is 0")
    bn, bd = _paired_boot(num, den, paired, n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = bn / bd
    boot = boot[np.isfinite(boot)]
    return _interval(float(np.median(num) / np.median(den)), boot, confidence, int(min(num.size, den.size)))


def difference_ci(a_samples: Sequence[float], b_samples: Sequence[float], *, paired: bool = True,
                  confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Difference of medians (a - b) with a bootstrap CI, resampled like ``ratio_ci`` (an overhead, for example)."""
    import numpy as np

    a, b = _array(a_samples, "difference_ci a"), _array(b_samples, "difference_ci b")
    ba, bb = _paired_boot(a, b, paired, n_boot, seed)
    return _interval(float(np.median(a) - np.median(b)), ba - bb, confidence, int(min(a.size, b.size)))


def summarize(samples: dict[str, list[float]], *, baseline: str, higher_is_better: bool, paired: bool = True,
              confidence: float = 0.95) -> dict[str, Any]:
    """Per arm median with CI and raw samples; per other arm its ratio to the baseline, oriented so > 1 is better.

    With ``higher_is_better`` (throughput) the ratio is arm / baseline; otherwise (time) baseline / arm, a speed-up.
    """
    if baseline not in samples:
        raise ValueError(f"baseline {baseline!r} is not one of the arms {sorted(samples)}")
    arms = {name: {**median_ci(values, confidence=confidence), "samples": [float(v) for v in values]}
            for name, values in samples.items()}
    ratios = {}
    for name, values in samples.items():
        if name == baseline:
            continue
        num, den = (values, samples[baseline]) if higher_is_better else (samples[baseline], values)
        ratios[name] = ratio_ci(num, den, paired=paired, confidence=confidence)
    return {"baseline": baseline, "higher_is_better": higher_is_better, "confidence": confidence,
            "arms": arms, "ratios_vs_baseline": ratios}
