package io.tessera.cpu;

import io.tessera.tensor.ElementType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Widening half-precision rows to float32 while the SIMD kernels pack their tiles, so the float32
 * micro-kernels never see a half. Widening is exact, so the scalar twin, which widens element by
 * element with {@link ElementType#get}, obtains the very same floats.
 *
 * <p>bfloat16 is the upper half of a float32: L shorts are loaded, sign-extended to ints (the sign
 * bits are shifted out again) and shifted left by 16. float16 has no Vector API conversion in JDK 25
 * ({@code S2F} converts numbers, not bits), so its rows go through a short[] and
 * {@link Float#float16ToFloat}, which C2 compiles to a vector conversion where the CPU has one
 * (F16C, AVX-512).
 */
final class HalfRows {
    private HalfRows() {}

    private static final VectorSpecies<Float> F = VectorConfig.FLOATS;
    private static final int L = F.length();
    private static final VectorSpecies<Integer> INTS = VectorConfig.INTS;
    /** L shorts: half the float species' bits. */
    private static final VectorSpecies<Short> SHORTS = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** A tile's raw fp16 bits; 16-bit elements, so its bytes are twice its length. */
    private static final ThreadScratch<short[][]> BITS = ThreadScratch.of(() -> new short[][] {new short[0]}, b -> 2L * b[0].length);

    /**
     * dst[j·width + i] = the element at {@code base + j·rowStride + i} of {@code src} widened to
     * float32, for j < n, i < width ({@code type} is BF16 or F16; indices in elements).
     */
    static void widenRows(MemorySegment src, ElementType type, long base, long rowStride, int n, int width, float[] dst) {
        if (type == ElementType.BF16) {
            for (int j = 0; j < n; j++) widenBfloat16(src, (base + j * rowStride) * 2, width, dst, j * width);
            return;
        }
        if (type != ElementType.F16) throw new IllegalStateException("widenRows of " + type);
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
        widenFloat16(bits, n * width, dst);
    }

    private static void widenBfloat16(MemorySegment src, long byteOffset, int width, float[] dst, int to) {
        int i = 0;
        for (; i + L <= width; i += L) {
            ShortVector bits = ShortVector.fromMemorySegment(SHORTS, src, byteOffset + 2L * i, ORDER);
            ((IntVector) bits.convertShape(VectorOperators.S2I, INTS, 0)).lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats().intoArray(dst, to + i);
        }
        for (; i < width; i++) dst[to + i] = ElementType.bfloat16ToFloat(src.get(SHORT, byteOffset + 2L * i));
    }

    /** A plain counted loop over arrays: the shape C2's superword pass vectorizes. */
    private static void widenFloat16(short[] bits, int count, float[] dst) {
        for (int i = 0; i < count; i++) dst[i] = Float.float16ToFloat(bits[i]);
    }

    static {
        if (SHORTS.length() != L) throw new AssertionError("short species " + SHORTS + " does not match float species " + F);
    }
}
