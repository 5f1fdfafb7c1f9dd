package io.tessera.variant.content;

/**
 * LSH cross-attention's plan for one (batch, query head): queries and keys are separate sets,
 * hashed with the same rotations. Per round, the qLen + kvLen tokens are stably sorted together by
 * (bucket, position, keys before queries at the same position) and the merged sequence is cut into
 * chunks of {@code chunk}; a query attends the keys of its merged chunk and of the previous one
 * (the first chunk's previous is the last), exactly Reformer's rule with the query and key roles of
 * each token told apart. Query slots of round r are the queries in merged order
 * ({@code r·qLen + rank}), key slots the keys in merged order ({@code r·kvLen + rank}); the keys of
 * one merged chunk are consecutive key slots, so a query chunk reaches two key-slot intervals. A
 * (query, key) pair reached in several rounds is kept only in the first.
 */
final class LshCrossPlan extends ContentPlan {
    private final int rounds, chunk, chunks;
    private final boolean causal;
    /** Merged chunk of each query / key in each round: [round·qLen + i], [round·kvLen + j]. */
    private final int[] queryChunk, keyChunk;
    /** Query rank (slot within its round) of each query in each round, [round·qLen + i]. */
    private final int[] queryRank;
    /** Per round, the first query rank / key rank of each merged chunk: [round·(chunks+1) + c]. */
    private final int[] queryStart, keyStart;
    private final String description;

    /**
     * @param queryBuckets bucket of each query in each round, [round·qLen + i]
     * @param keyBuckets   bucket of each key in each round, [round·kvLen + j]
     */
    LshCrossPlan(int qLen, int kvLen, int rounds, int nBuckets, int chunk, boolean causal, int[] queryBuckets, int[] keyBuckets) {
        super(qLen, kvLen, new int[rounds * qLen], new int[rounds * kvLen]);
        int merged = qLen + kvLen;   // the caller checked it fits an int
        this.rounds = rounds;
        this.chunk = chunk;
        this.chunks = (int) (((long) merged + chunk - 1) / chunk);
        this.causal = causal;
        this.queryChunk = new int[rounds * qLen];
        this.keyChunk = new int[rounds * kvLen];
        this.queryRank = new int[rounds * qLen];
        this.queryStart = new int[rounds * (chunks + 1)];
        this.keyStart = new int[rounds * (chunks + 1)];
        int[] start = new int[nBuckets + 1];
        int longest = Math.max(qLen, kvLen);
        int[] qAt = new int[qLen], kAt = new int[kvLen];   // merged position of each query and key
        int[] tokenAt = new int[merged];                   // ≥ 0: key j; < 0: query −1−i
        for (int r = 0; r < rounds; r++) {
            // Counting sort by bucket, visiting tokens by position (a key before the query at its position): stable.
            java.util.Arrays.fill(start, 0);
            for (int i = 0; i < qLen; i++) start[queryBuckets[r * qLen + i] + 1]++;
            for (int j = 0; j < kvLen; j++) start[keyBuckets[r * kvLen + j] + 1]++;
            for (int b = 0; b < nBuckets; b++) start[b + 1] += start[b];
            for (int p = 0; p < longest; p++) {
                if (p < kvLen) kAt[p] = start[keyBuckets[r * kvLen + p]]++;
                if (p < qLen) qAt[p] = start[queryBuckets[r * qLen + p]]++;
            }
            // Ranks within each role follow the merged order: a pass over the merged sequence.
            for (int j = 0; j < kvLen; j++) tokenAt[kAt[j]] = j;
            for (int i = 0; i < qLen; i++) tokenAt[qAt[i]] = -1 - i;
            int queries = 0, keys = 0, base = r * (chunks + 1);
            for (int m = 0; m < merged; m++) {
                if (m % chunk == 0) {
                    queryStart[base + m / chunk] = queries;
                    keyStart[base + m / chunk] = keys;
                }
                int token = tokenAt[m];
                if (token >= 0) {
                    keySlots[r * kvLen + keys++] = token;
                    keyChunk[r * kvLen + token] = m / chunk;
                } else {
                    int i = -1 - token;
                    querySlots[r * qLen + queries] = i;
                    queryRank[r * qLen + i] = queries++;
                    queryChunk[r * qLen + i] = m / chunk;
                }
            }
            queryStart[base + chunks] = queries;
            keyStart[base + chunks] = keys;
        }
        this.description = "lsh cross-attention(buckets=" + nBuckets + ", rounds=" + rounds + ", chunk=" + chunk + (causal ? ", causal" : "")
                + ") over " + rounds + "x" + qLen + " query slots and " + rounds + "x" + kvLen + " key slots";
    }

    private int previous(int c) { return c == 0 ? chunks - 1 : c - 1; }

    private boolean reachedInRound(int r, int i, int j) {
        int qc = queryChunk[r * qLen + i], kc = keyChunk[r * kvLen + j];
        return kc == qc || kc == previous(qc);
    }

    @Override
    boolean slotAllowed(int s, int t) {
        int r = s / qLen;
        if (t / kvLen != r) return false;
        int i = querySlots[s], j = keySlots[t];
        if (causal && j > i) return false;
        if (!reachedInRound(r, i, j)) return false;
        for (int e = 0; e < r; e++) if (reachedInRound(e, i, j)) return false;
        return true;
    }

    @Override
    boolean allowed(int i, int j) {
        if (causal && j > i) return false;
        for (int r = 0; r < rounds; r++) if (reachedInRound(r, i, j)) return true;
        return false;
    }

    @Override int slotCount(int i) { return rounds; }

    @Override int slot(int i, int k) { return k * qLen + queryRank[k * qLen + i]; }

    @Override
    void keyIntervals(int s0, int s1, Intervals out) {
        for (int s = s0; s < s1; ) {
            int r = s / qLen, c = queryChunk[r * qLen + querySlots[s]], base = r * (chunks + 1), keyBase = r * kvLen;
            out.add(keyBase + keyStart[base + c], keyBase + keyStart[base + c + 1]);
            int p = previous(c);
            out.add(keyBase + keyStart[base + p], keyBase + keyStart[base + p + 1]);
            s = r * qLen + queryStart[base + c + 1];   // the next chunk's first query slot
        }
    }

    @Override
    boolean fullTile(int s0, int s1, int t0, int t1) {
        if (causal || s0 / qLen != 0 || (s1 - 1) / qLen != 0 || (t1 - 1) / kvLen != 0) return false;   // later rounds drop pairs earlier ones reached
        int c = queryChunk[querySlots[s0]];
        if (queryChunk[querySlots[s1 - 1]] != c) return false;
        int first = keyChunk[keySlots[t0]], last = keyChunk[keySlots[t1 - 1]];   // key chunks increase with the slot
        int p = previous(c);
        return (first == c || first == p) && (last == c || last == p) && (first == last || (p == c - 1 && first == p && last == c));
    }

    @Override String describe() { return description; }
}
