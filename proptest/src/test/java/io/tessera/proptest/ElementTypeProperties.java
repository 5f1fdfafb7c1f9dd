package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.tensor.ElementType;
import io.tessera.tensor.Npy;
import io.tessera.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * Tensors stored as BF16 and F16: rounding against an oracle that enumerates every value of the
 * type, views and copies against the same operations on float32, wrapping, overlap, and NumPy
 * float16 files.
 */
class ElementTypeProperties {

    @Provide
    Arbitrary<Float> floats() {
        // Raw bit patterns reach every exponent, subnormals, ties (low 16 or 13 bits 0x8000/0x1000) and the overflow edge.
        Arbitrary<Float> bits = Arbitraries.integers().map(Float::intBitsToFloat);
        Arbitrary<Float> ties = Arbitraries.integers().map(i -> Float.intBitsToFloat((i & 0xffff0000) | 0x8000));
        Arbitrary<Float> f16Ties = Arbitraries.integers().between(-0x47800000, 0x47800000).map(i -> Float.intBitsToFloat((i & 0xffffe000) | 0x1000));
        Arbitrary<Float> nearMax = Arbitraries.floats().between(65000f, 66000f);
        return Arbitraries.oneOf(bits, ties, f16Ties, nearMax, Arbitraries.floats());
    }

    @Provide
    Arbitrary<ElementType> halves() { return Arbitraries.of(ElementType.BF16, ElementType.F16); }

