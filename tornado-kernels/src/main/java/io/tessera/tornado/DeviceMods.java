package io.tessera.tornado;

import io.tessera.pattern.ScoreMod;
import java.util.ArrayList;
import java.util.List;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * A call's score modifier in the arrays {@link AttentionKernel} reads: the steps (kind and where
 * its values start) and their values in the CPU kernels' base-2 units, taken from
 * {@link ScoreMod.Plan} so the device applies exactly what the CPU kernels apply. Rebuilt per call
 * (a learnable table may change between calls) and sent on every execution; a plan is keyed by
 * {@link #shape} only, so calls with other values of the same modifier reuse it.
 */
record DeviceMods(IntArray steps, FloatArray values, List<Integer> shape) {

    static final float LOG2E = 1.44269504088896341f;

    /** No modifier: a step count of 0 (TornadoVM arrays cannot be empty, so one unused value). */
    static DeviceMods none() {
        IntArray steps = new IntArray(AttentionKernel.MOD_FIRST);
        return new DeviceMods(steps, new FloatArray(1), List.of(0));
    }

    /**
     * The device form of {@code plan} ({@code null}: none). Throws for a step the device cannot run
     * (a user function: TornadoVM compiles kernels from Java bytecode ahead of the call, and a
     * lambda's body is not part of the kernel) naming it.
     */
    static DeviceMods of(ScoreMod.Plan plan, int heads, int qLen, int kvLen) {
        if (plan == null) return none();
        int n = plan.steps();
        long distances = (long) qLen + kvLen - 1;
        long total = 0;
        for (int st = 0; st < n; st++) total += length(plan, st, heads, distances, kvLen);
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("score modifier " + plan.mod() + " needs " + total + " values on the device, more than int indexing allows");
        }
        IntArray steps = new IntArray(AttentionKernel.MOD_FIRST + 2 * n);
        FloatArray values = new FloatArray((int) Math.max(1, total));
        steps.set(AttentionKernel.MOD_STEPS, n);
        steps.set(AttentionKernel.MOD_QUERY_OFFSET, plan.queryOffset());
        List<Integer> shape = new ArrayList<>(n + 1);
        shape.add(n);
        int at = 0;
        for (int st = 0; st < n; st++) {
            int kind = plan.kind(st);
            steps.set(AttentionKernel.MOD_FIRST + 2 * st, deviceKind(kind));
            steps.set(AttentionKernel.MOD_FIRST + 2 * st + 1, at);
            shape.add(kind);
            write(plan, st, heads, (int) distances, kvLen, values, at);
            at += (int) length(plan, st, heads, distances, kvLen);
        }
        return new DeviceMods(steps, values, List.copyOf(shape));
    }

    /**
     * Writes step {@code st}'s values at {@code values[at …)}: LINEAR one slope per head; DISTANCE
     * per head its table over {@code distances} relative indices; KEY per head one value per key of
     * {@code kvLen}; SOFT_CAP the cap and its inverse (all base 2, as the plan holds them).
     */
    static void write(ScoreMod.Plan plan, int st, int heads, int distances, int kvLen, FloatArray values, int at) {
        int kind = plan.kind(st);
        switch (kind) {
            case ScoreMod.Plan.LINEAR -> {
                for (int h = 0; h < heads; h++) values.set(at + h, plan.slope(st, h));
            }
            case ScoreMod.Plan.DISTANCE -> {
                for (int h = 0; h < heads; h++) {
                    float[] row = plan.row(st, h);
                    for (int x = 0; x < distances; x++) values.set(at + h * distances + x, row[x]);
                }
            }
            case ScoreMod.Plan.KEY -> {
                for (int h = 0; h < heads; h++) {
                    float[] row = plan.row(st, h);
                    for (int j = 0; j < kvLen; j++) values.set(at + h * kvLen + j, row[j]);
                }
            }
            case ScoreMod.Plan.SOFT_CAP -> {
                values.set(at, plan.cap(st));
                values.set(at + 1, plan.inverseCap(st));
            }
            default -> throw new IllegalStateException("unreachable: step kind " + kind);
        }
    }

    /** Values step {@code st} needs ({@link #write}); throws for a user function, naming it. */
    static long length(ScoreMod.Plan plan, int st, int heads, long distances, int kvLen) {
        return switch (plan.kind(st)) {
            case ScoreMod.Plan.LINEAR -> heads;
            case ScoreMod.Plan.DISTANCE -> heads * distances;
            case ScoreMod.Plan.KEY -> (long) heads * kvLen;
            case ScoreMod.Plan.SOFT_CAP -> 2;
            case ScoreMod.Plan.FUNCTION -> throw new UnsupportedOperationException("backend 'tornado' cannot run the score function '"
                    + plan.mod() + "' on the device: TornadoVM compiles its kernels from Java bytecode before the call, and a user"
                    + " function is not part of them. Use the built-in modifiers (ScoreMod.alibi, relativeBias, softCap, bias) or the"
                    + " 'simd' or 'scalar' backend");
            default -> throw new IllegalStateException("unknown score modifier step kind " + plan.kind(st));
        };
    }

    static int deviceKind(int kind) {
        return switch (kind) {
            case ScoreMod.Plan.LINEAR -> AttentionKernel.MOD_LINEAR;
            case ScoreMod.Plan.DISTANCE -> AttentionKernel.MOD_DISTANCE;
            case ScoreMod.Plan.KEY -> AttentionKernel.MOD_KEY;
            case ScoreMod.Plan.SOFT_CAP -> AttentionKernel.MOD_SOFT_CAP;
            default -> throw new IllegalStateException("unreachable: step kind " + kind);
        };
    }

    /** Arrays of the same shape for a plan to own (the call's arrays are refilled into them on every execution). */
    DeviceMods copy() {
        IntArray s = new IntArray(steps.getSize());
        FloatArray v = new FloatArray(values.getSize());
        DeviceMods c = new DeviceMods(s, v, shape);
        c.fillFrom(this);
        return c;
    }

    /** Copies {@code call}'s steps and values (same shape) into this plan's arrays. */
    void fillFrom(DeviceMods call) {
        for (int i = 0; i < steps.getSize(); i++) steps.set(i, call.steps.get(i));
        for (int i = 0; i < values.getSize(); i++) values.set(i, call.values.get(i));
    }
}
