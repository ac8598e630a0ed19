"""Virtual-patient cohorts: many seeded patients, clinical endpoints, run on Dask (docs/cohorts.md)."""
