package io.tessera.variant.content;

import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.pattern.CausalAlignment;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;

/**
 * Routing attention (Roy et al. 2021, Routing Transformer; clustered attention as in Vyas et al.
 * 2020) on the fused block-sparse kernel. Queries and keys are unit-normalized and scored against
 * the centroids of their head ({@link RoutingCentroids}, which the user owns and trains); each of
 * the {@code C} centroids takes its ⌈qLen/C⌉ best-scoring queries and ⌈kvLen/C⌉ best-scoring keys
 * (ties: the lower position), so clusters are balanced and their tiles stay full. A query attends
 * the keys of every cluster it belongs to, each key once (clusters are combined exactly through
 * their log-sum-exps); a query no centroid picked attends nothing (output 0, LSE −∞), as in the
 * paper, where routing heads sit beside local ones. One cluster is dense attention.
 *
 * <pre>{@code
 * RoutingCentroids centroids = RoutingCentroids.random(heads, 16, headDim, 7);
 * RoutingAttention routing = RoutingAttention.of(centroids).causal();
 * routing.forward(q, k, v, out);
 * centroids.update(q, k, 0.999);              // a training step's k-means update
 * }</pre>
 *
 * Cost per call: scoring O(n·C·D) (fp32 in a fixed order: the same clusters on every backend), O(n·C) selection, O(tiles) layout, then
 * attention over about n/C keys per query and cluster.
 */
public final class RoutingAttention extends ContentOperator {
    private final RoutingCentroids centroids;
    private final CausalAlignment causal;   // null: not causal

    private RoutingAttention(RoutingCentroids centroids, CausalAlignment causal, Backend backend, float scale) {
        super(backend, scale);
        this.centroids = centroids;
        this.causal = causal;
    }

    /** Routing attention over these centroids (read at each call, so updates take effect at the next one). */
    public static RoutingAttention of(RoutingCentroids centroids) {
        return new RoutingAttention(Checks.notNull("centroids", centroids), null, null, Float.NaN);
    }

    /**
     * The same attention, causal in the original positions, aligned top-left (query i sees keys
     * j ≤ i, as {@code Pattern.causal()} alone): the same as {@code causal(CausalAlignment.TOP_LEFT)}.
     */
    public RoutingAttention causal() { return causal(CausalAlignment.TOP_LEFT); }

    /**
     * The same attention, causal in the original positions placed as the pattern compiler places
     * them (see {@link io.tessera.pattern.Pattern}, Positions): query i sits at position
     * {@code i + alignment.diagonalShift(qLen, kvLen)} and sees keys j at or before it, so with
     * {@link CausalAlignment#BOTTOM_RIGHT} the last query sees every key (chunked prefill against
     * a cache), and queries placed before key 0 see nothing (output 0, LSE −∞).
     */
    public RoutingAttention causal(CausalAlignment alignment) {
        if (alignment == null) throw new NullPointerException("alignment");
        return new RoutingAttention(centroids, alignment, backend, scale);
    }

    @Override
    public RoutingAttention on(Backend backend) {
        if (backend == null) throw new NullPointerException("backend");
        return new RoutingAttention(centroids, causal, backend, scale);
    }

    @Override
    public RoutingAttention withScale(float scale) {
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        return new RoutingAttention(centroids, causal, backend, scale);
    }

    public RoutingCentroids centroids() { return centroids; }

    /** What clustering decides for this input with the centroids as they are now, without running attention. */
    @Override
    public InducedSparsity induce(Tensor q, Tensor k) {
        Checks.notNull("q", q);
        Checks.notNull("k", k);
        AttentionShape s = AttentionShape.of(q, k, k);
        centroids.checkFits(s);
        int clusters = centroids.clusters(), d = s.headDim();
        int perQ = ceilDiv(s.qLen(), clusters), perK = ceilDiv(s.kvLen(), clusters);
        Checks.intProduct("clusters·⌈qLen/clusters⌉ query slots", clusters, perQ);
        Checks.intProduct("clusters·⌈kvLen/clusters⌉ key slots", clusters, perK);
        Checks.intProduct("the query scores qLen·clusters", s.qLen(), clusters);
        Checks.intProduct("the key scores kvLen·clusters", s.kvLen(), clusters);
        float[] c = centroids.snapshot();
        Backend be = backend();
        ContentPlan[][] plans = new ContentPlan[s.batch()][s.heads()];
        float[] transposed = new float[clusters * d];
        Projection.Scratch scratch = new Projection.Scratch(d, clusters);
        float[] qScores = new float[s.qLen() * clusters], kScores = new float[s.kvLen() * clusters];
        Selection selection = new Selection(Math.max(s.qLen(), s.kvLen()));
        for (int h = 0; h < s.heads(); h++) {
            for (int cl = 0; cl < clusters; cl++) for (int x = 0; x < d; x++) transposed[x * clusters + cl] = c[(h * clusters + cl) * d + x];
            for (int b = 0; b < s.batch(); b++) {
                Projection.project(q, b, h, s.qLen(), true, transposed, clusters, scratch, qScores);
                Projection.project(k, b, s.kvHeadOf(h), s.kvLen(), true, transposed, clusters, scratch, kScores);
                int[] queryMembers = members(qScores, s.qLen(), clusters, perQ, selection);
                int[] keyMembers = members(kScores, s.kvLen(), clusters, perK, selection);
                plans[b][h] = new RoutingPlan(s.qLen(), s.kvLen(), clusters, perQ, perK, causal, queryMembers, keyMembers);
            }
        }
        return new InducedSparsity(plans, s.heads(), 1, s.queryHeadsPerKvHead(), be.preferredBlockQ(), be.preferredBlockKV());
    }

