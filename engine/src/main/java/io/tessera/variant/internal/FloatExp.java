package io.tessera.variant.internal;

/**
 * The one float e^x of the variants' element-wise passes (the kernelized feature maps, the
 * low-rank softmaxes), with a Vector API twin {@link FloatExpSimd} that gives the same bits lane
 * by lane. About 1 ulp (within 2 of {@code Math.exp}): x·log₂e = t + tLow (tLow the product's
 * rounding error, from an fma, and the constant's), k = round(t), 2^(t − k + tLow) by Cephes'
 * exp2f polynomial, 2^k shifted into the exponent field. x below −90 gives exactly 0 (also −∞;
 * results below the normal range, e^x < 2^−126, are 0 or subnormal), x above 88 is taken as 88;
 * NaN stays NaN. Only add, multiply, fma, compare and integer shifts: the same bits in every JIT
 * tier, at every vector width and in the scalar loops.
 */
public final class FloatExp {
    private FloatExp() {}

    public static final float LOG2E = 1.442695f;
    /** log₂e − (float) log₂e: the product x·log₂e is formed to about 2^−48 relative with one fma. */
    public static final float LOG2E_LOW = (float) (1.4426950408889634 - (double) LOG2E);
    /** e^x clamps x below here: 2^(x·log₂e) then has k = −127, whose exponent field 0 makes the result exactly 0. */
    public static final float MIN_ARGUMENT = -90f;
    /** e^x clamps x above here (k ≤ 127 keeps the exponent field in range). */
    public static final float MAX_ARGUMENT = 88f;
    public static final float ROUND_MAGIC = 12582912f;   // 1.5·2^23: adding it rounds to an integer kept in the low bits
    public static final float EXP2_MIN = -127f;
    public static final int EXPONENT_BIAS_BITS = 127 << 23;
    /** Cephes' exp2f minimax coefficients: 2^f = 1 + f·P(f) on |f| ≤ ½ (relative error ~1e-7). */
    public static final float P0 = 1.535336188319500e-4f, P1 = 1.339887440266574e-3f, P2 = 9.618437357674640e-3f;
    public static final float P3 = 5.550332471162809e-2f, P4 = 2.402264791363012e-1f, P5 = 6.931472028550421e-1f;

    public static float exp(float x) {
        x = x < MIN_ARGUMENT ? MIN_ARGUMENT : x;
        x = x > MAX_ARGUMENT ? MAX_ARGUMENT : x;
        float t = x * LOG2E;
        float tLow = Math.fma(x, LOG2E, -t) + x * LOG2E_LOW;
        t = t < EXP2_MIN ? EXP2_MIN : t;
        float rounded = t + ROUND_MAGIC;
        float f = (t - (rounded - ROUND_MAGIC)) + tLow;
        float p = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(f, P0, P1), f, P2), f, P3), f, P4), f, P5);
        float scale = Float.intBitsToFloat((Float.floatToRawIntBits(rounded) << 23) + EXPONENT_BIAS_BITS);
        return Math.fma(f, p, 1f) * scale;
    }
}
