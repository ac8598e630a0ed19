"""Global sensitivity analysis (`blinasim sensitivity`) and likelihood-free calibration
(`blinasim calibrate`) over any scenario field, on the same Dask execution as cohorts.

- :mod:`.spec`: what both spec files share: the model (a scenario or a registered toy),
  `set`, parameters with ranges or distributions, read-outs; one-line FILE:LINE errors.
- :mod:`.simulate`: one simulation of a parameter point and its read-outs (what a Dask
  worker runs).
- :mod:`.toys`: small registered models with known answers, for tests and examples.
- :mod:`.sensitivity`: SALib Morris and Sobol, the HDF5 file, resume, the command.
- :mod:`.calibration`: pyABC ABC-SMC with a seeded Dask sampler, resume, the command.
- :mod:`.figures`: the figures of both.
"""
