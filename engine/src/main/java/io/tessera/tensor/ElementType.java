package io.tessera.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * How a {@link Tensor} stores its elements. Storage only: every kernel widens half-precision
 * elements to float32 when it reads them and accumulates in float32 (never in half precision, whose
 * sums drift), and rounds to the output's type once, when it writes a result.
 *
 * <ul>
 *   <li>{@link #F32}: IEEE binary32, the default.</li>
 *   <li>{@link #BF16}: bfloat16, the upper 16 bits of a float32 (8 exponent bits, 7 mantissa bits):
 *       float32's range, about 3 significant digits; unit roundoff 2^−8.</li>
 *   <li>{@link #F16}: IEEE binary16 (5 exponent bits, 10 mantissa bits): magnitudes up to 65504,
 *       subnormals below 2^−14; unit roundoff 2^−11.</li>
 * </ul>
 *
 * Rounding to a half type is round-to-nearest-even; values beyond the type's largest finite value
 * become infinities and NaN stays NaN, as IEEE 754 prescribes. Widening to float32 is exact.
 */
public enum ElementType {
    F32(4, 0x1p-24),
    BF16(2, 0x1p-8),
    F16(2, 0x1p-11);

    private final int byteSize;
    private final double unitRoundoff;

    ElementType(int byteSize, double unitRoundoff) {
        this.byteSize = byteSize;
        this.unitRoundoff = unitRoundoff;
    }

    /** Bytes per element: 4 or 2. */
    public int byteSize() { return byteSize; }

    /** Largest relative error of rounding a (normal, in range) value to this type: 2^−24, 2^−8, 2^−11. */
    public double unitRoundoff() { return unitRoundoff; }

    /** {@code value} rounded to this type (nearest, ties to even) and widened back to float32. */
    public float round(float value) {
        return switch (this) {
            case F32 -> value;
            case BF16 -> bfloat16ToFloat(floatToBfloat16(value));
            case F16 -> Float.float16ToFloat(Float.floatToFloat16(value));
        };
    }

    /** The element at {@code index} (in elements) of {@code segment}, widened to float32. */
    public float get(MemorySegment segment, long index) {
        return switch (this) {
            case F32 -> segment.getAtIndex(FLOAT, index);
            case BF16 -> bfloat16ToFloat(segment.getAtIndex(SHORT, index));
            case F16 -> Float.float16ToFloat(segment.getAtIndex(SHORT, index));
        };
    }

    /** Stores {@code value}, rounded to this type, at {@code index} (in elements) of {@code segment}. */
    public void set(MemorySegment segment, long index, float value) {
        switch (this) {
            case F32 -> segment.setAtIndex(FLOAT, index, value);
            case BF16 -> segment.setAtIndex(SHORT, index, floatToBfloat16(value));
            case F16 -> segment.setAtIndex(SHORT, index, Float.floatToFloat16(value));
        }
    }

    /** The bfloat16 bits nearest to {@code value} (ties to even); NaN stays a (quiet) NaN. */
    public static short floatToBfloat16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7fffffff) > 0x7f800000) return (short) ((bits >>> 16) | 0x0040);   // NaN: keep sign and payload's top, set quiet
        // Adding 0x7fff plus the lowest kept bit rounds half to even; a carry into the exponent is the correct rounding up (to ∞ past the largest finite).
        return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
    }

    /** The float32 a bfloat16 stands for (exact). */
    public static float bfloat16ToFloat(short bits) {
        return Float.intBitsToFloat(bits << 16);
    }

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
}
