package io.tessera.variant.content;

import io.tessera.backend.AttentionShape;
import io.tessera.backend.Backend;
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
        AttentionShape s = Checks.attention(q, "k", k, "v", v, out);
        if (lse != null) {
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
        int heads = s.heads(), planHeads = seen.planHeads(), d = s.headDim(), dv = s.valueDim();
        int slotsQ = seen.plan(0, 0).querySlots.length, slotsK = seen.plan(0, 0).keySlots.length;
        try (Arena scratch = Arena.ofConfined()) {
            Tensor qs = Tensor.zeros(scratch, 1, heads, slotsQ, d);
            Tensor ks = Tensor.zeros(scratch, 1, planHeads, slotsK, d);
            Tensor vs = Tensor.zeros(scratch, 1, planHeads, slotsK, dv);
            Tensor os = Tensor.zeros(scratch, 1, heads, slotsQ, dv);
            Tensor ls = Tensor.zeros(scratch, 1, heads, slotsQ);
            for (int b = 0; b < s.batch(); b++) {
                for (int h = 0; h < heads; h++) gather(q, b, h, seen.plan(b, h).querySlots, qs, h, d);
                for (int p = 0; p < planHeads; p++) {
                    int[] keys = seen.plan(b, p * (heads / planHeads)).keySlots;
                    gather(k, b, seen.kvHeadOfPlan(p), keys, ks, p, d);
                    gather(v, b, seen.kvHeadOfPlan(p), keys, vs, p, dv);
                }
                backend.attention(qs, ks, vs, seen.headLayouts(b), scale, os, ls);
                for (int h = 0; h < heads; h++) combine(seen.plan(b, h), os, ls, h, out, lse, b, dv);
            }
        }
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
     */
    private static void combine(ContentPlan plan, Tensor os, Tensor ls, int h, Tensor out, Tensor lse, int b, int dv) {
        MemorySegment po = os.segment(), pl = ls.segment(), dst = out.segment(), dstLse = lse == null ? null : lse.segment();
        long poBase = os.offset() + h * os.stride(1), poRow = os.stride(2), plBase = ls.offset() + h * ls.stride(1);
        long outBase = out.offset() + b * out.stride(0) + h * out.stride(1), outRow = out.stride(2);
        long lseBase = lse == null ? 0 : lse.offset() + b * lse.stride(0) + h * lse.stride(1), lseRow = lse == null ? 0 : lse.stride(2);
        double[] acc = new double[dv];
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
            double sum = 0;
            for (int c = 0; c < count; c++) {
                double x = pl.getAtIndex(FLOAT, plBase + plan.slot(i, c));
                if (x != Double.NEGATIVE_INFINITY) sum += Math.exp(x - max);
            }
            java.util.Arrays.fill(acc, 0);
            for (int c = 0; c < count; c++) {
                int slot = plan.slot(i, c);
                double x = pl.getAtIndex(FLOAT, plBase + slot);
                if (x == Double.NEGATIVE_INFINITY) continue;   // an empty key set: its output is never read
                double w = Math.exp(x - max) / sum;
                long src = poBase + slot * poRow;
                for (int y = 0; y < dv; y++) acc[y] += w * po.getAtIndex(FLOAT, src + y);
            }
            for (int y = 0; y < dv; y++) dst.setAtIndex(FLOAT, o + y, (float) acc[y]);
            if (lse != null) dstLse.setAtIndex(FLOAT, lseBase + i * lseRow, (float) (max + Math.log(sum)));
        }
    }
}
