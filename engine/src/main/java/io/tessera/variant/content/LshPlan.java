package io.tessera.variant.content;

/**
 * Reformer's plan for one (batch, key head): per hash round, the tokens stably sorted by
 * (bucket, position) and cut into chunks of {@code chunk}; a query attends the keys of its own chunk
 * and of the previous one (the first chunk's previous is the last, as in the reference
 * implementation). Rounds are laid end to end, so slot {@code r·n + p} is the token at sorted
 * position {@code p} of round {@code r}; a (query, key) pair reached in several rounds is kept only
 * in the first, which makes the rounds' key sets disjoint.
 */
final class LshPlan extends ContentPlan {
    private final int n, chunk, rounds, chunks;
    private final boolean causal, excludeSelf;
    /** Sorted position of each token in each round, [round·n + token]. */
    private final int[] position;
    /** Chunk of each token in each round, [round·n + token] (position / chunk, kept to spare the division). */
    private final int[] chunkOf;
    /**
     * Chunk in each earlier round of the token at each slot, [e·rounds·n + slot] for e &lt; the
     * slot's round: lets a mask row test "reached in an earlier round" reading memory in slot order.
     */
    private final int[] earlierChunk;
    /** For the self rule: whether query i may attend some key other than itself. */
    private final boolean[] hasOther;
    private final String description;

    /** @param buckets bucket of each token in each round, [round·n + token], each in [0, nBuckets) */
    LshPlan(int n, int rounds, int nBuckets, int chunk, boolean causal, boolean excludeSelf, int[] buckets) {
        this(new int[rounds * n], n, rounds, nBuckets, chunk, causal, excludeSelf, buckets);
    }

    /** Queries and keys are the same tokens in the same sorted order: one slot array serves both. */
    private LshPlan(int[] slots, int n, int rounds, int nBuckets, int chunk, boolean causal, boolean excludeSelf, int[] buckets) {
        super(n, n, slots, slots);
        this.n = n;
        this.chunk = chunk;
        this.rounds = rounds;
        this.chunks = (int) (((long) n + chunk - 1) / chunk);
        this.causal = causal;
        this.excludeSelf = excludeSelf;
        this.position = new int[rounds * n];
        int[] start = new int[nBuckets + 1];
        for (int r = 0; r < rounds; r++) {
            // Counting sort by bucket: stable, so positions stay increasing within a bucket.
            java.util.Arrays.fill(start, 0);
            for (int t = 0; t < n; t++) start[buckets[r * n + t] + 1]++;
            for (int b = 0; b < nBuckets; b++) start[b + 1] += start[b];
            for (int t = 0; t < n; t++) {
                int p = start[buckets[r * n + t]]++;
                querySlots[r * n + p] = t;
                position[r * n + t] = p;
            }
        }
        this.chunkOf = new int[rounds * n];
        for (int x = 0; x < chunkOf.length; x++) chunkOf[x] = position[x] / chunk;
        this.earlierChunk = new int[(rounds - 1) * rounds * n];
        for (int e = 0; e < rounds - 1; e++) {
            for (int slot = (e + 1) * n; slot < rounds * n; slot++) earlierChunk[e * rounds * n + slot] = chunkOf[e * n + querySlots[slot]];
        }
        this.hasOther = excludeSelf ? othersReachable() : null;
        this.description = "lsh(buckets=" + nBuckets + ", rounds=" + rounds + ", chunk=" + chunk + (causal ? ", causal" : "")
                + (excludeSelf ? ", self only when alone" : "") + ") over " + rounds + "x" + n + " sorted slots";
    }

    /**
     * Whether each query reaches a key other than itself in some round: without causality any
     * second token does (its chunk and the previous one cover at least two tokens when n ≥ 2);
     * with it, some token of the two chunks must sit at an earlier position.
     */
    private boolean[] othersReachable() {
        boolean[] other = new boolean[n];
        if (!causal) {
            java.util.Arrays.fill(other, n >= 2);
            return other;
        }
        int[] minPos = new int[chunks];
        for (int r = 0; r < rounds; r++) {
            java.util.Arrays.fill(minPos, Integer.MAX_VALUE);
            for (int p = 0; p < n; p++) minPos[p / chunk] = Math.min(minPos[p / chunk], querySlots[r * n + p]);
            for (int t = 0; t < n; t++) {
                int c = position[r * n + t] / chunk;
                if (Math.min(minPos[c], minPos[previous(c)]) < t) other[t] = true;
            }
        }
        return other;
    }

    /** One past the last sorted position of chunk c (long math: (c+1)·chunk may pass Integer.MAX_VALUE). */
    private int end(int c) { return (int) Math.min(n, (long) (c + 1) * chunk); }

    private int previous(int c) { return c == 0 ? chunks - 1 : c - 1; }

