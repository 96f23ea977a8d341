"""Compiled kernels (numba) of the contraction hierarchy: building it, searching it, unpacking its paths.

Why hand-written: a contraction hierarchy (Geisberger et al. 2008) is what lets "the k nearest teams" be
answered without settling every node within the k-th team's ETA. When few teams are eligible and they
are spread thin, the k-th one is 15-30 minutes away and a plain Dijkstra must settle ~20,000 nodes of a
250,000-node city however it is written. With the hierarchy, each team's position is searched once,
upwards, when it moves (its "bucket" entries), and an event's query is one small upward search that
reads those buckets (the many-to-many scheme of Knopp et al. 2007), stopping as soon as the k best
are certain. The Python routing libraries at hand don't do this: scipy/igraph/networkx have no
hierarchy; pandana's CH answers whole-network aggregations, not one k-nearest query with moving
targets; RoutingKit's CCH bindings take integer weights, rebuild their search per call and were
measured for this question at 8-22 ms (issue 3). So the hierarchy is written here, once, compiled.

Conventions: node indexes are the road graph's; a CH arc is either an original road edge (``orig >= 0``)
or a shortcut ``tail -> mid -> head`` made of two CH arcs (``c1``, ``c2``). After contraction every
node has its *upward* arcs: ``fwd`` (v -> w, rank w > rank v) and ``bwd`` (w -> v, rank w > rank v,
stored at v). A shortest path s -> t is up from s along ``fwd`` and down to t, i.e. up from t along
``bwd``; the two upward searches meet at the path's highest node.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from gridmap.routing._kernels.dijkstra import (  # the same heap, seeding and top-k list as the Dijkstra
    _offer,
    _pop,
    _push,
    _seed,
)

INF = np.inf


# -- the dynamic graph during contraction ------------------------------------------------------------------
# Each node has an out-list and an in-list of (neighbour, weight, CH arc) in a shared pool; a list that
# outgrows its block moves to the pool's end with twice the room. Contracted nodes are removed from their
# neighbours' lists, so a witness search only ever sees the remaining graph.
@nb.njit(cache=True)
def _grow1(a, need):
    n = max(need, 2 * a.shape[0])
    b = np.empty(n, dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@nb.njit(cache=True)
def _list_remove(to, w, arc, start, length, node, x):
    """Remove neighbour x from node's list (swap with the last); no-op if absent."""
    s = start[node]
    n = length[node]
    for i in range(s, s + n):
        if to[i] == x:
            last = s + n - 1
            to[i] = to[last]
            w[i] = w[last]
            arc[i] = arc[last]
            length[node] = n - 1
            return


@nb.njit(cache=True)
def _append(to, w, arc, start, length, cap, end, node, x, wt, a):
    """Append (x, wt, a) to node's list; a full list first moves to the pool's end with twice the room
    (the pool grows when it must). Returns the (possibly new) pool arrays and the pool's end."""
    if length[node] == cap[node]:
        newcap = 2 * cap[node] + 2
        if end + newcap > to.shape[0]:
            to = _grow1(to, end + newcap)
            w = _grow1(w, end + newcap)
            arc = _grow1(arc, end + newcap)
        s0 = start[node]
        for t in range(length[node]):
            to[end + t] = to[s0 + t]
            w[end + t] = w[s0 + t]
            arc[end + t] = arc[s0 + t]
        start[node] = end
        cap[node] = newcap
        end += newcap
    k = start[node] + length[node]
    to[k] = x
    w[k] = wt
    arc[k] = a
    length[node] += 1
    return to, w, arc, end


@nb.njit(cache=True)
def _shortcut_buffers(n):
    """Room for ``n`` shortcuts: (tail, head, weight, first arc, second arc)."""
    return (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.float64), np.empty(n, np.int64),
            np.empty(n, np.int64))


@nb.njit(cache=True)
def _list_find(to, start, length, node, x):
    s = start[node]
    for i in range(s, s + length[node]):
        if to[i] == x:
            return i
    return -1


