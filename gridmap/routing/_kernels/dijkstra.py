"""Compiled kernels (numba) for the dispatch searches.

Why hand-written: the k-nearest-*teams* search must stop as soon as the k best are certain, must start
from points part-way along edges, and must attach moving teams to the graph without rebuilding it.
scipy.sparse.csgraph, igraph and networkx only offer whole-graph or fixed-radius Dijkstra from nodes
(measured in scripts/bench_dispatch.py: a fixed-radius scipy search costs 3-10x more), so the search
loop is written here, once, and compiled by numba (a well-kept LLVM JIT; results cached on disk).

All arrays are preallocated by the caller and reused between queries; ``stamp`` arrays make a reset
O(1): a value is valid only where ``stamp[i] == cur``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

INF = np.inf


@nb.njit(cache=True, inline="always")
def _push(heap_keys, heap_nodes, size, key, val):
    """Push ``val`` at ``key`` onto a binary min-heap of ``size`` entries; returns the new size."""
    i = size
    heap_keys[i] = key
    heap_nodes[i] = val
    while i > 0:
        parent = (i - 1) >> 1
        if heap_keys[parent] <= heap_keys[i]:
            break
        heap_keys[parent], heap_keys[i] = heap_keys[i], heap_keys[parent]
        heap_nodes[parent], heap_nodes[i] = heap_nodes[i], heap_nodes[parent]
        i = parent
    return size + 1


@nb.njit(cache=True, inline="always")
def _pop(heap_keys, heap_nodes, size):
    """Pop the smallest key: returns (key, value, new size)."""
    key = heap_keys[0]
    val = heap_nodes[0]
    size -= 1
    heap_keys[0] = heap_keys[size]
    heap_nodes[0] = heap_nodes[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and heap_keys[left + 1] < heap_keys[left]:
            child = left + 1
        if heap_keys[i] <= heap_keys[child]:
            break
        heap_keys[child], heap_keys[i] = heap_keys[i], heap_keys[child]
        heap_nodes[child], heap_nodes[i] = heap_nodes[i], heap_nodes[child]
        i = child
    return key, val, size


@nb.njit(cache=True, inline="always")
def _seed(nodes, costs, dist, stamp, cur, pred_arc, pred_node, heap_keys, heap_nodes):
    """Start a search at ``nodes`` with ``costs`` (the cheaper of duplicates); returns the heap's size.

    ``pred_node`` may be None: a search that keeps only the arc (or edge) it reached a node by."""
    size = 0
    for i in range(nodes.shape[0]):
        s = nodes[i]
        c = costs[i]
        if stamp[s] != cur or c < dist[s]:
            stamp[s] = cur
            dist[s] = c
            pred_arc[s] = -1
            if pred_node is not None:
                pred_node[s] = -1
            size = _push(heap_keys, heap_nodes, size, c, s)
    return size


@nb.njit(cache=True)
def eligible(status, pos_at, skills, n, now, stale_after_s, required, out):
    """out[:n] = available (status 0), fresh and (without ``required``) any skill or one of ``required``'s.
    Returns how many are eligible. The team index's per-query mask in one pass (numpy takes three)."""
    count = 0
    for i in range(n):
        ok = status[i] == 0 and (now - pos_at[i]) <= stale_after_s and (required == 0 or (skills[i] & required) != 0)
        out[i] = ok
        count += ok
    return count


@nb.njit(cache=True, inline="always")
def _offer(team, eta, k, top_team, top_eta):
    """Keep the k best (top_eta ascending): put ``team`` in at ``eta``, or move it up if it is there."""
    pos = -1
    for j in range(k):
        if top_team[j] == team:
            pos = j
            break
    if pos < 0 and eta < top_eta[k - 1]:
        pos = k - 1
        top_team[pos] = team
    if pos >= 0:
        top_eta[pos] = eta
        while pos > 0 and top_eta[pos - 1] > top_eta[pos]:
            top_eta[pos - 1], top_eta[pos] = top_eta[pos], top_eta[pos - 1]
            top_team[pos - 1], top_team[pos] = top_team[pos], top_team[pos - 1]
            pos -= 1


