"""The clinic's read-outs of the simulated patient: marrow morphology, MRD by flow and NGS, response.

Each assay counts leukaemic cells among the cells it analyses: of n cells drawn from a marrow
whose true blast fraction is f, Binomial(n, f) are blasts (drawn exactly, one keyed uniform
per analysed cell). Morphology reports the blast percentage of `morphology_cells`; flow and
NGS call MRD positive when they see at least their limit of detection in events and report
events / cells analysed, else 0 (negative).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blinasim import rng
from blinasim.rng import Purpose
from blinasim.schema import Patient

CHUNK_CELLS = 1_000_000
"""Analysed cells drawn per batch (bounds the memory of an assay)."""

CR_BLAST_PERCENT = 5.0
"""Complete remission: < 5% marrow blasts (BLINCYTO label; NCCN), no circulating blasts, no
extramedullary or CNS disease."""
CIRCULATING_BLASTS_PER_UL = 1.0
"""Blasts in blood at or above this are 'circulating blasts' (assumption: seen on a blood film)."""
DETECTABLE_EXTRAMEDULLARY_CELLS = 1e9
"""An extramedullary mass of ~1 cm3 (~1e9 cells) is found on imaging (assumption)."""
CNS3_BLASTS_PER_UL = 5.0
"""CNS disease: >= 5 leukocytes/uL of CSF with blasts (CNS-3, NCCN ALL guideline)."""

RESPONSES = ("no_response", "complete_remission", "relapse")
"""Response codes of the assessments table: not in CR; in CR; relapsed after a CR."""


def analysed_count(seed: int, step: int, purpose: Purpose, cells: int, fraction: float) -> int:
    """Leukaemic cells among `cells` analysed cells of a marrow with blast fraction `fraction`."""
    fraction = min(max(fraction, 0.0), 1.0)
    count = 0
    for start in range(0, cells, CHUNK_CELLS):
        keys = np.arange(start, min(cells, start + CHUNK_CELLS), dtype=np.int64)
        count += int(np.count_nonzero(rng.uniforms(seed, keys, step, purpose) < fraction))
    return count


@dataclass(frozen=True)
class MarrowAssays:
    blast_percent: float   # morphology, % of counted nucleated cells
    flow_mrd: float        # events / cells analysed when positive, else 0
    ngs_mrd: float


def assay_marrow(p: Patient, fraction: float, seed: int, step: int) -> MarrowAssays:
    """Morphology, flow and NGS of one marrow aspirate with true blast fraction `fraction`."""
    def mrd(cells: float, lod: int, purpose: Purpose) -> float:
        n = int(round(cells))
        events = analysed_count(seed, step, purpose, n, fraction)
        return events / n if events >= lod else 0.0
    blasts = analysed_count(seed, step, Purpose.ASSAY_MORPHOLOGY, p.morphology_cells, fraction)
    return MarrowAssays(100.0 * blasts / p.morphology_cells,
                        mrd(p.flow_cells, p.flow_lod_events, Purpose.ASSAY_FLOW),
                        mrd(p.ngs_cells, p.ngs_lod_events, Purpose.ASSAY_NGS))


def in_remission(assays: MarrowAssays, blood_blasts_per_ul: float, extramedullary_cells: float,
                 csf_blasts_per_ul: float = 0.0) -> bool:
    """The blast criteria of CR (count recovery, which separates CR, CRh and CRi, is not modelled)."""
    return (assays.blast_percent < CR_BLAST_PERCENT and blood_blasts_per_ul < CIRCULATING_BLASTS_PER_UL
            and extramedullary_cells < DETECTABLE_EXTRAMEDULLARY_CELLS and csf_blasts_per_ul < CNS3_BLASTS_PER_UL)


def response(remission: bool, had_remission: bool) -> str:
    """Response at an assessment, given whether a CR was seen at an earlier one."""
    if remission:
        return "complete_remission"
    return "relapse" if had_remission else "no_response"
