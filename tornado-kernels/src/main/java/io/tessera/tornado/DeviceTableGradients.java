package io.tessera.tornado;

import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.Tensor;
import java.util.List;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * The learnable relative-bias tables of a backward call, as {@link AttentionBackwardKernel#keyGradients}
 * reads them: per modifier step its bucket map's start (−1: not learnable), bucket count and partial
 * sums' start, the bucket maps, and the partial sums the kernel writes, one per (step, batch, query
 * head, key block, bucket). {@link #sumInto} adds the partials over batch then key block, in order:
 * deterministic, no atomics on the device.
 */
record DeviceTableGradients(IntArray learn, IntArray bucketOf, FloatArray partials, int learned, List<Integer> shape) {

    /** No modifier, or one without learnable tables: one unused slot each (TornadoVM arrays cannot be empty). */
    static DeviceTableGradients of(ScoreMod.Plan plan, int batch, int heads, int qLen, int kvLen, int kvBlocks) {
        int steps = plan == null ? 0 : plan.steps();
        IntArray learn = new IntArray(Math.max(1, steps * AttentionBackwardKernel.LEARN_STRIDE));
        long maps = 0, partials = 0;
        int learned = 0;
        int distances = qLen + kvLen - 1;
        for (int st = 0; st < steps; st++) {
            learn.set(st * AttentionBackwardKernel.LEARN_STRIDE + AttentionBackwardKernel.LEARN_MAP, -1);
            if (plan.parameter(st) < 0) continue;
            learned++;
            learn.set(st * AttentionBackwardKernel.LEARN_STRIDE + AttentionBackwardKernel.LEARN_MAP, (int) Math.min(maps, Integer.MAX_VALUE));
            learn.set(st * AttentionBackwardKernel.LEARN_STRIDE + AttentionBackwardKernel.LEARN_BUCKETS, plan.bucketCount(st));
            learn.set(st * AttentionBackwardKernel.LEARN_STRIDE + AttentionBackwardKernel.LEARN_PARTIALS, (int) Math.min(partials, Integer.MAX_VALUE));
            maps += distances;
            partials += (long) batch * heads * kvBlocks * plan.bucketCount(st);
        }
        if (maps > Integer.MAX_VALUE - 8 || partials > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("the bias tables' gradient partial sums need " + partials + " floats (batch x heads x key blocks x buckets)"
                    + " and their bucket maps " + maps + " ints: more than int indexing allows on the device");
        }
        IntArray bucketOf = new IntArray((int) Math.max(1, maps));
        int at = 0;
        for (int st = 0; st < steps; st++) {
            if (plan.parameter(st) < 0) continue;
            int[] map = plan.buckets(st);
            for (int i = 0; i < distances; i++) bucketOf.set(at + i, map[i]);
            at += distances;
        }
        return new DeviceTableGradients(learn, bucketOf, new FloatArray((int) Math.max(1, partials)), learned, List.of((int) maps, (int) partials));
    }

    /** Arrays of the same shape for a plan to own. */
    DeviceTableGradients copy() {
        DeviceTableGradients c = new DeviceTableGradients(new IntArray(learn.getSize()), new IntArray(bucketOf.getSize()),
                new FloatArray(partials.getSize()), learned, shape);
        c.fillFrom(this);
        return c;
    }

    /** Copies {@code call}'s step entries and bucket maps (same shape) into this plan's arrays. */
    void fillFrom(DeviceTableGradients call) {
        for (int i = 0; i < learn.getSize(); i++) learn.set(i, call.learn.get(i));
        for (int i = 0; i < bucketOf.getSize(); i++) bucketOf.set(i, call.bucketOf.get(i));
    }

    /** Each learnable table's gradient [heads, buckets] into {@code dParameters}: the partials summed over batch, then key block. */
    void sumInto(ScoreMod.Plan plan, int batch, int heads, int kvBlocks, List<Tensor> dParameters) {
        if (plan == null) return;
        for (int st = 0; st < plan.steps(); st++) {
            int p = plan.parameter(st);
            if (p < 0) continue;
            int buckets = plan.bucketCount(st);
            int base = learn.get(st * AttentionBackwardKernel.LEARN_STRIDE + AttentionBackwardKernel.LEARN_PARTIALS);
            Tensor d = dParameters.get(p);
            for (int h = 0; h < heads; h++) {
                for (int bucket = 0; bucket < buckets; bucket++) {
                    float sum = 0f;
                    for (int b = 0; b < batch; b++) {
                        for (int kb = 0; kb < kvBlocks; kb++) sum += partials.get(base + ((b * heads + h) * kvBlocks + kb) * buckets + bucket);
                    }
                    d.set(sum, h, bucket);
                }
            }
        }
    }
}
