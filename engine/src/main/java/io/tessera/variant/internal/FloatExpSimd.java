package io.tessera.variant.internal;

import static io.tessera.variant.internal.FloatExp.*;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link FloatExp#exp} lane by lane, operation for operation, over arrays (loaded only when the
 * incubator module is present). Arrays in, arrays out, with the loop here: no vector crosses a
 * call. A kernel that called a vector-valued {@code exp(FloatVector)} kept its vectors in registers
 * only while C2 inlined that call, and C2 decides per compilation from the call site's profile: in
 * a JVM that had run the Performer (and the causal pass, Nyström) first, linear attention's kernels
 * were recompiled with exp out of line, its vector argument and result boxed and its operations run
 * by the Vector API's Java fallback (measured: linear attention's forward 5.4 → 7.4 ms at n = 4096;
 * in the main job's peer table, after the peer check's small shapes, linear attention and Nyström
 * ran at a fifth and a third of their own table's speed).
 */
public final class FloatExpSimd {
    private FloatExpSimd() {}

    private static final VectorSpecies<Float> F = VariantSpecies.FLOATS;

    /**
     * x[i] = e^(x[i] − minus) for i in [from, to), {@code to − from} a multiple of the lanes; the
     * scalar {@code FloatExp.exp(x[i] − minus)} bit for bit (minus = 0 leaves x[i] − 0 = x[i]).
     */
    public static void expInPlace(float[] x, int from, int to, float minus) {
        FloatVector m = FloatVector.broadcast(F, minus);
        FloatVector lowest = FloatVector.broadcast(F, MIN_ARGUMENT), highest = FloatVector.broadcast(F, MAX_ARGUMENT);
        FloatVector log2e = FloatVector.broadcast(F, LOG2E), log2eLow = FloatVector.broadcast(F, LOG2E_LOW), exp2Min = FloatVector.broadcast(F, EXP2_MIN);
        FloatVector magic = FloatVector.broadcast(F, ROUND_MAGIC), one = FloatVector.broadcast(F, 1f);
        FloatVector p0 = FloatVector.broadcast(F, P0), p1 = FloatVector.broadcast(F, P1), p2 = FloatVector.broadcast(F, P2);
        FloatVector p3 = FloatVector.broadcast(F, P3), p4 = FloatVector.broadcast(F, P4), p5 = FloatVector.broadcast(F, P5);
        for (int i = from; i < to; i += F.length()) {
            FloatVector y = FloatVector.fromArray(F, x, i).sub(m);
            y = y.blend(lowest, y.compare(VectorOperators.LT, lowest));
            y = y.blend(highest, y.compare(VectorOperators.GT, highest));
            FloatVector t = y.mul(log2e);
            FloatVector tLow = y.fma(log2e, t.neg()).add(y.mul(log2eLow));
            t = t.blend(exp2Min, t.compare(VectorOperators.LT, exp2Min));
            FloatVector rounded = t.add(magic);
            FloatVector g = t.sub(rounded.sub(magic)).add(tLow);
            FloatVector p = g.fma(p0, p1).fma(g, p2).fma(g, p3).fma(g, p4).fma(g, p5);
            FloatVector scale = rounded.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(EXPONENT_BIAS_BITS).reinterpretAsFloats();
            g.fma(p, one).mul(scale).intoArray(x, i);
        }
    }
}
