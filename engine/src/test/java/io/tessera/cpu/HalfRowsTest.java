package io.tessera.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.tensor.ElementType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/**
 * The SIMD kernels' widening of half rows gives, bit for bit, what the scalar twin reads element by
 * element ({@link ElementType#get}): every one of the 65,536 bit patterns (NaN payloads, infinities,
 * subnormals, −0), in contiguous rows and in strided rows whose width is not a whole number of
 * vectors (the vector loop's tail), and twice through the same thread's buffer at different sizes.
 */
class HalfRowsTest {

    @Test
    void widensEveryBitPatternExactlyForBothTypes() {
        for (ElementType type : new ElementType[] {ElementType.BF16, ElementType.F16}) {
            for (int width : new int[] {256, 61, 7}) {
                int rows = (65536 + width - 1) / width, stride = width + 3;
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment src = arena.allocate((long) rows * stride * 2, 2);
                    for (int e = 0; e < rows * width; e++) {
                        src.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, (long) (e / width) * stride + e % width, (short) e);
                    }
                    for (long rowStride : new long[] {stride, width}) {
                        int n = rowStride == width ? rows * stride / width : rows;   // contiguous: the same bytes read as rows of width
                        int dstOff = width;   // into a panel at an offset; the floats before it stay untouched
                        float[] dst = new float[dstOff + n * width];
                        java.util.Arrays.fill(dst, 0, dstOff, -7f);
                        HalfRows.widenRows(src, type, 0, rowStride, n, width, dst, dstOff);
                        for (int i = 0; i < dstOff; i++) assertThat(dst[i]).isEqualTo(-7f);
                        for (int j = 0; j < n; j++) {
                            for (int i = 0; i < width; i++) {
                                float expected = type.get(src, j * rowStride + i);
                                assertThat(Float.floatToRawIntBits(dst[dstOff + j * width + i]))
                                        .as("%s width %d row stride %d element (%d, %d)", type, width, rowStride, j, i)
                                        .isEqualTo(Float.floatToRawIntBits(expected));
                            }
                        }
                    }
                }
            }
        }
    }

    /** widenRow (one row read where it lies, into a destination offset): the same bits for every pattern, tails included. */
    @Test
    void widensOneRowInPlaceExactlyForBothTypes() {
        for (ElementType type : new ElementType[] {ElementType.BF16, ElementType.F16}) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment src = arena.allocate(2L * (65536 + 64), 2);
                for (int e = 0; e < 65536 + 64; e++) src.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, e, (short) e);
                for (int width : new int[] {65536, 61, 7, 1}) {
                    for (long index : new long[] {0, 3, 64}) {
                        int dstOff = 5;
                        float[] dst = new float[dstOff + width + 2];
                        java.util.Arrays.fill(dst, 42f);
                        HalfRows.widenRow(src, type, index, width, dst, dstOff);
                        for (int i = 0; i < width; i++) {
                            assertThat(Float.floatToRawIntBits(dst[dstOff + i]))
                                    .as("%s width %d index %d element %d", type, width, index, i)
                                    .isEqualTo(Float.floatToRawIntBits(type.get(src, index + i)));
                        }
                        assertThat(dst[dstOff - 1]).as("before the row").isEqualTo(42f);
                        assertThat(dst[dstOff + width]).as("after the row").isEqualTo(42f);
                    }
                }
            }
        }
    }

    @Test
    void roundsToBfloat16AsTheScalarMethodForEveryHighHalfAndTheRoundingBoundaries() {
        // Every sign/exponent/top-mantissa pattern (NaNs with every payload, infinities, subnormals,
        // ±0) with the low halves that decide the rounding: 0, just below, at and above the halfway
        // point, all ones; a count that leaves a scalar tail at every vector width.
        int[] lows = {0, 0x7fff, 0x8000, 0x8001, 0xffff, 0x1234};
        int count = 65536 * lows.length + 5;
        float[] src = new float[count];
        for (int hi = 0, i = 0; hi < 65536; hi++) for (int lo : lows) src[i++] = Float.intBitsToFloat(hi << 16 | lo);
        for (int i = count - 5; i < count; i++) src[i] = Float.intBitsToFloat(0x3f808000 + i);
        short[] dst = new short[count];
        HalfRows.roundToBfloat16(src, count, dst);
        for (int i = 0; i < count; i++) {
            assertThat(dst[i]).as("bits %08x", Float.floatToRawIntBits(src[i])).isEqualTo(ElementType.floatToBfloat16(src[i]));
        }
    }
}
