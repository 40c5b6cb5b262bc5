"""When ``@champion`` moves: the new champion's mean over seeds must beat the incumbent's by more
than the seed noise, not by any margin.

Two tests (spec ``champions.promote_test``), one-sided in the study's direction:

- ``welch`` (default): Welch's t-test over the seeds of each side
  (``scipy.stats.ttest_ind(equal_var=False)``); the alias moves when p < ``promote_alpha``;
- ``k_se``: the difference of the means must exceed ``promote_k`` standard errors of that
  difference (``sqrt(s1^2/n1 + s2^2/n2)``).

A side with one seed has no spread of its own. Then both sides take the study's seed-noise
estimate (``hpo_core.analysis.noise``: probes, champion retraining, or ``analysis.noise_sd``) as
their standard deviation, and ``welch`` becomes a z-test on it. Without any estimate the
difference cannot be told from seed noise and the incumbent keeps the alias, saying why: a wrong
move replaces a model people serve, a missed one waits for the next sweep (retrain with
``champions.seeds >= 2``, add ``decision.noise_probe``, or give ``analysis.noise_sd``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["PromotionRule", "PromotionTest", "promotion_test"]

Test = Literal["welch", "k_se"]


@dataclass(frozen=True)
class PromotionRule:
    test: Test = "welch"
    alpha: float = 0.05  # welch: the one-sided p-value must be below this
    k: float = 2.0  # k_se: the difference must exceed this many standard errors
    noise_sd: float | None = None  # the study's seed noise, for a side with one seed
    noise_source: str | None = None  # where that estimate comes from (probe, champions, spec)

    @classmethod
    def from_spec(cls, spec: Any, noise: Any = None) -> PromotionRule:
        """The rule of a spec's ``champions:`` section, with a ``NoiseEstimate`` (or None)."""
        c = spec.champions
        return cls(
            c.promote_test,
            c.promote_alpha,
            c.promote_k,
            noise_sd=None if noise is None else float(noise.sd),
            noise_source=None if noise is None else str(noise.source),
        )


@dataclass(frozen=True)
class PromotionTest:
    test: str  # welch | k_se | z (welch on the noise estimate) | none (nothing to compare)
    new_mean: float
    new_n: int
    incumbent_mean: float | None
    incumbent_n: int
    statistic: float | None  # t (welch), z, or the difference in standard errors (k_se)
    p: float | None  # one-sided; None for k_se
    needed: str  # what the difference had to pass, in words
    passed: bool
    reason: str  # one line
    new_sd: float | None = None  # the spread over seeds of each side (None: fewer than 2 seeds)
    incumbent_sd: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def tags(self) -> dict[str, str]:
        """The test as MLflow tags (``sweepflow.promotion.*``)."""
        return {
            f"sweepflow.promotion.{k}": ""
            if v is None
            else (f"{v:.6g}" if isinstance(v, float) else str(v))
            for k, v in self.as_dict().items()
        }


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def promotion_test(
    new: Sequence[float], incumbent: Sequence[float], *, maximize: bool, rule: PromotionRule
) -> PromotionTest:
    """Whether ``new`` (the candidate's scores over seeds) beats ``incumbent``'s by more than
    the noise; ``passed`` says the alias should move."""
    from scipy import stats

    a, b = _finite(new), _finite(incumbent)
    m1 = statistics.fmean(a) if a else math.nan
    m2 = statistics.fmean(b) if b else math.nan
    sign = 1.0 if maximize else -1.0
    diff = sign * (m1 - m2)  # > 0: the candidate is better

    def result(
        test: str, stat: float | None, p: float | None, needed: str, ok: bool, why: str
    ) -> PromotionTest:
        sd1 = statistics.stdev(a) if len(a) >= 2 else None
        sd2 = statistics.stdev(b) if len(b) >= 2 else None
        return PromotionTest(
            test, m1, len(a), m2 if b else None, len(b), stat, p, needed, ok, why, sd1, sd2
        )

    if not a or not b:
        return result("none", None, None, "-", False, "no finite score to compare")
    if not diff > 0:
        why = "ties the incumbent" if diff == 0 else "does not beat the incumbent"
        return result("none", None, None, "a better mean", False, why)
    if len(a) >= 2 and len(b) >= 2:
        s1, s2 = statistics.stdev(a), statistics.stdev(b)
        se = math.sqrt(s1**2 / len(a) + s2**2 / len(b))
        spread = f"seeds (sd {s1:.3g} vs {s2:.3g})"
    elif rule.noise_sd is not None:
        se = rule.noise_sd * math.sqrt(1 / len(a) + 1 / len(b))
        spread = f"noise sd {rule.noise_sd:.3g} ({rule.noise_source or 'given'})"
    else:
        return result(
            "none",
            None,
            None,
            "a spread over seeds",
            False,
            f"one seed on a side ({len(a)} vs {len(b)}) and no seed-noise estimate: the "
            "difference cannot be told from noise; retrain with champions.seeds >= 2, add "
            "decision.noise_probe or give analysis.noise_sd",
        )
    if rule.test == "k_se":
        stat = diff / se if se > 0 else math.inf
        ok = stat > rule.k
        needed = f"more than {rule.k:g} standard errors ({rule.k * se:.3g}; spread from {spread})"
        return result("k_se", stat, None, needed, ok, f"{stat:.3g} standard errors")
    if len(a) >= 2 and len(b) >= 2:
        alternative = "greater" if maximize else "less"
        t = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
        stat, p = float(t.statistic), float(t.pvalue)
        if se == 0:  # no spread on either side and a difference: as clear as it gets
            stat, p = math.inf, 0.0
        test = "welch"
    else:
        stat = diff / se if se > 0 else math.inf
        p, test = float(stats.norm.sf(stat)), "z"
    ok = math.isfinite(p) and p < rule.alpha
    needed = f"one-sided p < {rule.alpha:g} (spread from {spread})"
    return result(test, stat, p, needed, ok, f"p={p:.3g}")
