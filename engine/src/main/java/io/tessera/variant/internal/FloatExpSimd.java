package io.tessera.variant.internal;

import static io.tessera.variant.internal.FloatExp.*;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * {@link FloatExp#exp}, lane by lane, operation for operation, at the width of the vector passed
 * (loaded only when the incubator module is present). Small enough for C2 to inline into every
 * loop that calls it, so the vectors stay in registers.
 */
public final class FloatExpSimd {
    private FloatExpSimd() {}

    public static FloatVector exp(FloatVector x) {
        x = x.blend(MIN_ARGUMENT, x.compare(VectorOperators.LT, MIN_ARGUMENT));
        x = x.blend(MAX_ARGUMENT, x.compare(VectorOperators.GT, MAX_ARGUMENT));
        FloatVector t = x.mul(LOG2E);
        FloatVector tLow = x.fma(x.broadcast(LOG2E), t.neg()).add(x.mul(LOG2E_LOW));
        t = t.blend(EXP2_MIN, t.compare(VectorOperators.LT, EXP2_MIN));
        FloatVector rounded = t.add(ROUND_MAGIC);
        FloatVector g = t.sub(rounded.sub(ROUND_MAGIC)).add(tLow);
        FloatVector p = g.fma(P0, P1).fma(g, x.broadcast(P2)).fma(g, x.broadcast(P3)).fma(g, x.broadcast(P4)).fma(g, x.broadcast(P5));
        FloatVector scale = rounded.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(EXPONENT_BIAS_BITS).reinterpretAsFloats();
        return g.fma(p, x.broadcast(1f)).mul(scale);
    }
}
