package io.tessera.variant.content;

import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import java.util.SplittableRandom;

/**
 * Reformer's LSH attention (Kitaev et al. 2020) on the fused block-sparse kernel. Each token is
 * hashed from its key by random rotations, {@code bucket = argmax([x·R, −x·R])} ({@code buckets}
 * buckets, {@code hashes} independent rounds, rotations drawn from {@code seed}); per round the
 * tokens are stably sorted by (bucket, position) and cut into chunks of {@code chunkLength}, and a
 * query attends the keys of its chunk and of the previous chunk (the first chunk's previous is the
 * last). A query attends the union over rounds of those keys, each key once: later rounds skip the
 * pairs earlier rounds reached, and the rounds' results are combined exactly through their
 * log-sum-exps. Optional rules as in the paper: {@link #causal()} (in original positions) and
 * {@link #excludingSelf()} (a query attends its own position only when no other key is allowed).
 *
 * <pre>{@code
 * LshAttention lsh = LshAttention.of(64, 2, 64, 42).causal();
 * lsh.forward(q, k, v, out);                  // q [B,H,n,D], k/v [B,Hkv,n,D]; pass k = q/|q| for shared-QK
 * InducedSparsity seen = lsh.induce(q, k);    // the keys each query saw, and the layout the kernel ran
 * }</pre>
 *
 * A token's bucket comes from its key (per key head, so grouped query heads share it), and its query
 * is placed where its key goes: the paper's shared-QK attention (qLen = kvLen). For separate query
 * and key sets, {@link #crossAttention()} hashes queries from q and keys from k with the same
 * rotations and chunks their merged sorted order. Hashing is fp32 in a fixed order
 * (the same buckets on every backend). Cost per call: O(n·D·buckets·hashes) hashing
 * ({@link #factorized}: O(n·D·Σfactors·hashes)), O(n) sort per round, O(tiles) layout, then
 * attention over about 2·chunkLength keys per query and round.
 */
public final class LshAttention extends ContentOperator {
    /** Most buckets: 2^20 (a million-token sequence in chunks of one); the rotations take D·hashes·buckets/2 floats. */
    public static final int MAX_BUCKETS = 1 << 20;

    private final int buckets, hashes, chunkLength;
    private final int[] factors;     // buckets = their product; one set of rotations each
    private final long seed;
    private final boolean causal, excludeSelf, cross;

    private LshAttention(int[] factors, int buckets, int hashes, int chunkLength, long seed, boolean causal, boolean excludeSelf, boolean cross, Backend backend, float scale) {
        super(backend, scale);
        this.cross = cross;
        this.factors = factors;
        this.buckets = buckets;
        this.hashes = hashes;
        this.chunkLength = chunkLength;
        this.seed = seed;
        this.causal = causal;
        this.excludeSelf = excludeSelf;
    }

    /**
     * LSH attention with {@code buckets} buckets (1, or even up to {@link #MAX_BUCKETS}: half as many random rotations), {@code hashes}
     * rounds (≥ 1) and chunks of {@code chunkLength} (≥ 1), rotations drawn from {@code seed}.
     * Not causal and attending self unless {@link #causal()} / {@link #excludingSelf()} say otherwise.
     */
    public static LshAttention of(int buckets, int hashes, int chunkLength, long seed) {
        if (buckets < 1 || (buckets > 1 && buckets % 2 != 0)) throw new IllegalArgumentException("buckets must be 1 or even and >= 2, got " + buckets);
        if (buckets > MAX_BUCKETS) throw new IllegalArgumentException("buckets must be <= " + MAX_BUCKETS + ", got " + buckets);
        return checked(new int[] {buckets}, buckets, hashes, chunkLength, seed);
    }

    /**
     * LSH attention whose buckets are factorized (the reference implementation's list of bucket
     * counts): each factor f (1, or even) has its own f/2 random rotations per round and gives one
     * digit, and a token's bucket is the mixed-radix number of its digits, so
     * {@code factorized(2, 64, 42, 16, 16)} has 256 buckets for the hashing cost of 16: D·Σf/2 instead
     * of D·Πf/2 multiply-adds per token and round.
     */
    public static LshAttention factorized(int hashes, int chunkLength, long seed, int... bucketFactors) {
        if (bucketFactors == null) throw new NullPointerException("bucketFactors");
        if (bucketFactors.length == 0) throw new IllegalArgumentException("bucketFactors must list at least one factor");
        long product = 1;
        for (int i = 0; i < bucketFactors.length; i++) {
            int f = bucketFactors[i];
            if (f < 1 || (f > 1 && f % 2 != 0)) throw new IllegalArgumentException("bucketFactors[" + i + "] must be 1 or even and >= 2, got " + f);
            product *= f;
            if (product > MAX_BUCKETS) throw new IllegalArgumentException("bucketFactors " + java.util.Arrays.toString(bucketFactors) + " make more than " + MAX_BUCKETS + " buckets");
        }
        return checked(bucketFactors.clone(), (int) product, hashes, chunkLength, seed);
    }