@nb.njit(cache=True)
def _witness(out_to, out_w, out_start, out_len, src, skip, limit, targets, n_targets, max_settle,
             dist, stamp, cur, heap_keys, heap_nodes):
    """Dijkstra from ``src`` in the remaining graph without node ``skip``, up to cost ``limit`` or
    ``max_settle`` settled nodes or until every target is settled. ``dist`` is valid where stamp == cur."""
    stamp[src] = cur
    dist[src] = 0.0
    size = _push(heap_keys, heap_nodes, 0, 0.0, src)
    settled = 0
    left = n_targets
    while size > 0:
        d, v, size = _pop(heap_keys, heap_nodes, size)
        if d > dist[v]:
            continue
        if d > limit:
            break
        for j in range(n_targets):
            if targets[j] == v:
                left -= 1
                break
        if left <= 0:
            break
        settled += 1
        if settled > max_settle:
            break
        s = out_start[v]
        for i in range(s, s + out_len[v]):
            u = out_to[i]
            if u == skip:
                continue
            new_d = d + out_w[i]
            if new_d <= limit and (stamp[u] != cur or new_d < dist[u]):
                stamp[u] = cur
                dist[u] = new_d
                if size >= heap_keys.shape[0]:
                    return  # heap full: stop early (more shortcuts, never a wrong one)
                size = _push(heap_keys, heap_nodes, size, new_d, u)


@nb.njit(cache=True)
def _shortcuts(v, out_to, out_w, out_start, out_len, in_to, in_w, in_start, in_len, out_arc, in_arc,
               max_settle, dist, stamp, cur, heap_keys, heap_nodes, targets,
               sc_tail, sc_head, sc_w, sc_first, sc_second):
    """The shortcuts u -> x that contracting v needs: one per in-neighbour u and out-neighbour x (u != x)
    with no witness path u ~> x avoiding v at most as long as u -> v -> x. Writes them to the ``sc_*``
    buffers (room for in_len[v] * out_len[v]: the CH arcs u -> v and v -> x they stand for are
    ``sc_first`` and ``sc_second``) and returns (count, stamp counter after the searches)."""
    out_first = out_start[v]
    n_out = out_len[v]
    n_shortcuts = 0
    if n_out == 0 or in_len[v] == 0:
        return 0, cur
    max_out = 0.0
    for j in range(n_out):
        targets[j] = out_to[out_first + j]
        if out_w[out_first + j] > max_out:
            max_out = out_w[out_first + j]
    in_first = in_start[v]
    for i in range(in_first, in_first + in_len[v]):
        u = in_to[i]
        to_v = in_w[i]
        cur += 1
        _witness(out_to, out_w, out_start, out_len, u, v, to_v + max_out, targets, n_out, max_settle,
                 dist, stamp, cur, heap_keys, heap_nodes)
        for j in range(out_first, out_first + n_out):
            x = out_to[j]
            if x == u:
                continue
            via = to_v + out_w[j]
            if stamp[x] == cur and dist[x] <= via:
                continue  # a witness path: no shortcut needed
            sc_tail[n_shortcuts] = u
            sc_head[n_shortcuts] = x
            sc_w[n_shortcuts] = via
            sc_first[n_shortcuts] = in_arc[i]
            sc_second[n_shortcuts] = out_arc[j]
            n_shortcuts += 1
    return n_shortcuts, cur


@nb.njit(cache=True)
def _priority(v, n_shortcuts, hops, out_len, in_len, arc_hops, out_arc, out_start, in_arc, in_start, depth):
    """2·(shortcuts added / arcs removed) + (original edges added / removed) + depth: lower goes first."""
    removed = out_len[v] + in_len[v]
    removed_hops = 0
    for i in range(out_start[v], out_start[v] + out_len[v]):
        removed_hops += arc_hops[out_arc[i]]
    for i in range(in_start[v], in_start[v] + in_len[v]):
        removed_hops += arc_hops[in_arc[i]]
    edge_quotient = n_shortcuts / removed if removed > 0 else 0.0
    hop_quotient = hops / removed_hops if removed_hops > 0 else 0.0
    return 2.0 * edge_quotient + hop_quotient + depth[v]


