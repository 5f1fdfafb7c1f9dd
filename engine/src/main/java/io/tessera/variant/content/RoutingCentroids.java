package io.tessera.variant.content;

import io.tessera.backend.AttentionShape;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The cluster centroids of {@link RoutingAttention}: {@code heads × clusters} unit vectors of
 * {@code dim}, state the user owns (save it with {@link #toArray}, restore with {@link #of}) and
 * trains with {@link #update}, the Routing Transformer's mini-batch k-means with an exponential
 * moving average (Roy et al. 2021). Thread-safe: attention reads a snapshot, updates are atomic.
 */
public final class RoutingCentroids {
    private final int heads, clusters, dim;
    private float[] values;   // [head][cluster][dim], each row of unit length; replaced, never written in place

    private RoutingCentroids(int heads, int clusters, int dim, float[] values) {
        this.heads = heads;
        this.clusters = clusters;
        this.dim = dim;
        this.values = values;
    }

    /** Seeded random unit centroids. */
    public static RoutingCentroids random(int heads, int clusters, int dim, long seed) {
        int count = checkedCount(heads, clusters, dim);
        SplittableRandom random = new SplittableRandom(seed);
        float[] v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float) random.nextGaussian();
        normalizeRows(v, dim, "random");
        return new RoutingCentroids(heads, clusters, dim, v);
    }

    /** Centroids from saved values {@code [heads][clusters][dim]} (each row is normalized; rows must be finite and non-zero). */
    public static RoutingCentroids of(float[] values, int heads, int clusters, int dim) {
        if (values == null) throw new NullPointerException("values");
        int count = checkedCount(heads, clusters, dim);
        if (values.length != count) {
            throw new IllegalArgumentException("values.length=" + values.length + " must be heads·clusters·dim = " + heads + "·" + clusters + "·" + dim + " = " + count);
        }
        float[] v = values.clone();
        normalizeRows(v, dim, "values");
        return new RoutingCentroids(heads, clusters, dim, v);
    }

    private static int checkedCount(int heads, int clusters, int dim) {
        if (heads < 1) throw new IllegalArgumentException("heads must be >= 1, got " + heads);
        if (clusters < 1) throw new IllegalArgumentException("clusters must be >= 1, got " + clusters);
        if (dim < 1) throw new IllegalArgumentException("dim must be >= 1, got " + dim);
        return Checks.intProduct("heads·clusters·dim centroid values", (long) heads * clusters, dim);
    }

    private static void normalizeRows(float[] v, int dim, String name) {
        for (int row = 0; row < v.length / dim; row++) {
            double norm = 0;
            for (int x = 0; x < dim; x++) norm += (double) v[row * dim + x] * v[row * dim + x];
            if (!(norm > 0) || !Double.isFinite(norm)) {
                throw new IllegalArgumentException(name + " row " + row + " has norm² " + norm + "; centroids must be finite and non-zero");
            }
            double inv = 1 / Math.sqrt(norm);
            for (int x = 0; x < dim; x++) v[row * dim + x] = (float) (v[row * dim + x] * inv);
        }
    }

    public int heads() { return heads; }
    public int clusters() { return clusters; }
    public int dim() { return dim; }

    /** A copy of the centroids, {@code [heads][clusters][dim]}: what to save. */
    public synchronized float[] toArray() { return values.clone(); }

    /** The current centroids (never modified in place). */
    synchronized float[] snapshot() { return values; }

    /**
     * One mini-batch k-means step with an exponential moving average: each (unit-normalized) query
     * of head h and key of its key head joins its nearest centroid of head h (ties: the lower
     * index), and each centroid moves to {@code normalize(decay·c + (1 − decay)·mean of its members)};
     * a centroid with no member is unchanged. Float64, deterministic.
     *
     * @param decay in [0, 1): the weight of the old centroid
     */
    public void update(Tensor q, Tensor k, double decay) {
        Checks.notNull("q", q);
        Checks.notNull("k", k);
        if (!(decay >= 0 && decay < 1)) throw new IllegalArgumentException("decay must be in [0, 1), got " + decay);
        AttentionShape s = AttentionShape.of(q, k, k);
        checkFits(s);
        synchronized (this) {
            float[] next = values.clone();
            double[] sum = new double[clusters * dim];
            long[] members = new long[clusters];
            double[] row = new double[dim];
            for (int h = 0; h < heads; h++) {
                Arrays.fill(sum, 0);
                Arrays.fill(members, 0);
                for (int b = 0; b < s.batch(); b++) {
                    for (int i = 0; i < s.qLen(); i++) assign(q, b, h, i, h, row, sum, members);
                    for (int j = 0; j < s.kvLen(); j++) assign(k, b, s.kvHeadOf(h), j, h, row, sum, members);
                }
                for (int c = 0; c < clusters; c++) {
                    if (members[c] == 0) continue;
                    int at = (h * clusters + c) * dim;
                    double norm = 0;
                    for (int x = 0; x < dim; x++) {
                        row[x] = decay * values[at + x] + (1 - decay) * sum[c * dim + x] / members[c];
                        norm += row[x] * row[x];
                    }
                    if (!(norm > 0) || !Double.isFinite(norm)) continue;   // a degenerate step (NaN inputs, cancellation) keeps the old centroid
                    double inv = 1 / Math.sqrt(norm);
                    for (int x = 0; x < dim; x++) next[at + x] = (float) (row[x] * inv);
                }
            }
            values = next;
        }
    }

    /** Adds the unit-normalized row (b, head, i) of t to the sum of its nearest centroid of centroid head h. */
    private void assign(Tensor t, int b, int head, int i, int h, double[] row, double[] sum, long[] members) {
        double norm = 0;
        for (int x = 0; x < dim; x++) {
            row[x] = t.get(b, head, i, x);
            norm += row[x] * row[x];
        }
        if (!(norm > 0) || !Double.isFinite(norm)) return;   // a zero or non-finite vector has no direction
        int best = 0;
        double bestScore = Double.NEGATIVE_INFINITY;
        for (int c = 0; c < clusters; c++) {
            int at = (h * clusters + c) * dim;
            double dot = 0;
            for (int x = 0; x < dim; x++) dot += row[x] * values[at + x];
            if (dot > bestScore) { bestScore = dot; best = c; }
        }
        double inv = 1 / Math.sqrt(norm);
        for (int x = 0; x < dim; x++) sum[best * dim + x] += row[x] * inv;
        members[best]++;
    }

    /** The call's heads and head dimension must be the centroids'. */
    void checkFits(AttentionShape s) {
        if (s.heads() != heads) throw new IllegalArgumentException("centroids have heads=" + heads + " but q has " + s.heads() + " heads");
        if (s.headDim() != dim) throw new IllegalArgumentException("centroids have dim=" + dim + " but q and k have head dimension " + s.headDim());
    }

    @Override
    public String toString() { return "RoutingCentroids[heads=" + heads + ", clusters=" + clusters + ", dim=" + dim + "]"; }
}