    private static LshAttention checked(int[] factors, int buckets, int hashes, int chunkLength, long seed) {
        if (hashes < 1) throw new IllegalArgumentException("hashes must be >= 1, got " + hashes);
        if (chunkLength < 1) throw new IllegalArgumentException("chunkLength must be >= 1, got " + chunkLength);
        return new LshAttention(factors, buckets, hashes, chunkLength, seed, false, false, false, null, Float.NaN);
    }

    /** The same attention, causal in the original positions (key j only for queries i ≥ j). */
    public LshAttention causal() { return new LshAttention(factors, buckets, hashes, chunkLength, seed, true, excludeSelf, cross, backend, scale); }

    /** The same attention with the paper's rule for shared-QK: a query attends itself only when no other key is allowed. */
    public LshAttention excludingSelf() {
        if (cross) throw new IllegalStateException("excludingSelf() is the shared-QK rule; with crossAttention() queries and keys are different tokens, so there is no self to exclude");
        return new LshAttention(factors, buckets, hashes, chunkLength, seed, causal, true, cross, backend, scale);
    }

    /**
     * The same attention for separate query and key sets (cross-attention; qLen may differ from
     * kvLen): queries are hashed from q and keys from k with the same rotations; per round all
     * qLen + kvLen tokens are sorted together by (bucket, position; a key before the query at the
     * same position) and cut into chunks of {@code chunkLength}, and a query attends the keys in
     * its chunk and the previous one of that merged order. Buckets are per query head (grouped
     * heads share their key head's key buckets). {@link #causal()} is then key j only for queries
     * i ≥ j (top-left), and {@link #excludingSelf()} is rejected: there is no self.
     */
    public LshAttention crossAttention() {
        if (excludeSelf) throw new IllegalStateException("crossAttention() cannot keep excludingSelf(): queries and keys are different tokens, so there is no self to exclude");
        return new LshAttention(factors, buckets, hashes, chunkLength, seed, causal, false, true, backend, scale);
    }

