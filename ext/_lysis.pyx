# cython: language_level=3
"""Granule hits delivered across synapses, multi-hit kills and synapse dissolution.

Serial over T cells in row order: each synapse joins exactly one T cell and one target, so
the order cannot change results, and the kill events come out in a deterministic order.
"""
import numpy as np
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint64_t

include "counter_rng.pxi"

cdef enum:
    KIND_CD4 = 1


def deliver_hits(int32_t[::1] partner, const int8_t[::1] kind, uint8_t[::1] alive,
                 float[::1] granules, int32_t[::1] granule_step,
                 const int32_t[::1] activated_step, const int32_t[::1] synapse_step,
                 int32_t[::1] next_hit_step, int16_t[::1] hits,
                 int32_t[::1] last_hit_step, int32_t[::1] kills,
                 const uint8_t[::1] regulatory, const int8_t[::1] comp,
                 const int16_t[::1] engagements, const float[::1] pdl1,
                 const int64_t[::1] ids, const double[::1] hit_success_by_comp,
                 double pd1_half_engagements, double max_pd1_inhibition,
                 int step, int first_hit_delay_steps, int hit_interval_steps,
                 int hits_to_kill, int max_hit_gap_steps, float units_per_hit,
                 float capacity_units, float refill_units_per_step,
                 int max_synapse_steps, uint64_t seed):
    """Advance every synapse by one step; returns (killer_rows, target_rows) of kills.

    Granules refill lazily: an activated T cell gains refill_units_per_step for every step
    since its last update (counted from activation), up to capacity_units. A hit spends
    granules and lands with probability
        hit_success_by_comp[comp] * (1 - max_pd1_inhibition * PD1 * PDL1_target),
    PD1 = engagements / (engagements + pd1_half_engagements). Regulatory T cells hold
    synapses but deliver no hits.
    """
    cdef Py_ssize_t n = partner.shape[0], i
    cdef int32_t j
    cdef int since
    cdef double pd1, success
    cdef uint64_t hit_key = stream_key(seed, step, PURPOSE_HIT)
    cdef list killers = [], victims = []
    for i in range(n):
        j = partner[i]
        if j < 0 or kind[i] > KIND_CD4:
            continue
        if activated_step[i] >= 0:
            since = step - max(granule_step[i], activated_step[i])
            if since > 0:
                granules[i] = min(capacity_units, granules[i] + refill_units_per_step * since)
        granule_step[i] = step
        if not regulatory[i] and step - synapse_step[i] >= first_hit_delay_steps \
                and step >= next_hit_step[i] and granules[i] >= units_per_hit:
            granules[i] -= units_per_hit
            next_hit_step[i] = step + hit_interval_steps
            pd1 = engagements[i] / (engagements[i] + pd1_half_engagements)
            success = hit_success_by_comp[comp[i]] * (1.0 - max_pd1_inhibition * pd1 * pdl1[j])
            if keyed_uniform(hit_key, <uint64_t>ids[i], 0) < success:
                if hits[j] > 0 and step - last_hit_step[j] >= max_hit_gap_steps:
                    hits[j] = 0  # the target repaired the earlier damage
                hits[j] += 1
                last_hit_step[j] = step
                if hits[j] >= hits_to_kill:
                    alive[j] = 0
                    partner[i] = -1
                    partner[j] = -1
                    kills[i] += 1
                    killers.append(i)
                    victims.append(j)
                    continue
        if step - synapse_step[i] >= max_synapse_steps:
            partner[i] = -1
            partner[j] = -1
    return np.asarray(killers, dtype=np.int64), np.asarray(victims, dtype=np.int64)