@nb.njit(cache=True)
def _room(v, out_len, in_len, targets, sc_tail, sc_head, sc_w, sc_first, sc_second):
    """The witness targets and shortcut buffers, grown if contracting v could need more room."""
    need = out_len[v]
    if need > targets.shape[0]:
        targets = np.empty(2 * need, np.int64)
    if in_len[v] * need > sc_tail.shape[0]:
        sc_tail, sc_head, sc_w, sc_first, sc_second = _shortcut_buffers(2 * in_len[v] * need)
    return targets, sc_tail, sc_head, sc_w, sc_first, sc_second


@nb.njit(cache=True)
def _estimate(v, out_to, out_w, out_start, out_len, in_to, in_w, in_start, in_len, arc_hops, out_arc, in_arc,
              sim_settle, depth, dist, stamp, cur, heap_keys, heap_nodes,
              targets, sc_tail, sc_head, sc_w, sc_first, sc_second):
    """The priority of contracting v now: its shortcuts simulated (witness searches limited to ``sim_settle``).

    Returns (priority, stamp counter, and the scratch arrays, grown if they had to be)."""
    targets, sc_tail, sc_head, sc_w, sc_first, sc_second = _room(v, out_len, in_len, targets, sc_tail, sc_head,
                                                                 sc_w, sc_first, sc_second)
    n_shortcuts, cur = _shortcuts(v, out_to, out_w, out_start, out_len, in_to, in_w, in_start, in_len, out_arc,
                                  in_arc, sim_settle, dist, stamp, cur, heap_keys, heap_nodes, targets,
                                  sc_tail, sc_head, sc_w, sc_first, sc_second)
    hops = 0
    for q in range(n_shortcuts):
        hops += arc_hops[sc_first[q]] + arc_hops[sc_second[q]]
    priority = _priority(v, n_shortcuts, hops, out_len, in_len, arc_hops, out_arc, out_start, in_arc, in_start,
                         depth)
    return priority, cur, targets, sc_tail, sc_head, sc_w, sc_first, sc_second


@nb.njit(cache=True)
def _record_up(v, to, arc, first, count, rec_node, rec_other, rec_arc, n_rec):
    """Append v's remaining arcs (``count`` from ``first`` in a pool: all to higher-ranked nodes now) to the
    upward-arc records; returns the (possibly grown) records and their count."""
    if n_rec + count >= rec_node.shape[0]:
        rec_node = _grow1(rec_node, n_rec + count + 1)
        rec_other = _grow1(rec_other, n_rec + count + 1)
        rec_arc = _grow1(rec_arc, n_rec + count + 1)
    for j in range(first, first + count):
        rec_node[n_rec] = v
        rec_other[n_rec] = to[j]
        rec_arc[n_rec] = arc[j]
        n_rec += 1
    return rec_node, rec_other, rec_arc, n_rec


@nb.njit(cache=True)
def _push_queue(queue_keys, queue_nodes, queue_size, key, v):
    """Push onto the node-order queue, growing it first if it is full."""
    if queue_size >= queue_keys.shape[0]:
        queue_keys = _grow1(queue_keys, queue_size + 1)
        queue_nodes = _grow1(queue_nodes, queue_size + 1)
    queue_size = _push(queue_keys, queue_nodes, queue_size, key, v)
    return queue_keys, queue_nodes, queue_size