@nb.njit(cache=True)
def nearest_teams(
    rindptr, radj, radj_edge, radj_w,
    seed_nodes, seed_costs,
    head, slot_next, slot_cost,
    team_ok, k, horizon,
    dist, stamp, pred_edge, cur,
    heap_keys, heap_nodes,
    team_eta, team_slot, team_stamp,
    top_team, top_eta,
    bad_team, max_bad,
):
    """Reverse Dijkstra from a target to the k nearest eligible teams.

    Nodes are settled in order of travel time *to* the target. A team slot hanging at node v (a team
    on an edge leading into v) gets ETA ``dist[v] + slot_cost``; since ``slot_cost >= 0``, once the
    k-th best ETA is <= the time being settled, no unseen team can beat it and the search stops.
    Ineligible teams met on the way (busy, stale, wrong skill) are listed in ``bad_team`` so the
    caller can say why a nearer team was passed over.

    Returns (number of eligible teams found <= k, number of bad teams, nodes settled).
    """
    size = _seed(seed_nodes, seed_costs, dist, stamp, cur, pred_edge, None, heap_keys, heap_nodes)
    for j in range(k):
        top_team[j] = -1
        top_eta[j] = INF
    n_bad = 0
    settled = 0
    while size > 0:
        d, v, size = _pop(heap_keys, heap_nodes, size)
        if d > dist[v]:
            continue  # stale heap entry
        if d > horizon or top_eta[k - 1] <= d:
            break
        settled += 1
        s = head[v]
        while s >= 0:
            team = s >> 1
            eta = d + slot_cost[s]
            if team_stamp[team] != cur or eta < team_eta[team]:
                first = team_stamp[team] != cur
                team_stamp[team] = cur
                team_eta[team] = eta
                team_slot[team] = s
                if team_ok[team]:
                    _offer(team, eta, k, top_team, top_eta)
                elif first and n_bad < max_bad:
                    bad_team[n_bad] = team
                    n_bad += 1
            s = slot_next[s]
        # Relax v's arcs (the heap holds at most seeds + edges entries: it never fills). Each search here and
        # in ch.py writes this loop out: as a shared numba function (inlined or not) it made this search 1.45x
        # slower and the hierarchy's query ~6 % (in-process A/B, docs/benchmarks.md, 2026-12-06).
        for idx in range(rindptr[v], rindptr[v + 1]):
            u = radj[idx]
            new_d = d + radj_w[idx]
            if stamp[u] != cur or new_d < dist[u]:
                stamp[u] = cur
                dist[u] = new_d
                pred_edge[u] = radj_edge[idx]
                size = _push(heap_keys, heap_nodes, size, new_d, u)
    found = 0
    for j in range(k):
        if top_team[j] >= 0:
            found += 1
    return found, n_bad, settled


@nb.njit(cache=True)
def multi_source_times(indptr, adj, adj_w, seed_nodes, seed_costs, horizon, dist, heap_keys, heap_nodes):
    """Plain multi-source Dijkstra over the whole graph up to ``horizon`` (dist must be +inf on entry).

    With the *reverse* graph and the facilities as seeds this gives, for every node, the travel time
    to the nearest facility: the many-to-one batch used for coverage.
    """
    size = 0
    for i in range(len(seed_nodes)):
        s = seed_nodes[i]
        if seed_costs[i] < dist[s]:
            dist[s] = seed_costs[i]
            size = _push(heap_keys, heap_nodes, size, seed_costs[i], s)
    while size > 0:
        d, v, size = _pop(heap_keys, heap_nodes, size)
        if d > dist[v] or d > horizon:
            continue
        for idx in range(indptr[v], indptr[v + 1]):
            u = adj[idx]
            new_d = d + adj_w[idx]
            if new_d < dist[u]:
                dist[u] = new_d
                size = _push(heap_keys, heap_nodes, size, new_d, u)
    return dist
