"""Slow plain-Python reference implementations of the Cython kernels (test oracles only).

Each oracle is written from the rule the kernel documents, not from the kernel's loops:
brute force where the kernel is clever (all pairs instead of a grid), plain Python floats
(IEEE doubles, like C) and numpy float32 where the kernel stores float32. Random draws come
from blinasim.rng.oracle_bits / oracle_uniform, the Python model of counter_rng.pxi.
"""
from __future__ import annotations

import math

import numpy as np

from blinasim.rng import Purpose, oracle_bits, oracle_uniform

KIND_CD8, KIND_CD4, KIND_B, KIND_BLAST = 0, 1, 2, 3
T_KINDS = (KIND_CD8, KIND_CD4)
TARGET_KINDS = (KIND_B, KIND_BLAST)
TWO_POW_53 = 9007199254740992.0
NO_PAIRING = -1
HEADINGS = 2048


# --------------------------------------------------------------------------- motility

def oracle_wrap(v: float, size: float) -> float:
    """v folded into [0, size)."""
    if 0.0 <= v < size:
        return v
    v = v - size * float(math.floor(v / size))
    return 0.0 if v >= size else v


def oracle_move(x, y, ux, uy, kind, comp, partner, alive, ids, step_um, width, height,
                p_turn, seed, step, table):
    """One motility step; returns new (x, y, ux, uy) arrays (inputs untouched).

    A live free cell with a positive step length draws oracle_bits(seed, id, step, TURN, 0);
    it takes a new heading (table entry at the low 11 bits) if it has none yet or the top 53
    bits as a uniform are below p_turn, then moves by d along its (float32) heading.
    """
    hx, hy = table
    x, y = np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)
    ux, uy = np.array(ux, dtype=np.float32), np.array(uy, dtype=np.float32)
    for i in range(len(x)):
        if not alive[i] or partner[i] >= 0:
            continue
        c = int(comp[i])
        d = float(step_um[c, int(kind[i])])
        if d <= 0.0:
            continue
        bits = oracle_bits(seed, int(ids[i]), step, int(Purpose.TURN), 0)
        u = (bits >> 11) / TWO_POW_53
        if (ux[i] == 0.0 and uy[i] == 0.0) or u < p_turn:
            h = bits % HEADINGS
            ux[i] = np.float32(hx[h])
            uy[i] = np.float32(hy[h])
        x[i] = oracle_wrap(float(x[i]) + d * float(ux[i]), float(width[c]))
        y[i] = oracle_wrap(float(y[i]) + d * float(uy[i]), float(height[c]))
    return x, y, ux, uy


# --------------------------------------------------------------------------- bridging

def oracle_capture(copies: float, area_um2: float, k2d: float) -> float:
    density = copies / area_um2
    return density / (density + k2d) if density > 0.0 else 0.0


def oracle_bridges(cd19, cd3, occ19, occ3, contact_fraction, area_um2, k2d19, k2d3) -> float:
    """Expected bridges: drug on the target's CD19 capturing the T cell's CD3, plus the
    reverse, over the fraction of each surface in the contact."""
    return contact_fraction * (cd19 * occ19 * oracle_capture(cd3, area_um2, k2d3)
                               + cd3 * occ3 * oracle_capture(cd19, area_um2, k2d19))


def oracle_trigger(mean: float, needed: int) -> float:
    """P(N >= needed) for N ~ Poisson(mean).

    Each term e^-B B^k / k! is formed in log space (no underflow of e^-B for large means);
    the upper tail is summed directly when mean < needed (exact for tiny
    means, where 1 - P(N < needed) would cancel), otherwise one minus the lower terms.
    """
    if mean <= 0.0:
        return 0.0 if needed > 0 else 1.0

    def term(k: int) -> float:
        return math.exp(-mean + k * math.log(mean) - math.lgamma(k + 1))

    if mean < needed:
        terms, k = [], needed
        while True:
            t = term(k)
            terms.append(t)
            k += 1
            if t == 0.0 or (k > needed + 5 and t < 1e-20 * math.fsum(terms)):
                break
        return math.fsum(terms)
    return max(0.0, 1.0 - math.fsum(term(k) for k in range(needed)))