@nb.njit(cache=True)
def contract(n, tail, head, weight, orig, max_settle, sim_settle, max_update_degree):
    """Build the hierarchy of a directed graph (no self loops, no parallel arcs).

    Node order by lazy updates of the priority 2·(added/removed arcs) + (added/removed original edges)
    + depth (as in OSRM's contractor); witness searches limited to ``max_settle`` settled nodes while
    contracting and ``sim_settle`` while estimating (a limit can only add needless shortcuts, never
    lose a path).

    Returns (rank, fwd_tail, fwd_head, fwd_arc, bwd_node, bwd_from, bwd_arc, arc_tail, arc_head,
    arc_w, arc_c1, arc_c2, arc_orig, arc_hops): the upward arcs of every node and the CH arcs themselves
    (``arc_hops``: how many original edges an arc stands for).
    """
    m = tail.shape[0]
    # CH arcs: the original ones first, shortcuts appended as they are made
    cap_arcs = 2 * m + 16
    arc_tail = np.empty(cap_arcs, np.int64)
    arc_head = np.empty(cap_arcs, np.int64)
    arc_w = np.empty(cap_arcs, np.float64)
    arc_c1 = np.empty(cap_arcs, np.int64)
    arc_c2 = np.empty(cap_arcs, np.int64)
    arc_orig = np.empty(cap_arcs, np.int64)
    arc_hops = np.empty(cap_arcs, np.int64)
    n_arcs = m
    for i in range(m):
        arc_tail[i] = tail[i]
        arc_head[i] = head[i]
        arc_w[i] = weight[i]
        arc_c1[i] = -1
        arc_c2[i] = -1
        arc_orig[i] = orig[i]
        arc_hops[i] = 1
    # adjacency pools: every node's out-list and in-list, with 2 spare places each
    out_len = np.zeros(n, np.int64)
    in_len = np.zeros(n, np.int64)
    for i in range(m):
        out_len[tail[i]] += 1
        in_len[head[i]] += 1
    out_start = np.empty(n, np.int64)
    in_start = np.empty(n, np.int64)
    out_cap = np.empty(n, np.int64)
    in_cap = np.empty(n, np.int64)
    out_end = 0
    in_end = 0
    for v in range(n):
        out_start[v] = out_end
        out_cap[v] = out_len[v] + 2
        out_end += out_cap[v]
        in_start[v] = in_end
        in_cap[v] = in_len[v] + 2
        in_end += in_cap[v]
    pool = max(out_end, in_end) * 3 + 64
    out_to = np.empty(pool, np.int64)
    out_w = np.empty(pool, np.float64)
    out_arc = np.empty(pool, np.int64)
    in_to = np.empty(pool, np.int64)
    in_w = np.empty(pool, np.float64)
    in_arc = np.empty(pool, np.int64)
    out_fill = np.zeros(n, np.int64)
    in_fill = np.zeros(n, np.int64)
    for i in range(m):
        a = tail[i]
        b = head[i]
        k = out_start[a] + out_fill[a]
        out_to[k] = b
        out_w[k] = weight[i]
        out_arc[k] = i
        out_fill[a] += 1
        k = in_start[b] + in_fill[b]
        in_to[k] = a
        in_w[k] = weight[i]
        in_arc[k] = i
        in_fill[b] += 1

    # search state
    dist = np.zeros(n, np.float64)
    stamp = np.zeros(n, np.int64)
    cur = 0
    heap_keys = np.empty(1 << 16, np.float64)
    heap_nodes = np.empty(1 << 16, np.int64)
    targets = np.empty(64, np.int64)
    sc_tail, sc_head, sc_w, sc_first, sc_second = _shortcut_buffers(1024)  # the shortcuts of one contraction

    depth = np.zeros(n, np.float64)
    prio = np.empty(n, np.float64)
    contracted = np.zeros(n, np.bool_)
    rank = np.full(n, -1, np.int64)
    seen = np.full(n, -1, np.int64)

    # the node-order queue (lazy: an entry is current only if its key equals prio[v])
    queue_cap = 4 * n + 16
    queue_keys = np.empty(queue_cap, np.float64)
    queue_nodes = np.empty(queue_cap, np.int64)
    queue_size = 0
    for v in range(n):
        prio[v], cur, targets, sc_tail, sc_head, sc_w, sc_first, sc_second = _estimate(
            v, out_to, out_w, out_start, out_len, in_to, in_w, in_start, in_len, arc_hops, out_arc, in_arc,
            sim_settle, depth, dist, stamp, cur, heap_keys, heap_nodes,
            targets, sc_tail, sc_head, sc_w, sc_first, sc_second)
        queue_size = _push(queue_keys, queue_nodes, queue_size, prio[v], v)

    # the upward arcs, recorded as each node is contracted
    up_cap = 2 * m + 16
    fwd_tail = np.empty(up_cap, np.int64)
    fwd_head = np.empty(up_cap, np.int64)
    fwd_arc = np.empty(up_cap, np.int64)
    n_fwd = 0
    bwd_node = np.empty(up_cap, np.int64)
    bwd_from = np.empty(up_cap, np.int64)
    bwd_arc = np.empty(up_cap, np.int64)
    n_bwd = 0

    order = 0
    while queue_size > 0:
        key, v, queue_size = _pop(queue_keys, queue_nodes, queue_size)
        if contracted[v] or key != prio[v]:
            continue
        # lazy update: re-evaluate; if it got worse than the next best, put it back
        new_prio, cur, targets, sc_tail, sc_head, sc_w, sc_first, sc_second = _estimate(
            v, out_to, out_w, out_start, out_len, in_to, in_w, in_start, in_len, arc_hops, out_arc, in_arc,
            sim_settle, depth, dist, stamp, cur, heap_keys, heap_nodes,
            targets, sc_tail, sc_head, sc_w, sc_first, sc_second)
        if queue_size > 0 and new_prio > queue_keys[0]:
            prio[v] = new_prio
            queue_keys, queue_nodes, queue_size = _push_queue(queue_keys, queue_nodes, queue_size, new_prio, v)
            continue

        # record v's upward arcs (its remaining neighbours are all of higher rank)
        out_first = out_start[v]
        n_out = out_len[v]
        in_first = in_start[v]
        n_in = in_len[v]
        fwd_tail, fwd_head, fwd_arc, n_fwd = _record_up(v, out_to, out_arc, out_first, n_out,
                                                        fwd_tail, fwd_head, fwd_arc, n_fwd)
        bwd_node, bwd_from, bwd_arc, n_bwd = _record_up(v, in_to, in_arc, in_first, n_in,
                                                        bwd_node, bwd_from, bwd_arc, n_bwd)

        # the shortcuts
        if n_out > 0 and n_in > 0:
            targets, sc_tail, sc_head, sc_w, sc_first, sc_second = _room(v, out_len, in_len, targets, sc_tail,
                                                                         sc_head, sc_w, sc_first, sc_second)
            n_new, cur = _shortcuts(v, out_to, out_w, out_start, out_len, in_to, in_w, in_start, in_len, out_arc,
                                    in_arc, max_settle, dist, stamp, cur, heap_keys, heap_nodes, targets,
                                    sc_tail, sc_head, sc_w, sc_first, sc_second)
            for q in range(n_new):
                u, x, via, first_arc, second_arc = sc_tail[q], sc_head[q], sc_w[q], sc_first[q], sc_second[q]
                if n_arcs >= arc_tail.shape[0]:
                    arc_tail = _grow1(arc_tail, n_arcs + 1)
                    arc_head = _grow1(arc_head, n_arcs + 1)
                    arc_w = _grow1(arc_w, n_arcs + 1)
                    arc_c1 = _grow1(arc_c1, n_arcs + 1)
                    arc_c2 = _grow1(arc_c2, n_arcs + 1)
                    arc_orig = _grow1(arc_orig, n_arcs + 1)
                    arc_hops = _grow1(arc_hops, n_arcs + 1)
                sc = n_arcs
                arc_tail[sc] = u
                arc_head[sc] = x
                arc_w[sc] = via
                arc_c1[sc] = first_arc
                arc_c2[sc] = second_arc
                arc_orig[sc] = -1
                arc_hops[sc] = arc_hops[first_arc] + arc_hops[second_arc]
                n_arcs += 1
                k = _list_find(out_to, out_start, out_len, u, x)
                if k >= 0:
                    if out_w[k] > via:  # a parallel arc gets the better weight
                        out_w[k] = via
                        out_arc[k] = sc
                        k_in = _list_find(in_to, in_start, in_len, x, u)
                        in_w[k_in] = via
                        in_arc[k_in] = sc
                    continue
                # append u -> x to u's out-list and x's in-list
                out_to, out_w, out_arc, out_end = _append(out_to, out_w, out_arc, out_start, out_len, out_cap,
                                                          out_end, u, x, via, sc)
                in_to, in_w, in_arc, in_end = _append(in_to, in_w, in_arc, in_start, in_len, in_cap,
                                                      in_end, x, u, via, sc)

        # take v out of the remaining graph, and update its neighbours
        contracted[v] = True
        rank[v] = order
        order += 1
        for j in range(out_first, out_first + n_out):
            x = out_to[j]
            _list_remove(in_to, in_w, in_arc, in_start, in_len, x, v)
            if depth[x] < depth[v] + 1.0:
                depth[x] = depth[v] + 1.0
        for j in range(in_first, in_first + n_in):
            u = in_to[j]
            _list_remove(out_to, out_w, out_arc, out_start, out_len, u, v)
            if depth[u] < depth[v] + 1.0:
                depth[u] = depth[v] + 1.0
        out_len[v] = 0
        in_len[v] = 0
        # neighbours' priorities change: re-estimate them (each distinct neighbour once)
        for side in range(2):
            first = out_first if side == 0 else in_first
            count = n_out if side == 0 else n_in
            for j in range(first, first + count):
                x = out_to[j] if side == 0 else in_to[j]
                if contracted[x] or seen[x] == order:
                    continue
                seen[x] = order
                if out_len[x] + in_len[x] > max_update_degree:
                    continue  # dense core: left to the lazy re-evaluation when x comes up
                prio[x], cur, targets, sc_tail, sc_head, sc_w, sc_first, sc_second = _estimate(
                    x, out_to, out_w, out_start, out_len, in_to, in_w, in_start, in_len, arc_hops, out_arc, in_arc,
                    sim_settle, depth, dist, stamp, cur, heap_keys, heap_nodes,
                    targets, sc_tail, sc_head, sc_w, sc_first, sc_second)
                queue_keys, queue_nodes, queue_size = _push_queue(queue_keys, queue_nodes, queue_size, prio[x], x)
    return (rank, fwd_tail[:n_fwd].copy(), fwd_head[:n_fwd].copy(), fwd_arc[:n_fwd].copy(),
            bwd_node[:n_bwd].copy(), bwd_from[:n_bwd].copy(), bwd_arc[:n_bwd].copy(),
            arc_tail[:n_arcs].copy(), arc_head[:n_arcs].copy(), arc_w[:n_arcs].copy(),
            arc_c1[:n_arcs].copy(), arc_c2[:n_arcs].copy(), arc_orig[:n_arcs].copy(), arc_hops[:n_arcs].copy())


