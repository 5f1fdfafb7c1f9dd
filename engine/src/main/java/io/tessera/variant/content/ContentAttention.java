package io.tessera.variant.content;

import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
import io.tessera.backend.GradientGeometry;
import io.tessera.layout.BlockLayout;
import io.tessera.layout.HeadLayouts;
import io.tessera.tensor.Tensor;
import io.tessera.variant.internal.Checks;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Runs attention over an {@link InducedSparsity} with the unchanged fused kernel: gather q, k and v
 * into slot order, one {@link Backend#attention} call per batch element over the per-head slot
 * layouts (with log-sum-exps), then combine each query's slots back into its original position by
 * log-sum-exp in float64 (as {@code Attention.merge} does: exact, because a query's slots cover
 * disjoint key sets). Nothing n×n: the gathered copies are slots×D per head.
 */
final class ContentAttention {
    private ContentAttention() {}

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** The checks of a forward call, by name: out (and lse) shaped right and sharing no memory with the inputs. */
    static AttentionShape check(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
        return check(q, k, v, out, lse, false);
    }

    /** {@link #check}, with q, k, v and out in any element type when {@code anyType} (the log-sum-exp is always F32). */
    static AttentionShape check(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, boolean anyType) {
        AttentionShape s = anyType ? Checks.attentionAnyType(q, "k", k, "v", v, out) : Checks.attention(q, "k", k, "v", v, out);
        if (lse != null) {
            Checks.float32("lse", lse);
            s.checkOutput("lse", lse, s.lseShape());
            Checks.disjoint("lse", lse, "q", q);
            Checks.disjoint("lse", lse, "k", k);
            Checks.disjoint("lse", lse, "v", v);
            Checks.disjoint("lse", lse, "out", out);
        }
        return s;
    }

    static void forward(InducedSparsity seen, Backend backend, float scale, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
        AttentionShape s = AttentionShape.of(q, k, v);
        int planHeads = seen.planHeads(), group = s.heads() / planHeads, d = s.headDim(), dv = s.valueDim();
        int slotsQ = seen.plan(0, 0).querySlots.length, slotsK = seen.plan(0, 0).keySlots.length;
        // One plan head at a time (its query heads share one layout and one gathered key/value head),
        // so the scratch is one plan head's slots, allocated and zeroed once per call.
        try (Arena scratch = Arena.ofConfined()) {
            Tensor qs = Tensor.zeros(scratch, 1, group, slotsQ, d);
            Tensor ks = Tensor.zeros(scratch, 1, 1, slotsK, d);
            Tensor vs = Tensor.zeros(scratch, 1, 1, slotsK, dv);
            Tensor os = Tensor.zeros(scratch, 1, group, slotsQ, dv);
            Tensor ls = Tensor.zeros(scratch, 1, group, slotsQ);
            double[] acc = new double[dv];
            float[] row = new float[dv];
            for (int b = 0; b < s.batch(); b++) {
                for (int p = 0; p < planHeads; p++) {
                    ContentPlan plan = seen.plan(b, p * group);
                    for (int r = 0; r < group; r++) gather(q, b, p * group + r, plan.querySlots, qs, r, d);
                    gather(k, b, seen.kvHeadOfPlan(p), plan.keySlots, ks, 0, d);
                    gather(v, b, seen.kvHeadOfPlan(p), plan.keySlots, vs, 0, dv);
                    backend.attention(qs, ks, vs, HeadLayouts.shared(seen.layout(b, p * group)), scale, os, ls);
                    for (int r = 0; r < group; r++) combine(plan, os, ls, r, out, lse, b, p * group + r, acc, row);
                }
            }
        }
    }

    /**
     * The gradients of {@link #forward}, exact for the induced mask (the hashing or clustering is a
     * constant of the step, as in the papers): the kernel's backward pass runs over the same slot
     * layouts, each slot reading its original query's combined output and log-sum-exp (so its
     * probabilities are those of the union of its query's slots), and the slot gradients are summed
     * back into the original positions in float64, in slot order (deterministic). Every allowed pair
     * sits in exactly one slot pair, so the sum is the gradient of attention under the induced mask.
     */
    static void backward(InducedSparsity seen, Backend backend, float scale, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                         Tensor dOut, Tensor dq, Tensor dk, Tensor dv) {
        AttentionShape s = AttentionShape.of(q, k, v);
        // Every argument checked by name up front, as the fused backward checks its own (one tile: O(1)).
        GradientGeometry.checked(q, k, v, HeadLayouts.shared(BlockLayout.dense(s.qLen(), s.kvLen(), s.qLen(), s.kvLen())),
                scale, out, lse, dOut, dq, dk, dv);
        int planHeads = seen.planHeads(), group = s.heads() / planHeads, d = s.headDim(), dvDim = s.valueDim();
        int slotsQ = seen.plan(0, 0).querySlots.length, slotsK = seen.plan(0, 0).keySlots.length;
        try (Arena scratch = Arena.ofConfined()) {
            Tensor qs = Tensor.zeros(scratch, 1, group, slotsQ, d), ks = Tensor.zeros(scratch, 1, 1, slotsK, d);
            Tensor vs = Tensor.zeros(scratch, 1, 1, slotsK, dvDim), os = Tensor.zeros(scratch, 1, group, slotsQ, dvDim);
            Tensor ls = Tensor.zeros(scratch, 1, group, slotsQ), dos = Tensor.zeros(scratch, 1, group, slotsQ, dvDim);
            Tensor dqs = Tensor.zeros(scratch, 1, group, slotsQ, d), dks = Tensor.zeros(scratch, 1, 1, slotsK, d);
            Tensor dvs = Tensor.zeros(scratch, 1, 1, slotsK, dvDim);
            double[] dkAcc = new double[Math.multiplyExact(s.kvLen(), d)], dvAcc = new double[Math.multiplyExact(s.kvLen(), dvDim)];
            double[] rowAcc = new double[Math.max(d, dvDim)];
            for (int b = 0; b < s.batch(); b++) {
                // Plan heads reading one key head are consecutive: their key gradients are summed, in plan-head order, before the key head is written.
                for (int p = 0; p < planHeads; p++) {
                    int hk = seen.kvHeadOfPlan(p);
                    if (p == 0 || seen.kvHeadOfPlan(p - 1) != hk) {
                        java.util.Arrays.fill(dkAcc, 0);
                        java.util.Arrays.fill(dvAcc, 0);
                    }
                    ContentPlan plan = seen.plan(b, p * group);
                    for (int r = 0; r < group; r++) {
                        int h = p * group + r;
                        gather(q, b, h, plan.querySlots, qs, r, d);
                        gather(out, b, h, plan.querySlots, os, r, dvDim);
                        gatherLse(lse, b, h, plan.querySlots, ls, r);
                        gather(dOut, b, h, plan.querySlots, dos, r, dvDim);
                    }
                    gather(k, b, hk, plan.keySlots, ks, 0, d);
                    gather(v, b, hk, plan.keySlots, vs, 0, dvDim);
                    backend.attentionBackward(qs, ks, vs, HeadLayouts.shared(seen.layout(b, p * group)), scale, os, ls, dos, dqs, dks, dvs);
                    for (int r = 0; r < group; r++) sumQuerySlots(plan, dqs, r, dq, b, p * group + r, d, rowAcc);
                    addKeySlots(plan.keySlots, dks, dkAcc, d);
                    addKeySlots(plan.keySlots, dvs, dvAcc, dvDim);
                    if (p == planHeads - 1 || seen.kvHeadOfPlan(p + 1) != hk) {
                        store(dkAcc, dk, b, hk, s.kvLen(), d);
                        store(dvAcc, dv, b, hk, s.kvLen(), dvDim);
                    }
                }
            }
        }
    }

    /** dst[b, h, i, :] = Σ over i's slots of src[0, srcHead, slot, :], in float64 (0 for a query with no slot). */
    private static void sumQuerySlots(ContentPlan plan, Tensor src, int srcHead, Tensor dst, int b, int h, int width, double[] acc) {
        MemorySegment from = src.segment(), to = dst.segment();
        long srcBase = src.offset() + srcHead * src.stride(1), srcRow = src.stride(2);
        long dstBase = dst.offset() + b * dst.stride(0) + h * dst.stride(1), dstRow = dst.stride(2);
        for (int i = 0; i < plan.qLen; i++) {
            java.util.Arrays.fill(acc, 0, width, 0);
            for (int c = 0, count = plan.slotCount(i); c < count; c++) {
                long at = srcBase + plan.slot(i, c) * srcRow;
                for (int x = 0; x < width; x++) acc[x] += from.getAtIndex(FLOAT, at + x);
            }
            for (int x = 0; x < width; x++) to.setAtIndex(FLOAT, dstBase + i * dstRow + x, (float) acc[x]);
        }
    }

    /** acc[keys[t]·width + x] += src[0, 0, t, x] for every key slot t, in slot order. */
    private static void addKeySlots(int[] keys, Tensor src, double[] acc, int width) {
        MemorySegment from = src.segment();
        long base = src.offset(), row = src.stride(2);
        for (int t = 0; t < keys.length; t++) {
            long at = base + t * row;
            int j = keys[t] * width;
            for (int x = 0; x < width; x++) acc[j + x] += from.getAtIndex(FLOAT, at + x);
        }
    }

    /** dst[b, hk, j, x] = (float) acc[j·width + x]. */
    private static void store(double[] acc, Tensor dst, int b, int hk, int kvLen, int width) {
        MemorySegment to = dst.segment();
        long dstBase = dst.offset() + b * dst.stride(0) + hk * dst.stride(1), dstRow = dst.stride(2);
        for (int j = 0; j < kvLen; j++) for (int x = 0; x < width; x++) to.setAtIndex(FLOAT, dstBase + j * dstRow + x, (float) acc[j * width + x]);
    }

    /** dst[0, head, slot] = lse[b, head, rows[slot]]. */
    private static void gatherLse(Tensor lse, int b, int head, int[] rows, Tensor dst, int dstHead) {
        MemorySegment from = lse.segment(), to = dst.segment();
        long base = lse.offset() + b * lse.stride(0) + head * lse.stride(1), step = lse.stride(2);
        long dstBase = dst.offset() + dstHead * dst.stride(1);
        for (int slot = 0; slot < rows.length; slot++) to.setAtIndex(FLOAT, dstBase + slot, from.getAtIndex(FLOAT, base + rows[slot] * step));
    }

    /** dst[0, dstHead, slot, :] = src[b, srcHead, rows[slot], :]. */
    private static void gather(Tensor src, int b, int srcHead, int[] rows, Tensor dst, int dstHead, int width) {
        MemorySegment from = src.segment(), to = dst.segment();
        long base = src.offset() + b * src.stride(0) + srcHead * src.stride(1), rowStride = src.stride(2);
        long dstBase = dst.offset() + dstHead * dst.stride(1), dstRow = dst.stride(2);
        long bytes = (long) width * Float.BYTES;
        for (int slot = 0; slot < rows.length; slot++) {
            MemorySegment.copy(from, (base + rows[slot] * rowStride) * Float.BYTES, to, (dstBase + slot * dstRow) * Float.BYTES, bytes);
        }
    }

    /**
     * Each original query's output from its slots' partial outputs: lse = log Σ exp(lse_slot),
     * out = Σ exp(lse_slot − lse)·out_slot, in float64 after subtracting the largest; slots with
     * LSE −∞ contribute nothing; a query with no slot or only empty ones gets 0 and −∞.
     * Partial results are read from head {@code srcHead} of os/ls, written to head h of out/lse.
     */
    private static void combine(ContentPlan plan, Tensor os, Tensor ls, int srcHead, Tensor out, Tensor lse, int b, int h, double[] acc, float[] row) {
        int dv = acc.length;
        MemorySegment po = os.segment(), pl = ls.segment(), dst = out.segment(), dstLse = lse == null ? null : lse.segment();
        long poBase = os.offset() + srcHead * os.stride(1), poRow = os.stride(2), plBase = ls.offset() + srcHead * ls.stride(1);
        long outBase = out.offset() + b * out.stride(0) + h * out.stride(1), outRow = out.stride(2);
        long lseBase = lse == null ? 0 : lse.offset() + b * lse.stride(0) + h * lse.stride(1), lseRow = lse == null ? 0 : lse.stride(2);
        for (int i = 0; i < plan.qLen; i++) {
            int count = plan.slotCount(i);
            double max = Double.NEGATIVE_INFINITY;
            boolean nan = false;
            for (int c = 0; c < count; c++) {
                double x = pl.getAtIndex(FLOAT, plBase + plan.slot(i, c));
                if (Double.isNaN(x)) nan = true; else if (x > max) max = x;
            }
            long o = outBase + i * outRow;
            if (nan || max == Double.NEGATIVE_INFINITY) {
                float fill = nan ? Float.NaN : 0f;
                for (int x = 0; x < dv; x++) dst.setAtIndex(FLOAT, o + x, fill);
                if (lse != null) dstLse.setAtIndex(FLOAT, lseBase + i * lseRow, nan ? Float.NaN : Float.NEGATIVE_INFINITY);
                continue;
            }
            if (count == 1) {   // one slot (one round, one cluster): its output and LSE are the query's
                MemorySegment.copy(po, FLOAT, (poBase + plan.slot(i, 0) * poRow) * Float.BYTES, dst, FLOAT, o * Float.BYTES, dv);
                if (lse != null) dstLse.setAtIndex(FLOAT, lseBase + i * lseRow, (float) max);
                continue;
            }
            double sum = 0;
            for (int c = 0; c < count; c++) {
                double x = pl.getAtIndex(FLOAT, plBase + plan.slot(i, c));
                if (x != Double.NEGATIVE_INFINITY) sum += StrictMath.exp(x - max);
            }
            java.util.Arrays.fill(acc, 0);
            for (int c = 0; c < count; c++) {
                int slot = plan.slot(i, c);
                double x = pl.getAtIndex(FLOAT, plBase + slot);
                if (x == Double.NEGATIVE_INFINITY) continue;   // an empty key set: its output is never read
                double w = StrictMath.exp(x - max) / sum;
                MemorySegment.copy(po, FLOAT, (poBase + slot * poRow) * Float.BYTES, row, 0, dv);
                for (int y = 0; y < dv; y++) acc[y] += w * row[y];
            }
            for (int y = 0; y < dv; y++) row[y] = (float) acc[y];
            MemorySegment.copy(row, 0, dst, FLOAT, o * Float.BYTES, dv);
            if (lse != null) dstLse.setAtIndex(FLOAT, lseBase + i * lseRow, (float) (max + StrictMath.log(sum)));
        }
    }
}