    private boolean adjacent(int queryChunk, int keyChunk) {
        return keyChunk == queryChunk || keyChunk == previous(queryChunk);
    }

    /** The rules that do not depend on the round: causality and "self only when nothing else". */
    private boolean pairRules(int i, int j) {
        if (causal && j > i) return false;
        return j != i || !excludeSelf || !hasOther[i];
    }

    private boolean reachedInRound(int r, int i, int j) {
        return adjacent(chunkOf[r * n + i], chunkOf[r * n + j]);
    }

    /**
     * {@link #slotAllowed} for a whole row: the query's round and chunks are computed once, and the
     * keys' chunks (this round's from the slot index, earlier rounds' from {@link #earlierChunk})
     * are read in slot order.
     */
    @Override
    void fillRow(int s, int kv0, int cols, long[] dst, int base, int wordsPerRow) {
        int r = s / n, roundStart = r * n;
        int own = (s - roundStart) / chunk, before = previous(own);
        for (int w = 0; w < wordsPerRow; w++) dst[base + w] = 0;
        markReached(s, roundStart + own * chunk, roundStart + end(own), kv0, cols, dst, base);
        if (before != own) markReached(s, roundStart + before * chunk, roundStart + end(before), kv0, cols, dst, base);
    }

    /**
     * Sets the bits of the key slots of [from, to) ∩ [kv0, kv0+cols) that query slot s may attend
     * (its round's chunk rule already holds for them): first the pair rules, then one pass per
     * earlier round clearing the keys it reached (rare, so the branch predicts well).
     */
    private void markReached(int s, int from, int to, int kv0, int cols, long[] dst, int base) {
        from = Math.max(from, kv0);
        to = Math.min(to, kv0 + cols);
        if (from >= to) return;
        int r = s / n, i = querySlots[s], total = rounds * n;
        boolean selfAllowed = !excludeSelf || !hasOther[i];
        if (!causal && selfAllowed) {
            setBits(dst, base, from - kv0, to - kv0);
        } else {
            for (int t = from; t < to; t++) {
                int j = querySlots[t];
                if ((causal && j > i) || (j == i && !selfAllowed)) continue;
                dst[base + ((t - kv0) >>> 6)] |= 1L << (t - kv0);
            }
        }
        for (int e = 0; e < r; e++) {
            int oe = chunkOf[e * n + i], pe = previous(oe), row = e * total;
            for (int t = from; t < to; t++) {
                int ce = earlierChunk[row + t];
                if (ce == oe || ce == pe) dst[base + ((t - kv0) >>> 6)] &= ~(1L << (t - kv0));
            }
        }
    }

    /** Sets bits [lo, hi) of the row's words. */
    private static void setBits(long[] dst, int base, int lo, int hi) {
        for (int w = lo >>> 6; w <= (hi - 1) >>> 6; w++) {
            int a = Math.max(lo, w << 6) - (w << 6), b = Math.min(hi, (w + 1) << 6) - (w << 6);   // bits [a, b) of word w, 0 ≤ a < b ≤ 64
            long bits = (b == 64 ? -1L : (1L << b) - 1) & (-1L << a);
            dst[base + w] |= bits;
        }
    }

    @Override
    boolean slotAllowed(int s, int t) {
        int r = s / n;
        if (t / n != r) return false;
        if (!adjacent((s - r * n) / chunk, (t - r * n) / chunk)) return false;
        int i = querySlots[s], j = querySlots[t];
        if (!pairRules(i, j)) return false;
        for (int earlier = 0; earlier < r; earlier++) if (reachedInRound(earlier, i, j)) return false;
        return true;
    }

    @Override
    boolean allowed(int i, int j) {
        if (!pairRules(i, j)) return false;
        for (int r = 0; r < rounds; r++) if (reachedInRound(r, i, j)) return true;
        return false;
    }

    @Override int slotCount(int i) { return rounds; }

    @Override int slot(int i, int k) { return k * n + position[k * n + i]; }

    @Override
    void keyIntervals(int s0, int s1, Intervals out) {
        for (int s = s0; s < s1; ) {
            int r = s / n, c = (s - r * n) / chunk;
            int base = r * n;
            out.add(base + c * chunk, base + end(c));
            int p = previous(c);
            out.add(base + p * chunk, base + end(p));
            s = base + end(c);   // the next chunk's first slot
        }
    }

    @Override
    boolean fullTile(int s0, int s1, int t0, int t1) {
        if (causal || excludeSelf) return false;
        int r = s0 / n;
        if (r != 0 || (s1 - 1) / n != 0 || (t1 - 1) / n != 0) return false;   // later rounds drop pairs earlier ones reached
        int c = s0 / chunk;
        if ((s1 - 1) / chunk != c) return false;
        int kc = t0 / chunk;
        return (t1 - 1) / chunk == kc && adjacent(c, kc);
    }

    @Override String describe() { return description; }
}