# -- searches on the hierarchy -----------------------------------------------------------------------------
@nb.njit(cache=True, inline="always")
def _stalled(v, d, s_ptr, s_nbr, s_w, dist, stamp, cur):
    """Stall-on-demand: an arc from a higher node, already reached, shows a shorter way to v than d."""
    for i in range(s_ptr[v], s_ptr[v + 1]):
        x = s_nbr[i]
        if stamp[x] == cur and dist[x] + s_w[i] < d:
            return True
    return False


@nb.njit(cache=True)
def up_search(r_ptr, r_nbr, r_w, r_arc, s_ptr, s_nbr, s_w, src_nodes, src_costs, horizon,
              dist, stamp, cur, pred_arc, pred_node, heap_keys, heap_nodes, out_node, out_d, stop_node=-1):
    """Upward Dijkstra from ``src_nodes`` (start costs ``src_costs``) with stall-on-demand.

    Relaxes the arcs ``r_*`` (the forward upward arcs for a search *from* a point, the backward ones for
    a search *to* it) and stalls a node v when an arc of ``s_*`` (the other direction's upward arcs,
    i.e. arcs between v and a higher node, in the direction that would reach v from it) shows a shorter
    way to v than the search's own: such a v cannot be the highest node of a shortest path.
    Writes the settled, not stalled nodes with their distances to ``out_node``/``out_d`` and returns
    their count (-1 if ``out_node`` is too small). With ``stop_node`` >= 0 the search ends when that
    node is settled (a route to a known meeting node needs nothing more).
    """
    size = _seed(src_nodes, src_costs, dist, stamp, cur, pred_arc, pred_node, heap_keys, heap_nodes)
    n_out = 0
    while size > 0:
        d, v, size = _pop(heap_keys, heap_nodes, size)
        if d > dist[v]:
            continue
        if d > horizon:
            break
        if _stalled(v, d, s_ptr, s_nbr, s_w, dist, stamp, cur):
            continue
        if n_out >= out_node.shape[0]:
            return -1
        out_node[n_out] = v
        out_d[n_out] = d
        n_out += 1
        if v == stop_node:
            break
        for i in range(r_ptr[v], r_ptr[v + 1]):  # written out, not shared: see the Dijkstra's loop
            x = r_nbr[i]
            new_d = d + r_w[i]
            if stamp[x] != cur or new_d < dist[x]:
                stamp[x] = cur
                dist[x] = new_d
                pred_arc[x] = r_arc[i]
                pred_node[x] = v
                if size >= heap_keys.shape[0]:
                    return -1
                size = _push(heap_keys, heap_nodes, size, new_d, x)
    return n_out