    private static int ceilDiv(int a, int b) { return (int) (((long) a + b - 1) / b); }

    /** Scratch of the balanced selection: each row's rank keys, a histogram of their top bits, the candidates of one bin. */
    static final class Selection {
        /** Top {@value #BIN_BITS} bits of a rank key: 4096 bins, a 16 KiB histogram that stays in L1. */
        static final int BIN_BITS = 12;
        final int[] keys;
        final int[] histogram = new int[1 << BIN_BITS];
        final long[] candidates;

        Selection(int rows) {
            keys = new int[rows];
            candidates = new long[rows];
        }
    }

    /**
     * For each cluster (a row of scores [clusters][rows]), its {@code per} best-scoring rows in
     * increasing order; NaN scores rank last, ties go to the lower row. A cluster keeps the top
     * 1/C of the rows, so instead of a quickselect over all rows (several data-dependent passes per
     * cluster), one pass ranks the rows and counts them by the top bits of their rank key, which
     * fixes the bin holding the {@code per}-th best; a second pass takes every row of the better bins
     * and only that bin's rows go through the exact quickselect (ordered by (key, row), as before).
     */
    static int[] members(float[] scores, int rows, int clusters, int per, Selection scratch) {
        int[] out = new int[clusters * per];
        int[] keys = scratch.keys, histogram = scratch.histogram;
        long[] candidates = scratch.candidates;
        int shift = 32 - Selection.BIN_BITS;
        for (int c = 0; c < clusters; c++) {
            java.util.Arrays.fill(histogram, 0);
            for (int i = 0; i < rows; i++) {
                int key = descendingKey(scores[c * rows + i]);
                keys[i] = key;
                histogram[(key ^ Integer.MIN_VALUE) >>> shift]++;   // unsigned order of the bins = signed order of the keys
            }
            int bin = 0, better = 0;
            while (better + histogram[bin] < per) better += histogram[bin++];   // ends inside the table: Σ histogram = rows ≥ per
            int at = c * per, found = 0;
            for (int i = 0; i < rows; i++) {
                int key = keys[i], b = (key ^ Integer.MIN_VALUE) >>> shift;
                if (b < bin) out[at++] = i;
                else if (b == bin) candidates[found++] = ((long) key << 32) | i;
            }
            int rest = per - better;
            selectSmallest(candidates, found, rest);
            for (int m = 0; m < rest; m++) out[at++] = (int) candidates[m];
            java.util.Arrays.sort(out, c * per, (c + 1) * per);
        }
        return out;
    }

    /** An int whose signed order is the descending order of the score, NaN last. */
    private static int descendingKey(float x) {
        if (Float.isNaN(x)) return Integer.MAX_VALUE;
        int bits = Float.floatToIntBits(x == 0f ? 0f : x);
        int ascending = bits >= 0 ? bits : bits ^ 0x7fffffff;
        return ~ascending;
    }

    /** Moves the {@code count} smallest of a[0, n) to a[0, count) (unordered): quickselect, O(n) expected, deterministic pivots. */
    static void selectSmallest(long[] a, int n, int count) {
        int lo = 0, hi = n - 1;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            long x = a[lo], y = a[mid], z = a[hi];
            long pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z));   // median of three
            int i = lo, j = hi;
            while (i <= j) {
                while (a[i] < pivot) i++;
                while (a[j] > pivot) j--;
                if (i <= j) {
                    long t = a[i]; a[i] = a[j]; a[j] = t;
                    i++;
                    j--;
                }
            }
            // [lo, j] ≤ pivot ≤ [i, hi]; keys are distinct, so the boundary is exact.
            if (count - 1 <= j) hi = j;
            else if (count - 1 >= i) lo = i;
            else return;
        }
    }

    @Override
    public String toString() {
        return "RoutingAttention[" + centroids + (causal == null ? "" : causal == CausalAlignment.TOP_LEFT ? ", causal" : ", causal " + causal) + (backend != null ? ", " + backend.name() : "") + "]";
    }
}