    @Property(tries = 3000)
    void roundingIsToNearestTiesToEven(@ForAll("floats") float x, @ForAll("halves") ElementType type) {
        float expected = NearestEven.of(type).round(x);
        float got = type.round(x);
        if (Float.isNaN(expected)) {
            assertThat(got).isNaN();
        } else {
            assertThat(Float.floatToRawIntBits(got)).as("%s(%s) = %s, expected %s", type, x, got, expected).isEqualTo(Float.floatToRawIntBits(expected));
        }
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.of(arena, type, new float[] {x}, 1);
            t.set(x, 0);
            for (float stored : new float[] {Tensor.of(arena, type, new float[] {x}, 1).get(0), t.toArray()[0]}) {
                assertThat(Float.floatToIntBits(stored)).isEqualTo(Float.floatToIntBits(got));   // NaNs compare equal this way
            }
        }
    }

    @Property(tries = 200)
    void viewsAndCopiesMatchFloat32OnTheRoundedValues(@ForAll("halves") ElementType type, @ForAll @IntRange(min = 1, max = 5) int a,
                                                      @ForAll @IntRange(min = 1, max = 6) int b, @ForAll @IntRange(min = 1, max = 7) int c,
                                                      @ForAll long seed) {
        try (Arena arena = Arena.ofConfined()) {
            Tensor f32 = Tensor.randomNormal(arena, seed, 3f, a, b, c);
            Tensor half = f32.to(arena, type);
            assertThat(half.type()).isEqualTo(type);
            assertThat(half.segment().byteSize()).isEqualTo((long) a * b * c * 2);
            Tensor rounded = half.to(arena, ElementType.F32);
            float[] values = f32.toArray(), r = rounded.toArray();
            for (int i = 0; i < values.length; i++) assertThat(r[i]).isEqualTo(type.round(values[i]));
            // Views of the half tensor read what the same views of its float32 copy read.
            Tensor tv = half.transpose(0, 2).slice(1, b / 2, b), rv = rounded.transpose(0, 2).slice(1, b / 2, b);
            assertThat(tv.type()).isEqualTo(type);
            assertThat(tv.toArray()).containsExactly(rv.toArray());
            assertThat(tv.contiguous(arena).toArray()).containsExactly(rv.toArray());
            assertThat(half.select(0, a - 1).toArray()).containsExactly(rounded.select(0, a - 1).toArray());
            assertThat(half.reshape((long) a * b * c).toArray()).containsExactly(r);
            // Round trips: half → F32 → half and half → other half → … are exact where representable.
            assertThat(rounded.to(arena, type).toArray()).containsExactly(r);
            // copyFrom between types: a strided F32 view into a half tensor rounds each element; back again is exact.
            Tensor target = Tensor.zeros(arena, type, c, b - b / 2, a);
            target.copyFrom(f32.transpose(0, 2).slice(1, b / 2, b));
            float[] direct = f32.transpose(0, 2).slice(1, b / 2, b).toArray(), copied = target.toArray();
            for (int i = 0; i < direct.length; i++) assertThat(copied[i]).isEqualTo(type.round(direct[i]));
            Tensor back = Tensor.zeros(arena, c, b - b / 2, a);
            back.copyFrom(target);
            assertThat(back.toArray()).containsExactly(copied);
            Tensor otherHalf = target.to(arena, type == ElementType.BF16 ? ElementType.F16 : ElementType.BF16);
            float[] other = otherHalf.toArray();
            for (int i = 0; i < other.length; i++) assertThat(other[i]).isEqualTo(otherHalf.type().round(copied[i]));
            // Overlap is measured in bytes: a half view and a float32 wrap of the same memory do overlap.
            if (half.elementCount() >= 2) assertThat(Tensor.wrap(half.segment().asSlice(0, 4), 1).overlaps(half)).isTrue();
            if (c > 1) assertThat(half.slice(2, c - 1, c).overlaps(half.slice(2, 0, c - 1))).isFalse();
        }
    }

    @Example
    void wrapChecksHalfPrecisionAlignmentAndSize() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment memory = arena.allocate(64, 64);
            Tensor t = Tensor.wrap(memory.asSlice(2, 32), ElementType.F16, new long[] {16}, new long[] {1});
            t.set(1.5f, 15);
            assertThat(t.get(15)).isEqualTo(1.5f);
            assertThat(memory.get(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 32)).isEqualTo(Float.floatToFloat16(1.5f));
            assertThatThrownBy(() -> Tensor.wrap(memory.asSlice(1, 32), ElementType.BF16, new long[] {16}, new long[] {1}))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("is not a multiple of 2 bytes (BF16 alignment)");
            assertThatThrownBy(() -> Tensor.wrap(memory.asSlice(0, 32), ElementType.BF16, new long[] {17}, new long[] {1}))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("reaches element 16 but the segment holds 16 BF16 elements");
            assertThatThrownBy(() -> Tensor.zeros(arena, null, 4)).isInstanceOf(NullPointerException.class).hasMessage("type");
            assertThat(Tensor.zeros(arena, ElementType.BF16, 2, 3).toString()).isEqualTo("Tensor<BF16>[2, 3]");
        }
    }

    @Example
    void numpyFloat16FilesRoundTripBitForBit() throws IOException {
        Path dir = Files.createTempDirectory("tessera-f2");
        try (Arena arena = Arena.ofShared()) {
            Tensor f16 = Tensor.randomNormal(arena, 5, 100f, 3, 4, 5).to(arena, ElementType.F16);
            f16.set(Float.NaN, 0, 0, 0);
            f16.set(Float.NEGATIVE_INFINITY, 0, 0, 1);
            f16.set(0x1p-24f, 0, 0, 2);   // the smallest float16 subnormal
            Path file = dir.resolve("half.npy");
            Npy.write(file, f16.transpose(0, 2));
            assertThat(Npy.header(file).dtype()).isEqualTo(Npy.DType.FLOAT16);
            Tensor read = Npy.read(arena, file), mapped = Npy.map(arena, file);
            assertThat(read.type()).isEqualTo(ElementType.F16);
            assertThat(mapped.type()).isEqualTo(ElementType.F16);
            assertThat(read.toArray()).containsExactly(f16.transpose(0, 2).toArray());
            assertThat(mapped.toArray()).containsExactly(f16.transpose(0, 2).toArray());
            // Fortran order, and a float32 tensor written as float16 rounds to nearest even.
            Tensor f32 = Tensor.randomNormal(arena, 6, 1f, 4, 3);
            Npy.write(file, f32, Npy.DType.FLOAT16, Npy.Order.FORTRAN);
            float[] expected = f32.toArray(), got = Npy.read(arena, file).toArray();
            for (int i = 0; i < expected.length; i++) assertThat(got[i]).isEqualTo(ElementType.F16.round(expected[i]));
            // bfloat16 has no NumPy type: it is written as float32, exactly.
            Tensor bf16 = f32.to(arena, ElementType.BF16);
            Npy.write(file, bf16);
            assertThat(Npy.header(file).dtype()).isEqualTo(Npy.DType.FLOAT32);
            assertThat(Npy.read(arena, file).toArray()).containsExactly(bf16.toArray());
        } finally {
            try (var files = Files.list(dir)) {
                for (Path f : files.toList()) Files.delete(f);
            }
            Files.delete(dir);
        }
    }

    /**
     * Round-to-nearest-even by enumeration: every finite non-negative value of the type, sorted,
     * with infinity standing one ulp past the largest finite value (where IEEE rounding puts it); the
     * nearest candidate wins, a tie goes to the even bit pattern.
     */
    record NearestEven(double[] values, int[] bits, ElementType type) {
        private static final NearestEven BF16 = build(ElementType.BF16), F16 = build(ElementType.F16);

        static NearestEven of(ElementType type) { return type == ElementType.BF16 ? BF16 : F16; }

        private static NearestEven build(ElementType type) {
            int count = type == ElementType.BF16 ? 0x7f80 : 0x7c00;   // bit patterns of the finite non-negative values, in order
            double[] values = new double[count + 1];
            int[] bits = new int[count + 1];
            for (int b = 0; b < count; b++) {
                values[b] = type == ElementType.BF16 ? ElementType.bfloat16ToFloat((short) b) : Float.float16ToFloat((short) b);
                bits[b] = b;
            }
            values[count] = 2 * values[count - 1] - values[count - 2];   // one ulp past the largest finite value
            bits[count] = count;                                          // the infinity's bit pattern
            return new NearestEven(values, bits, type);
        }

        float round(float x) {
            if (Float.isNaN(x)) return Float.NaN;
            double m = Math.abs((double) x);
            int i = Arrays.binarySearch(values, m);
            int pick;
            if (i >= 0) pick = i;
            else {
                int hi = -i - 1, lo = hi - 1;
                if (hi >= values.length) pick = values.length - 1;   // beyond even the infinity stand-in
                else {
                    double dLo = m - values[lo], dHi = values[hi] - m;
                    pick = dLo < dHi ? lo : dHi < dLo ? hi : ((bits[lo] & 1) == 0 ? lo : hi);
                }
            }
            float magnitude = pick == values.length - 1 ? Float.POSITIVE_INFINITY : (float) values[pick];
            return Math.copySign(magnitude, x);
        }
    }
}
