"""The simulated physics: charging power, conversion efficiency, standby draw and meter error.

docs/simulator.md explains each choice; in short, per minute t, for a vehicle i on meter M:
- DC power is the vehicle's peak below 80 % SoC and tapers linearly to 10 % of peak at 100 %:
  f = p / p_max = 1, or max(0.1, (100 − SoC) / 20); DC(i,t) = p_max · f / 60 kWh.
- Conversion efficiency falls in the taper: η(f) = η_nominal − k · (1 − f), k per vehicle
  (0.02–0.05, so 1.8–4.5 points lower at 10 % power); the vehicle draws AC(i,t) = DC(i,t) / η(f).
- The meter's standby s(M,t) = s(M) · U(0.8, 1.2) never stops, charging or not, and the meter
  reports (s(M,t) + Σᵢ AC(i,t)) · (1 + b(M) + e(M,t)): a class-1 meter, |b + e| ≤ 1 %.
"""

from __future__ import annotations

TAPER_SOC = 80.0  # SoC where power starts to taper
MIN_POWER = 0.1  # power fraction at 100 % SoC
TAPER_K = (0.02, 0.05)  # efficiency points lost between full and zero power, per vehicle

# Nominal efficiencies, with a gap: the taper costs a healthy vehicle at most 0.9 · 0.05 = 0.045,
# so no healthy vehicle falls below FAULTY_BELOW, and few fall below 0.87.
HEALTHY = (0.90, 0.95)
FAULTY = (0.70, 0.82)
FAULTY_BELOW = 0.85  # truth's `faulty`: energy-weighted efficiency below this

STANDBY_KWH = (0.0003, 0.0015)  # a meter's mean standby per minute (18–90 W)
STANDBY_JITTER = 0.2  # each minute's standby is the mean × U(1 − 0.2, 1 + 0.2)

# Class 1 (IEC 62053-21): within ±1 %. Split into a per-meter systematic bias b ~ U(±0.4 %) and
# a per-reading error e ~ U(±0.6 %), so |b + e| ≤ METER_CLASS for every reading.
METER_BIAS = 0.004
METER_NOISE = 0.006
METER_CLASS = METER_BIAS + METER_NOISE


def power_fraction(soc: float) -> float:
    """p / p_max at this SoC."""
    if soc < TAPER_SOC:
        return 1.0
    return max(MIN_POWER, (100.0 - soc) / (100.0 - TAPER_SOC))


def efficiency(nominal: float, taper: float, fraction: float) -> float:
    """η at power fraction `fraction`: nominal at full power, `taper` lower at zero power."""
    return nominal - taper * (1.0 - fraction)