def oracle_form_synapses(x, y, kind, comp, alive, ids, cd19, cd3, partner, width, height,
                         occ19, occ3, radius, contact_fraction, area_um2, k2d19, k2d3,
                         needed, seed, step, stats=None, side_by_comp=None):
    """Brute-force pairing rule; returns (new partner array, sorted new T rows).

    Compartments whose entry in side_by_comp is NO_PAIRING (-1) form no synapse (which side
    the kernel bins elsewhere cannot change the result, so it is not used otherwise).
    Every (T cell, target) pair in the same compartment, both alive and free, target with
    CD19, within `radius` under the periodic minimum-image distance is a contact. Its draw
    u = oracle_uniform(seed, T id, step, BRIDGE, target id) makes it a candidate if u < p,
    p = P(Poisson(B) >= needed), `needed` one number for every T cell or one per row. Each T cell picks its smallest (u, target id); each target
    goes to the smallest (u, T id) among the T cells that picked it. `stats`, if given, is
    a dict that receives the numbers of contacts, candidates and picks.
    """
    contacts = candidates = 0
    partner = np.array(partner, dtype=np.int32)
    free = (np.asarray(alive) == 1) & (partner < 0)
    t_rows = np.flatnonzero(free & np.isin(kind, T_KINDS))
    g_rows = np.flatnonzero(free & np.isin(kind, TARGET_KINDS))
    pick: dict[int, tuple[float, int, int]] = {}  # T row -> (u, target id, target row)
    r2 = radius * radius
    for t in t_rows:
        c = int(comp[t])
        if side_by_comp is not None and int(side_by_comp[c]) == NO_PAIRING:
            continue
        same = g_rows[np.asarray(comp)[g_rows] == c]
        w, h = float(width[c]), float(height[c])
        for g in same:
            dx = abs(float(x[g]) - float(x[t]))
            dy = abs(float(y[g]) - float(y[t]))
            dx, dy = min(dx, w - dx), min(dy, h - dy)
            if dx * dx + dy * dy > r2 or float(cd19[g]) <= 0.0:
                continue
            contacts += 1
            p = oracle_trigger(oracle_bridges(float(cd19[g]), float(cd3[t]), float(occ19[c]),
                                              float(occ3[c]), contact_fraction, area_um2,
                                              k2d19, k2d3), int(np.broadcast_to(needed, len(x))[t]))
            u = oracle_uniform(seed, int(ids[t]), step, int(Purpose.BRIDGE), int(ids[g]))
            if u < p:
                candidates += 1
                cand = (u, int(ids[g]), int(g))
                if int(t) not in pick or cand[:2] < pick[int(t)][:2]:
                    pick[int(t)] = cand
    winner: dict[int, tuple[float, int, int]] = {}  # target row -> (u, T id, T row)
    for t, (u, _gid, g) in pick.items():
        claim = (u, int(ids[t]), t)
        if g not in winner or claim[:2] < winner[g][:2]:
            winner[g] = claim
    if stats is not None:
        stats.update(contacts=contacts, candidates=candidates, picks=len(pick))
    new_t = sorted(t for (_u, _tid, t) in winner.values())
    for g, (_u, _tid, t) in winner.items():
        partner[t] = g
        partner[g] = t
    return partner, np.array(new_t, dtype=np.int64)


# --------------------------------------------------------------------------- lysis

