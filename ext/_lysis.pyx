# cython: language_level=3
"""Granule hits delivered across synapses, multi-hit kills and synapse dissolution.

Each synapse joins exactly one T cell and one target, so the order in which synapses are
advanced cannot change results, and they can be advanced in parallel; the kill events come
out in row order of the killers whatever the thread count.
"""
import numpy as np
from cython.parallel cimport prange
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint64_t

include "counter_rng.pxi"

cdef enum:
    KIND_CD4 = 1


cdef struct Synapses:
    # the columns and parameters deliver_hits reads and writes, as raw pointers
    int32_t* partner
    const int8_t* kind
    uint8_t* alive
    float* granules
    int32_t* granule_step
    const int32_t* armed_step
    const int32_t* synapse_step
    int32_t* next_hit_step
    int16_t* hits
    int32_t* last_hit_step
    int32_t* kills
    const uint8_t* regulatory
    const int8_t* comp
    const float* exhaustion
    const float* pdl1
    const int64_t* ids
    const double* hit_success_by_comp
    double exhaustion_kill_loss
    double max_pd1_inhibition
    int step
    int first_hit_delay_steps
    int hit_interval_steps
    int hits_to_kill
    int max_hit_gap_steps
    float units_per_hit
    float capacity_units
    float refill_units_per_step
    int max_synapse_steps
    int unarmed_synapse_steps
    uint64_t hit_key


def deliver_hits(int32_t[::1] partner, const int8_t[::1] kind, uint8_t[::1] alive,
                 float[::1] granules, int32_t[::1] granule_step,
                 const int32_t[::1] armed_step, const int32_t[::1] synapse_step,
                 int32_t[::1] next_hit_step, int16_t[::1] hits,
                 int32_t[::1] last_hit_step, int32_t[::1] kills,
                 const uint8_t[::1] regulatory, const int8_t[::1] comp,
                 const float[::1] exhaustion, const float[::1] pdl1,
                 const int64_t[::1] ids, const double[::1] hit_success_by_comp,
                 double exhaustion_kill_loss, double max_pd1_inhibition,
                 int step, int first_hit_delay_steps, int hit_interval_steps,
                 int hits_to_kill, int max_hit_gap_steps, float units_per_hit,
                 float capacity_units, float refill_units_per_step,
                 int max_synapse_steps, int unarmed_synapse_steps, uint64_t seed,
                 int threads=1):
    """Advance every synapse by one step; returns (killer_rows, target_rows) of kills, in
    row order of the killers.

    Granules refill lazily: an armed T cell (armed_step >= 0) gains refill_units_per_step
    for every step since its last update (counted from armed_step), up to capacity_units. A
    hit spends granules and lands with probability
        hit_success_by_comp[comp] * (1 - exhaustion_kill_loss * X)
                                  * (1 - max_pd1_inhibition * X * PDL1_target),
    X the T cell's exhaustion (its PD-1 level). An effector T cell that is not armed yet
    (armed_step < 0 or in the future) leaves its target after unarmed_synapse_steps; other
    synapses that have not killed dissolve after max_synapse_steps. Regulatory T cells hold
    synapses but deliver no hits. With several threads each takes one contiguous block of
    rows and lists its kills at the start of its block; the blocks' lists are joined in row
    order.
    """
    cdef Py_ssize_t n = partner.shape[0], chunks = max(1, min(threads, n)), ch
    cdef Synapses sy
    killers_arr = np.empty(n, dtype=np.int32)
    victims_arr = np.empty(n, dtype=np.int32)
    made_arr = np.zeros(chunks, dtype=np.int64)
    cdef int32_t[::1] killers = killers_arr, victims = victims_arr
    cdef int64_t[::1] made = made_arr
    if n == 0:
        return killers_arr.astype(np.int64), victims_arr.astype(np.int64)
    sy = Synapses(&partner[0], &kind[0], &alive[0], &granules[0], &granule_step[0],
                  &armed_step[0], &synapse_step[0], &next_hit_step[0], &hits[0],
                  &last_hit_step[0], &kills[0], &regulatory[0], &comp[0], &exhaustion[0],
                  &pdl1[0], &ids[0], &hit_success_by_comp[0], exhaustion_kill_loss,
                  max_pd1_inhibition, step, first_hit_delay_steps, hit_interval_steps,
                  hits_to_kill, max_hit_gap_steps, units_per_hit, capacity_units,
                  refill_units_per_step, max_synapse_steps, unarmed_synapse_steps,
                  stream_key(seed, step, PURPOSE_HIT))
    for ch in prange(chunks, nogil=True, num_threads=chunks, schedule="static", chunksize=1):
        made[ch] = _advance(&sy, ch * n // chunks, (ch + 1) * n // chunks,
                            &killers[ch * n // chunks], &victims[ch * n // chunks])
    starts = [ch * n // chunks for ch in range(chunks)]
    return (np.concatenate([killers_arr[lo:lo + m] for lo, m in zip(starts, made_arr)]).astype(np.int64),
            np.concatenate([victims_arr[lo:lo + m] for lo, m in zip(starts, made_arr)]).astype(np.int64))


cdef Py_ssize_t _advance(const Synapses* s, Py_ssize_t lo, Py_ssize_t hi, int32_t* killers,
                         int32_t* victims) noexcept nogil:
    """The synapses of T rows lo..hi-1 (each touches only its own two rows); lists the
    kills in row order and returns how many."""
    cdef Py_ssize_t i, made = 0
    cdef int32_t j
    cdef int since
    cdef double x, success
    for i in range(lo, hi):
        j = s.partner[i]
        if j < 0 or s.kind[i] > KIND_CD4:
            continue
        if s.armed_step[i] >= 0:
            since = s.step - max(s.granule_step[i], s.armed_step[i])
            if since > 0:
                s.granules[i] = min(s.capacity_units,
                                    s.granules[i] + s.refill_units_per_step * since)
        s.granule_step[i] = s.step
        if not s.regulatory[i] and s.step - s.synapse_step[i] >= s.first_hit_delay_steps \
                and s.step >= s.next_hit_step[i] and s.granules[i] >= s.units_per_hit:
            s.granules[i] -= s.units_per_hit
            s.next_hit_step[i] = s.step + s.hit_interval_steps
            x = s.exhaustion[i]
            success = s.hit_success_by_comp[s.comp[i]] * (1.0 - s.exhaustion_kill_loss * x) \
                * (1.0 - s.max_pd1_inhibition * x * s.pdl1[j])
            if keyed_uniform(s.hit_key, <uint64_t>s.ids[i], 0) < success:
                if s.hits[j] > 0 and s.step - s.last_hit_step[j] >= s.max_hit_gap_steps:
                    s.hits[j] = 0  # the target repaired the earlier damage
                s.hits[j] += 1
                s.last_hit_step[j] = s.step
                if s.hits[j] >= s.hits_to_kill:
                    s.alive[j] = 0
                    s.partner[i] = -1
                    s.partner[j] = -1
                    s.kills[i] += 1
                    killers[made] = <int32_t>i
                    victims[made] = j
                    made += 1
                    continue
        if s.step - s.synapse_step[i] >= s.max_synapse_steps or (
                not s.regulatory[i] and (s.armed_step[i] < 0 or s.armed_step[i] > s.step)
                and s.step - s.synapse_step[i] >= s.unarmed_synapse_steps):
            s.partner[i] = -1
            s.partner[j] = -1
    return made
