package io.tessera.variant.content;

import io.tessera.layout.BlockLayout;
import io.tessera.pattern.MaskFunction;

/**
 * The sparsity that hashing or clustering chose for one input: for every (batch, query head) the
 * permuted order of queries and keys, the block-sparse layout the fused kernel runs over that order,
 * and the element mask it induces on the original positions. It is a {@link MaskFunction}, so the
 * float64 oracle can be run with exactly the keys each query saw:
 *
 * <pre>{@code
 * InducedSparsity seen = lsh.induce(q, k);
 * DenseReference.attention(q, k, v, seen, scale);     // what lsh.forward computes, in float64
 * System.out.println(seen.layout(0, 0));               // block map over the sorted order
 * System.out.println(seen.drawElementMask(0, 0));      // which keys each query saw (small n)
 * }</pre>
 */
public final class InducedSparsity implements MaskFunction {
    private final ContentPlan[][] plans;        // [batch][plan head]
    private final BlockLayout[][] layouts;      // [batch][plan head]
    private final int heads;
    private final int queryHeadsPerPlan;        // query head h uses plan h / queryHeadsPerPlan
    private final int queryHeadsPerKvHead;

    InducedSparsity(ContentPlan[][] plans, int heads, int queryHeadsPerPlan, int queryHeadsPerKvHead, int blockQ, int blockKV) {
        this.plans = plans;
        this.heads = heads;
        this.queryHeadsPerPlan = queryHeadsPerPlan;
        this.queryHeadsPerKvHead = queryHeadsPerKvHead;
        this.layouts = new BlockLayout[plans.length][];
        for (int b = 0; b < plans.length; b++) {
            layouts[b] = new BlockLayout[plans[b].length];
            for (int p = 0; p < plans[b].length; p++) layouts[b][p] = plans[b][p].layout(blockQ, blockKV);
        }
    }

    public int batch() { return plans.length; }
    public int heads() { return heads; }
    public int qLen() { return plans[0][0].qLen; }
    public int kvLen() { return plans[0][0].kvLen; }

    /** May query {@code i} of (batch {@code b}, head {@code h}) attend key {@code j}? The union over its slots. */
    @Override
    public boolean allowed(int b, int h, int i, int j) {
        ContentPlan plan = plan(b, h);
        if (i < 0 || i >= plan.qLen) throw new IndexOutOfBoundsException("query i=" + i + " outside [0, " + plan.qLen + ")");
        if (j < 0 || j >= plan.kvLen) throw new IndexOutOfBoundsException("key j=" + j + " outside [0, " + plan.kvLen + ")");
        return plan.allowed(i, j);
    }

    /** The layout the fused kernel runs for (b, h), over the permuted slots (prints as a block map). */
    public BlockLayout layout(int b, int h) {
        plan(b, h);
        return layouts[b][h / queryHeadsPerPlan];
    }

    /** The original query index at each query slot of (b, h): the permutation (a query may appear several times, or not at all). */
    public int[] querySlots(int b, int h) { return plan(b, h).querySlots.clone(); }

    /** The original key index at each key slot of (b, h). */
    public int[] keySlots(int b, int h) { return plan(b, h).keySlots.clone(); }

    /** Number of (query, key) pairs of (b, h) the induced mask allows (O(qLen·kvLen): for inspection, not the hot path). */
    public long allowedPairs(int b, int h) {
        ContentPlan plan = plan(b, h);
        long count = 0;
        for (int i = 0; i < plan.qLen; i++) for (int j = 0; j < plan.kvLen; j++) if (plan.allowed(i, j)) count++;
        return count;
    }

    /** The induced element mask of (b, h) in original order, one line per query: '█' attended, '·' not. At most 256 × 256. */
    public String drawElementMask(int b, int h) {
        ContentPlan plan = plan(b, h);
        if (plan.qLen > 256 || plan.kvLen > 256) {
            throw new IllegalArgumentException("drawElementMask draws at most 256x256 pairs, got qLen=" + plan.qLen + ", kvLen=" + plan.kvLen + "; print layout(b, h) instead");
        }
        StringBuilder sb = new StringBuilder(plan.describe()).append(", batch ").append(b).append(", head ").append(h).append(", original order\n");
        for (int i = 0; i < plan.qLen; i++) {
            for (int j = 0; j < plan.kvLen; j++) sb.append(plan.allowed(i, j) ? '█' : '·');
            sb.append('\n');
        }
        return sb.toString();
    }

    ContentPlan plan(int b, int h) {
        if (b < 0 || b >= plans.length) throw new IndexOutOfBoundsException("batch b=" + b + " outside [0, " + plans.length + ")");
        if (h < 0 || h >= heads) throw new IndexOutOfBoundsException("head h=" + h + " outside [0, " + heads + ")");
        return plans[b][h / queryHeadsPerPlan];
    }

    /** Plans of batch b: the key/value tensors the kernel reads have one head per plan. */
    int planHeads() { return plans[0].length; }

    /** The input key/value head that plan head p gathers from. */
    int kvHeadOfPlan(int p) { return p * queryHeadsPerPlan / queryHeadsPerKvHead; }

    @Override
    public String toString() {
        return "InducedSparsity[" + plans[0][0].describe() + ", batch " + plans.length + ", heads " + heads + "]";
    }
}
