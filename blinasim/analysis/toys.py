"""Registered toy models: functions of named parameters with known answers.

A spec uses one with ``toy: NAME`` instead of ``scenario: NAME``. A toy returns series
like a simulation does (``time_h`` and observables), so read-outs, sampling, Dask
execution, files and figures take the same code path as the simulator; only the model
call differs. Each toy is deterministic for a given seed.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Toy:
    name: str
    doc: str
    defaults: dict[str, float]
    observables: tuple[str, ...]
    function: Callable[[Mapping[str, float], int], dict[str, np.ndarray]]


def _noise(values: Mapping[str, float], seed: int, size: int = 1) -> np.ndarray:
    sd = values["noise_sd"]
    return np.random.default_rng(seed).normal(0.0, sd, size) if sd > 0 else np.zeros(size)


def _ishigami(v: Mapping[str, float], seed: int) -> dict[str, np.ndarray]:
    x1, x2, x3 = v["x1"], v["x2"], v["x3"]
    y = math.sin(x1) + v["a"] * math.sin(x2) ** 2 + v["b"] * x3 ** 4 * math.sin(x1)
    return {"time_h": np.zeros(1), "y": np.array([y]) + _noise(v, seed)}


def _linear(v: Mapping[str, float], seed: int) -> dict[str, np.ndarray]:
    y = sum(v[f"c{i}"] * v[f"x{i}"] for i in range(1, 5))
    return {"time_h": np.zeros(1), "y": np.array([y]) + _noise(v, seed)}


def _decay(v: Mapping[str, float], seed: int) -> dict[str, np.ndarray]:
    t = np.arange(0.0, 10.5, 1.0)
    y = v["amplitude"] * np.exp(-v["rate"] * t)
    return {"time_h": t, "y": y + _noise(v, seed, t.size)}


TOYS = {toy.name: toy for toy in (
    Toy("ishigami", "Ishigami function y = sin x1 + a sin^2 x2 + b x3^4 sin x1 (+ normal noise "
        "noise_sd), at time 0; with x_i uniform on [-pi, pi], a = 7, b = 0.1: first-order "
        "Sobol indices 0.314, 0.442, 0 and total indices 0.558, 0.442, 0.244",
        {"x1": 0.0, "x2": 0.0, "x3": 0.0, "a": 7.0, "b": 0.1, "noise_sd": 0.0}, ("y",), _ishigami),
    Toy("linear", "y = c1 x1 + c2 x2 + c3 x3 + c4 x4 (+ normal noise noise_sd), at time 0; "
        "for independent inputs S_i = c_i^2 var x_i / sum_j c_j^2 var x_j",
        {"x1": 0.0, "x2": 0.0, "x3": 0.0, "x4": 0.0, "c1": 4.0, "c2": 2.0, "c3": 1.0, "c4": 0.0,
         "noise_sd": 0.0}, ("y",), _linear),
    Toy("decay", "y(t) = amplitude exp(-rate t) + normal noise (sd noise_sd, independent at each "
        "time), at t = 0, 1, ..., 10 h",
        {"amplitude": 100.0, "rate": 0.3, "noise_sd": 2.0}, ("y",), _decay),
)}