def oracle_deliver_hits(cells: dict, step: int, p: dict):
    """One lysis step over a dict of column arrays (modified in place); returns kills.

    For each T cell (row order) in a synapse: bring its granule store up to date (armed
    cells gain refill per step since max(last update, armed_step), capped). A regulatory T
    cell stops there: it holds its synapse but never hits. Any other T cell delivers a hit
    if the synapse is old enough, its hit timer allows and it holds a hit's worth of
    granules; the hit spends the granules, resets the timer and lands when
    oracle_uniform(seed, T id, step, HIT) < success_by_comp[comp of T] *
    (1 - kill_loss X) (1 - max_pd1 X PD-L1 of the target), X the T cell's exhaustion. A
    landed hit on a target whose previous hit is max_gap or more steps old restarts its
    count first; the hits_to_kill-th hit kills it and frees both cells. A synapse that has
    lasted max_synapse steps without a kill dissolves, and so does that of a non-regulatory
    T cell that is not armed (armed_step < 0 or > step) once it has lasted unarmed_synapse.

    Columns regulatory, comp, exhaustion, pdl1, ids and parameters success_by_comp,
    kill_loss, max_pd1, unarmed_synapse, seed default to the neutral values (every hit
    lands, no early release).
    """
    f32 = np.float32
    n = len(cells["partner"])
    regulatory = cells.get("regulatory", np.zeros(n, np.uint8))
    comp = cells.get("comp", np.zeros(n, np.int8))
    exhaustion = cells.get("exhaustion", np.zeros(n, np.float32))
    pdl1 = cells.get("pdl1", np.zeros(n, np.float32))
    ids = cells.get("ids", np.arange(n, dtype=np.int64))
    success_by_comp = p.get("success_by_comp", [1.0] * (int(np.max(comp, initial=0)) + 1))
    kill_loss, max_pd1, seed = p.get("kill_loss", 0.0), p.get("max_pd1", 0.0), p.get("seed", 1)
    unarmed_synapse = p.get("unarmed_synapse", 10**9)
    killers, victims = [], []
    for i in range(n):
        j = int(cells["partner"][i])
        if j < 0 or cells["kind"][i] not in T_KINDS:
            continue
        armed_step = int(cells["armed_step"][i])
        if armed_step >= 0:
            since = step - max(int(cells["granule_step"][i]), armed_step)
            if since > 0:
                grown = f32(cells["granules"][i]) + f32(p["refill"]) * f32(since)
                cells["granules"][i] = min(f32(p["capacity"]), grown)
        cells["granule_step"][i] = step
        ready = (not regulatory[i]
                 and step - cells["synapse_step"][i] >= p["delay"]
                 and step >= cells["next_hit_step"][i]
                 and cells["granules"][i] >= f32(p["units"]))
        if ready:
            cells["granules"][i] = f32(cells["granules"][i]) - f32(p["units"])
            cells["next_hit_step"][i] = step + p["interval"]
            x = float(exhaustion[i])
            success = (float(success_by_comp[int(comp[i])]) * (1.0 - kill_loss * x)
                       * (1.0 - max_pd1 * x * float(pdl1[j])))
            lands = oracle_uniform(seed, int(ids[i]), step, int(Purpose.HIT)) < success
            if lands:
                gap = step - cells["last_hit_step"][j]
                if cells["hits"][j] > 0 and gap >= p["max_gap"]:
                    cells["hits"][j] = 0  # repaired
                cells["hits"][j] += 1
                cells["last_hit_step"][j] = step
                if cells["hits"][j] >= p["hits_to_kill"]:
                    cells["alive"][j] = 0
                    cells["partner"][i] = cells["partner"][j] = -1
                    cells["kills"][i] += 1
                    killers.append(i)
                    victims.append(j)
                    continue
        lasted = step - cells["synapse_step"][i]
        unarmed = not regulatory[i] and (armed_step < 0 or armed_step > step)
        if lasted >= p["max_synapse"] or (unarmed and lasted >= unarmed_synapse):
            cells["partner"][i] = cells["partner"][j] = -1
    return np.array(killers, dtype=np.int64), np.array(victims, dtype=np.int64)


# --------------------------------------------------------------------------- compaction

def oracle_compact(columns: dict, alive, partner) -> dict:
    """The live rows of every column in row order, partner rows remapped (new arrays).

    Raises RuntimeError when a live cell is bound to a dead partner.
    """
    keep = np.asarray(alive).astype(bool)
    partner = np.asarray(partner)
    linked = keep & (partner >= 0)
    if np.any(~keep[partner[linked]]):
        raise RuntimeError("a live cell is bound to a dead partner")
    new_row = np.cumsum(keep) - 1
    out = {name: np.asarray(col)[keep].copy() for name, col in columns.items()}
    moved = out["partner"]
    moved[moved >= 0] = new_row[moved[moved >= 0]]
    return out