    @Override
    public LshAttention on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return new LshAttention(factors, buckets, hashes, chunkLength, seed, causal, excludeSelf, cross, backend, scale);
    }

    @Override
    public LshAttention withScale(float scale) {
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        return new LshAttention(factors, buckets, hashes, chunkLength, seed, causal, excludeSelf, cross, backend, scale);
    }

    public int buckets() { return buckets; }
    public int hashes() { return hashes; }
    public int chunkLength() { return chunkLength; }

    /**
     * What hashing decides for this input, without running attention: the sorted order, the layout
     * over it and the induced element mask (the keys {@link #forward} lets each query see).
     */
    @Override
    public InducedSparsity induce(Tensor q, Tensor k) {
        Checks.notNull("q", q);
        Checks.notNull("k", k);
        AttentionShape s = AttentionShape.of(q, k, k);
        if (cross) return induceCross(s, q, k);
        int n = s.qLen();
        if (s.kvLen() != n) {
            throw new IllegalArgumentException("LSH attention sorts shared query/key positions: qLen=" + n + " must equal kvLen=" + s.kvLen()
                    + " (for separate query and key sets use crossAttention())");
        }
        Checks.intProduct("hashes·n slots", hashes, n);
        int perRound = rotationsPerRound(), d = s.headDim();
        int columns = perRound == 0 ? 0 : Checks.intProduct("hashes·(rotations per round) rotation columns", hashes, perRound);
        if (columns > 0) Checks.intProduct("the projections n·rotation columns", n, columns);
        Backend be = backend();
        ContentPlan[][] plans = new ContentPlan[s.batch()][s.kvHeads()];
        float[] rotations = columns == 0 ? null : rotations(d, columns);
        Projection.Scratch scratch = columns == 0 ? null : new Projection.Scratch(d, columns);
        float[] projected = columns == 0 ? null : new float[columns * n];
        int[] bucketOf = new int[hashes * n];
        for (int b = 0; b < s.batch(); b++) {
            for (int hk = 0; hk < s.kvHeads(); hk++) {
                if (columns > 0) buckets(k, b, hk, n, rotations, columns, perRound, scratch, projected, bucketOf);
                plans[b][hk] = new LshPlan(n, hashes, buckets, chunkLength, causal, excludeSelf, bucketOf);
            }
        }
        return new InducedSparsity(plans, s.heads(), s.queryHeadsPerKvHead(), s.queryHeadsPerKvHead(), be.preferredBlockQ(), be.preferredBlockKV());
    }

    /** {@link #induce} for {@link #crossAttention()}: one plan per query head over its queries' and its key head's buckets. */
    private InducedSparsity induceCross(AttentionShape s, Tensor q, Tensor k) {
        int qLen = s.qLen(), kvLen = s.kvLen(), d = s.headDim(), group = s.queryHeadsPerKvHead();
        Checks.intProduct("hashes·qLen query slots", hashes, qLen);
        Checks.intProduct("hashes·kvLen key slots", hashes, kvLen);
        if ((long) qLen + kvLen > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("LSH cross-attention sorts qLen + kvLen = " + ((long) qLen + kvLen) + " tokens together, more than int indexing allows");
        int perRound = rotationsPerRound();
        int columns = perRound == 0 ? 0 : Checks.intProduct("hashes·(rotations per round) rotation columns", hashes, perRound);
        if (columns > 0) Checks.intProduct("the projections max(qLen, kvLen)·rotation columns", Math.max(qLen, kvLen), columns);
        Backend be = backend();
        ContentPlan[][] plans = new ContentPlan[s.batch()][s.heads()];
        float[] rotations = columns == 0 ? null : rotations(d, columns);
        Projection.Scratch scratch = columns == 0 ? null : new Projection.Scratch(d, columns);
        float[] projected = columns == 0 ? null : new float[columns * Math.max(qLen, kvLen)];
        int[] queryBuckets = new int[hashes * qLen], keyBuckets = new int[hashes * kvLen];
        for (int b = 0; b < s.batch(); b++) {
            for (int hk = 0; hk < s.kvHeads(); hk++) {
                if (columns > 0) buckets(k, b, hk, kvLen, rotations, columns, perRound, scratch, projected, keyBuckets);
                for (int h = hk * group; h < (hk + 1) * group; h++) {
                    if (columns > 0) buckets(q, b, h, qLen, rotations, columns, perRound, scratch, projected, queryBuckets);
                    plans[b][h] = new LshCrossPlan(qLen, kvLen, hashes, buckets, chunkLength, causal, queryBuckets, keyBuckets);
                }
            }
        }
        return new InducedSparsity(plans, s.heads(), 1, group, be.preferredBlockQ(), be.preferredBlockKV());
    }

    private int rotationsPerRound() {
        int perRound = 0;
        for (int f : factors) perRound += f / 2;
        return perRound;
    }

    /** Bucket of each of the {@code rows} rows of t[b, head] in each round, into {@code out[round·rows + row]}. */
    private void buckets(Tensor t, int b, int head, int rows, float[] rotations, int columns, int perRound, Projection.Scratch scratch, float[] projected, int[] out) {
        Projection.project(t, b, head, rows, false, rotations, columns, scratch, projected);
        for (int r = 0; r < hashes; r++) Projection.buckets(projected, rows, r * perRound, factors, out, r * rows);
    }

    /** Gaussian rotations [D, columns] (row-major), a pure function of the seed and D. */
    private float[] rotations(int d, int columns) {
        Rotations cached = rotations;
        if (cached != null && cached.d == d && cached.columns == columns) return cached.values;
        SplittableRandom random = new SplittableRandom(seed);
        float[] values = new float[Checks.intProduct("the rotations D·columns", d, columns)];
        for (int i = 0; i < values.length; i++) values[i] = (float) random.nextGaussian();
        rotations = new Rotations(d, columns, values);   // a pure function of (seed, d, columns): kept for the next call, never written
        return values;
    }

    private record Rotations(int d, int columns, float[] values) {}

    /** The rotations of the last head dimension seen (drawn once, not per call). */
    private volatile Rotations rotations;

    @Override
    public String toString() {
        return "LshAttention[buckets=" + (factors.length == 1 ? String.valueOf(buckets) : buckets + " " + java.util.Arrays.toString(factors)) + ", hashes=" + hashes + ", chunkLength=" + chunkLength + ", seed=" + seed
                + (causal ? ", causal" : "") + (excludeSelf ? ", excluding self" : "") + (cross ? ", cross-attention" : "") + (backend != null ? ", " + backend.name() : "") + "]";
    }
}
