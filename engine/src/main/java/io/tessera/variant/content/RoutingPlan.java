package io.tessera.variant.content;

/**
 * The Routing Transformer's plan for one (batch, query head): each of the {@code clusters}
 * centroids takes its {@code perClusterQ} nearest queries and {@code perClusterK} nearest keys
 * (balanced clusters, so every cluster fills the same slots), listed in position order. Cluster
 * {@code c} owns query slots {@code [c·perClusterQ, (c+1)·perClusterQ)} and key slots
 * {@code [c·perClusterK, (c+1)·perClusterK)}, and attention stays inside a cluster: the layout is
 * block-diagonal over the slots. A token may belong to several clusters or to none; a (query, key)
 * pair that shares several clusters is kept only in the first, so a query's clusters cover
 * disjoint key sets.
 */
final class RoutingPlan extends ContentPlan {
    private final int clusters, perClusterQ, perClusterK;
    private final boolean causal;
    /** Causal: key j is visible from query i iff j ≤ i + shift (the alignment's diagonal shift). */
    private final long shift;
    /** Per query: its clusters ascending ([qOffsets[i], qOffsets[i+1]) of qClusters) and its slot in each. */
    private final int[] qOffsets, qClusters, qSlotOf;
    /** Per key: its clusters ascending. */
    private final int[] kOffsets, kClusters;
    /** Clusters none of whose queries belongs to another cluster: nothing is dropped there. */
    private final boolean[] clean;
    private final String description;

    /**
     * @param queryMembers cluster c's queries at [c·perClusterQ, (c+1)·perClusterQ), increasing within a cluster
     * @param keyMembers   cluster c's keys at [c·perClusterK, (c+1)·perClusterK), increasing within a cluster
     */
    /** @param alignment where the causal diagonal sits, or null for no causal rule */
    RoutingPlan(int qLen, int kvLen, int clusters, int perClusterQ, int perClusterK, io.tessera.pattern.CausalAlignment alignment, int[] queryMembers, int[] keyMembers) {
        super(qLen, kvLen, queryMembers, keyMembers);
        this.clusters = clusters;
        this.perClusterQ = perClusterQ;
        this.perClusterK = perClusterK;
        this.causal = alignment != null;
        this.shift = alignment == null ? 0 : alignment.diagonalShift(qLen, kvLen);
        this.qOffsets = new int[qLen + 1];
        this.qClusters = new int[queryMembers.length];
        this.qSlotOf = new int[queryMembers.length];
        for (int i : queryMembers) qOffsets[i + 1]++;
        for (int i = 0; i < qLen; i++) qOffsets[i + 1] += qOffsets[i];
        int[] fill = java.util.Arrays.copyOf(qOffsets, qLen);
        for (int s = 0; s < queryMembers.length; s++) {   // slots in cluster order: each query's clusters come out ascending
            int at = fill[queryMembers[s]]++;
            qClusters[at] = s / perClusterQ;
            qSlotOf[at] = s;
        }
        this.kOffsets = new int[kvLen + 1];
        this.kClusters = new int[keyMembers.length];
        for (int j : keyMembers) kOffsets[j + 1]++;
        for (int j = 0; j < kvLen; j++) kOffsets[j + 1] += kOffsets[j];
        fill = java.util.Arrays.copyOf(kOffsets, kvLen);
        for (int t = 0; t < keyMembers.length; t++) kClusters[fill[keyMembers[t]]++] = t / perClusterK;
        this.clean = new boolean[clusters];
        for (int c = 0; c < clusters; c++) {
            boolean ok = true;
            for (int s = c * perClusterQ; s < (c + 1) * perClusterQ && ok; s++) ok = slotCount(queryMembers[s]) == 1;
            clean[c] = ok;
        }
        this.description = "routing(clusters=" + clusters + ", " + perClusterQ + " queries and " + perClusterK + " keys per cluster"
                + (alignment == null ? "" : alignment == io.tessera.pattern.CausalAlignment.TOP_LEFT ? ", causal" : ", causal " + alignment) + ") over " + queryMembers.length + "x" + keyMembers.length + " cluster slots";
    }

    /** The first cluster holding query i and key j, or −1. */
    private int firstCommon(int i, int j) {
        int a = qOffsets[i], aEnd = qOffsets[i + 1], b = kOffsets[j], bEnd = kOffsets[j + 1];
        while (a < aEnd && b < bEnd) {
            int x = qClusters[a], y = kClusters[b];
            if (x == y) return x;
            if (x < y) a++; else b++;
        }
        return -1;
    }

    @Override
    boolean slotAllowed(int s, int t) {
        int c = s / perClusterQ;
        if (t / perClusterK != c) return false;
        int i = querySlots[s], j = keySlots[t];
        if (causal && j > i + shift) return false;
        return firstCommon(i, j) == c;
    }

    @Override
    boolean allowed(int i, int j) {
        if (causal && j > i + shift) return false;
        return firstCommon(i, j) >= 0;
    }

    @Override int slotCount(int i) { return qOffsets[i + 1] - qOffsets[i]; }

    @Override int slot(int i, int k) { return qSlotOf[qOffsets[i] + k]; }

    @Override
    void keyIntervals(int s0, int s1, Intervals out) {
        out.add(s0 / perClusterQ * perClusterK, ((s1 - 1) / perClusterQ + 1) * perClusterK);
    }

    @Override
    boolean fullTile(int s0, int s1, int t0, int t1) {
        if (causal) return false;
        int c = s0 / perClusterQ;
        return (s1 - 1) / perClusterQ == c && t0 / perClusterK == c && (t1 - 1) / perClusterK == c && clean[c];
    }

    @Override String describe() { return description; }

    int clusters() { return clusters; }
}