@nb.njit(cache=True)
def fill_buckets(f_ptr, f_nbr, f_w, f_arc, b_ptr, b_nbr, b_w, slots, nodes, costs, horizon,
                 dist, stamp, cur, pred_arc, pred_node, heap_keys, heap_nodes, tmp_node, tmp_d,
                 out_node, out_slot, out_d):
    """The bucket entries of many team slots: one forward upward search per slot.

    Returns (entries written, stamp counter); entries = -1 if an output array is too small."""
    n = 0
    src = np.empty(1, np.int64)
    cost = np.empty(1, np.float64)
    for i in range(slots.shape[0]):
        cur += 1
        src[0] = nodes[i]
        cost[0] = costs[i]
        got = up_search(f_ptr, f_nbr, f_w, f_arc, b_ptr, b_nbr, b_w, src, cost, horizon,
                        dist, stamp, cur, pred_arc, pred_node, heap_keys, heap_nodes, tmp_node, tmp_d)
        if got < 0 or n + got > out_node.shape[0]:
            return -1, cur
        for j in range(got):
            out_node[n] = tmp_node[j]
            out_slot[n] = slots[i]
            out_d[n] = tmp_d[j]
            n += 1
    return n, cur


@nb.njit(cache=True)
def link_overlay(ov_head, ov_next, ov_node, first, count):
    """Hang overlay entries first..first+count-1 on their nodes' lists."""
    for e in range(first, first + count):
        v = ov_node[e]
        ov_next[e] = ov_head[v]
        ov_head[v] = e


