package io.tessera.cpu;

import io.tessera.tensor.ElementType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Widening half-precision rows to float32 while the SIMD kernels pack their tiles, so the float32
 * micro-kernels never see a half. Widening is exact, so the scalar twin, which widens element by
 * element with {@link ElementType#get}, obtains the very same floats.
 *
 * <p>Both types' rows are copied in bulk to a short[] first, then widened from the array:
 * bfloat16 is the upper half of a float32 (L shorts sign-extended to ints, the sign bits shifted
 * out again by the shift left by 16); float16 by a plain loop over {@link Float#float16ToFloat},
 * which C2 compiles to a vector conversion where the CPU has one (F16C, AVX-512). float16 has no Vector API
 * conversion in JDK 25 ({@code S2F} converts numbers, not bits).
 */
final class HalfRows {
    private HalfRows() {}

    private static final VectorSpecies<Integer> INTS = VectorConfig.INTS;
    private static final int L = INTS.length();
    /** L shorts: half the int species' bits. */
    private static final VectorSpecies<Short> SHORTS = VectorSpecies.of(short.class, VectorShape.forBitSize(INTS.vectorBitSize() / 2));
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** A tile's raw bf16 or fp16 bits; 16-bit elements, so its bytes are twice its length. */
    private static final ThreadScratch<short[][]> BITS = ThreadScratch.of(() -> new short[][] {new short[0]}, b -> 2L * b[0].length);

    /**
     * dst[dstOff + j·width + i] = the element at {@code base + j·rowStride + i} of {@code src} widened to
     * float32, for j < n, i < width ({@code type} is BF16 or F16; indices in elements).
     */
    static void widenRows(MemorySegment src, ElementType type, long base, long rowStride, int n, int width, float[] dst, int dstOff) {
        if (type != ElementType.BF16 && type != ElementType.F16) throw new IllegalStateException("widenRows of " + type);
        short[][] holder = BITS.get();
        short[] bits = holder[0];
        if (bits.length < n * width) {
            bits = new short[n * width];
            holder[0] = bits;
        }
        if (rowStride == width) {
            MemorySegment.copy(src, SHORT, base * 2, bits, 0, n * width);
        } else {
            for (int j = 0; j < n; j++) MemorySegment.copy(src, SHORT, (base + j * rowStride) * 2, bits, j * width, width);
        }
        if (type == ElementType.BF16) widenBfloat16(bits, n * width, dst, dstOff);
        else widenFloat16(bits, n * width, dst, dstOff);
    }

    /**
     * dst[dstOff + i] = the element at {@code index + i} of {@code src} widened to float32, for
     * i < width ({@code type} is BF16 or F16; index in elements): one row, read where it lies.
     * bfloat16 is widened from the segment in one pass (L shorts loaded, sign-extended, shifted);
     * float16 copied to the thread's bits and widened as {@link #widenRows} does.
     */
    static void widenRow(MemorySegment src, ElementType type, long index, int width, float[] dst, int dstOff) {
        if (type != ElementType.BF16) {
            if (type != ElementType.F16) throw new IllegalStateException("widenRow of " + type);
            short[][] holder = BITS.get();
            if (holder[0].length < width) holder[0] = new short[width];
            short[] bits = holder[0];
            MemorySegment.copy(src, SHORT, index * 2, bits, 0, width);
            widenFloat16(bits, width, dst, dstOff);
            return;
        }
        long at = index * 2;
        int i = 0;
        for (; i + L <= width; i += L) {
            ((IntVector) ShortVector.fromMemorySegment(SHORTS, src, at + 2L * i, ByteOrder.nativeOrder()).convertShape(VectorOperators.S2I, INTS, 0))
                    .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(dst, dstOff + i);
        }
        for (; i < width; i++) dst[dstOff + i] = ElementType.bfloat16ToFloat(src.get(SHORT, at + 2L * i));
    }

    /**
     * L shorts at a time from the array, sign-extended to ints and shifted left by 16. It replaced the
     * same conversion loading from the segment row by row (1.0 µs for a 64×64 tile against 0.56 µs
     * for the float32 tile's bulk copy; a scalar loop with Float.intBitsToFloat is not vectorized
     * by C2 and took 2.7 µs).
     */
    private static void widenBfloat16(short[] bits, int count, float[] dst, int dstOff) {
        int i = 0;
        for (; i + L <= count; i += L) {
            ((IntVector) ShortVector.fromArray(SHORTS, bits, i).convertShape(VectorOperators.S2I, INTS, 0))
                    .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(dst, dstOff + i);
        }
        for (; i < count; i++) dst[dstOff + i] = ElementType.bfloat16ToFloat(bits[i]);
    }

    /**
     * dst[i] = {@link ElementType#floatToBfloat16}(src[i]) for i < count, L lanes at a time, the
     * same operations: round half to even by adding 0x7fff plus the lowest kept bit (a carry into
     * the exponent is the correct rounding up), a NaN keeping its sign and top payload bits, made
     * quiet. The scalar method in a loop is not vectorized by C2 (its NaN branch); a BF16 output's
     * rounding cost about 1 % of a dense forward call.
     */
    static void roundToBfloat16(float[] src, int count, short[] dst) {
        int i = 0;
        for (; i + L <= count; i += L) {
            IntVector bits = FloatVector.fromArray(VectorConfig.FLOATS, src, i).reinterpretAsInts();
            IntVector high = bits.lanewise(VectorOperators.LSHR, 16);
            IntVector rounded = bits.add(0x7fff).add(high.and(1)).lanewise(VectorOperators.LSHR, 16);
            VectorMask<Integer> nan = bits.and(0x7fffffff).compare(VectorOperators.GT, 0x7f800000);
            ((ShortVector) rounded.blend(high.or(0x0040), nan).convertShape(VectorOperators.I2S, SHORTS, 0)).intoArray(dst, i);
        }
        for (; i < count; i++) dst[i] = ElementType.floatToBfloat16(src[i]);
    }

    /** A plain counted loop over arrays: the shape C2's superword pass vectorizes. */
    private static void widenFloat16(short[] bits, int count, float[] dst, int dstOff) {
        for (int i = 0; i < count; i++) dst[dstOff + i] = Float.float16ToFloat(bits[i]);
    }

    static {
        if (SHORTS.length() != L) throw new AssertionError("short species " + SHORTS + " does not match int species " + INTS);
    }
}