@nb.njit(cache=True)
def nearest_by_buckets(
    b_ptr, b_nbr, b_w, b_arc, f_ptr, f_nbr, f_w,
    seed_nodes, seed_costs,
    bk_ptr, bk_slot, bk_d, bk_gen,
    ov_head, ov_next, ov_slot, ov_d, ov_gen,
    slot_gen, team_ok, k, horizon,
    dist, stamp, cur, pred_arc, pred_node, heap_keys, heap_nodes,
    team_eta, team_slot, team_meet, team_stamp,
    top_team, top_eta,
):
    """The k nearest eligible teams of a target, by the hierarchy and the teams' buckets.

    One backward upward search from the target's seeds; at each settled node its bucket entries give
    ``entry distance + distance to the target`` for the teams that reach that node on their way up.
    The search settles in order of distance to the target and every entry adds a non-negative part,
    so once the k-th best ETA is <= the distance being settled no team can still beat it: stop.
    Every team met (eligible or not) has ``team_stamp == cur`` and its best ``team_eta``, ``team_slot`` and
    meeting node: buckets meet teams in no particular order, so the caller picks the nearest ineligible
    ones from those afterwards. Returns (eligible teams found <= k, nodes settled); found is -1 when the heap
    is too small (the caller grows it and searches again).
    """
    size = _seed(seed_nodes, seed_costs, dist, stamp, cur, pred_arc, pred_node, heap_keys, heap_nodes)
    for j in range(k):
        top_team[j] = -1
        top_eta[j] = INF
    settled = 0
    while size > 0:
        d, v, size = _pop(heap_keys, heap_nodes, size)
        if d > dist[v]:
            continue
        if d > horizon or top_eta[k - 1] <= d:
            break
        if _stalled(v, d, f_ptr, f_nbr, f_w, dist, stamp, cur):
            continue
        settled += 1
        # the bucket of v: the static part, then the overlay of recent moves
        for part in range(2):
            if part == 0:
                entry = bk_ptr[v]
                stop = bk_ptr[v + 1]
            else:
                entry = ov_head[v]
                stop = -1
            while entry != stop:
                if part == 0:
                    slot = bk_slot[entry]
                    current = bk_gen[entry] == slot_gen[slot]  # an older generation: the slot has moved since
                    eta = bk_d[entry] + d
                    next_entry = entry + 1
                else:
                    slot = ov_slot[entry]
                    current = ov_gen[entry] == slot_gen[slot]
                    eta = ov_d[entry] + d
                    next_entry = ov_next[entry]
                entry = next_entry
                if not current:
                    continue
                team = slot >> 1
                if team_stamp[team] == cur and eta >= team_eta[team]:
                    continue
                team_stamp[team] = cur
                team_eta[team] = eta
                team_slot[team] = slot
                team_meet[team] = v
                if team_ok[team]:
                    _offer(team, eta, k, top_team, top_eta)
        for i in range(b_ptr[v], b_ptr[v + 1]):
            x = b_nbr[i]
            new_d = d + b_w[i]
            if stamp[x] != cur or new_d < dist[x]:
                stamp[x] = cur
                dist[x] = new_d
                pred_arc[x] = b_arc[i]
                pred_node[x] = v
                if size >= heap_keys.shape[0]:
                    return -1, settled  # the heap is full: the caller grows it and searches again
                size = _push(heap_keys, heap_nodes, size, new_d, x)
    found = 0
    for j in range(k):
        if top_team[j] >= 0:
            found += 1
    return found, settled


@nb.njit(cache=True)
def unpack(arcs, n_arcs, arc_c1, arc_c2, arc_orig, out):
    """The original edges, in order, of a sequence of CH arcs (shortcuts expanded recursively).
    Returns the count, or -1 if ``out`` is too small."""
    stack = np.empty(64, np.int64)
    n = 0
    for i in range(n_arcs):
        sp = 1
        stack[0] = arcs[i]
        while sp > 0:
            sp -= 1
            a = stack[sp]
            if arc_orig[a] >= 0:
                if n >= out.shape[0]:
                    return -1
                out[n] = arc_orig[a]
                n += 1
            else:
                if sp + 2 > stack.shape[0]:
                    stack = _grow1(stack, sp + 2)
                stack[sp] = arc_c2[a]
                stack[sp + 1] = arc_c1[a]
                sp += 2
    return n
