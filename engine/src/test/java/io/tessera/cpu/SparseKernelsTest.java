package io.tessera.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;

/** The Vector API row kernels of the sparse path agree with their scalar twins on random lengths and offsets. */
class SparseKernelsTest {

    @RepeatedTest(200)
    void simdDotAndAxpyMatchScalar(RepetitionInfo info) {
        SplittableRandom random = new SplittableRandom(info.getCurrentRepetition());
        int n = random.nextInt(1, 150), offA = random.nextInt(0, 9), offB = random.nextInt(0, 9);
        try (Arena arena = Arena.ofConfined()) {
            Tensor a = Tensor.randomNormal(arena, random.nextLong(), 1f, n + offA), b = Tensor.randomNormal(arena, random.nextLong(), 1f, n + offB);
            float simd = SimdSparseKernels.dot(a.segment(), offA, b.segment(), offB, n);
            float scalar = SparseKernels.scalarDot(a.segment(), offA, b.segment(), offB, n);
            double abs = 0;
            for (int c = 0; c < n; c++) abs += Math.abs(a.get(offA + c) * b.get(offB + c));
            assertThat((double) Math.abs(simd - scalar)).isLessThanOrEqualTo(2 * n * 0x1p-24 * abs);   // two summation orders
            float p = (float) random.nextGaussian();
            float[] x = new float[n], y = new float[n];
            for (int c = 0; c < n; c++) x[c] = y[c] = (float) random.nextGaussian();
            SimdSparseKernels.axpy(p, b.segment(), offB, x, n);
            SparseKernels.scalarAxpy(p, b.segment(), offB, y, n);
            // FMA rounds once, mul+add twice: they differ by at most the product's and the sum's rounding.
            for (int c = 0; c < n; c++) {
                float product = p * b.get(offB + c);
                assertThat(Math.abs(x[c] - y[c])).isLessThanOrEqualTo(Math.ulp(product) + Math.ulp(y[c]));
            }
        }
    }

    /**
     * The SIMD dot product is the fixed-order computation its javadoc describes, bit for bit:
     * per-lane FMA accumulation, the pairwise lane tree, then the scalar tail. reduceLanes(ADD)
     * failed this (its order is the implementation's choice and changes with the JIT tier).
     */
    @RepeatedTest(200)
    void simdDotIsTheFixedOrderSumBitForBit(RepetitionInfo info) {
        SplittableRandom random = new SplittableRandom(1000 + info.getCurrentRepetition());
        int n = random.nextInt(1, 300), lanes = VectorConfig.FLOATS.length();
        try (Arena arena = Arena.ofConfined()) {
            // Magnitudes spread over many binades, so that a different summation order shows in the bits.
            float[] xs = new float[n], ys = new float[n];
            for (int c = 0; c < n; c++) {
                xs[c] = (float) (random.nextGaussian() * Math.scalb(1.0, random.nextInt(-12, 13)));
                ys[c] = (float) random.nextGaussian();
            }
            Tensor a = Tensor.of(arena, xs, n), b = Tensor.of(arena, ys, n);
            float[] acc = new float[lanes];
            int c = 0;
            for (; c + lanes <= n; c += lanes) for (int l = 0; l < lanes; l++) acc[l] = Math.fma(xs[c + l], ys[c + l], acc[l]);
            for (int half = lanes / 2; half >= 1; half /= 2) {
                float[] next = new float[lanes];
                for (int l = 0; l < lanes; l++) next[l] = acc[l] + acc[(l + half) % lanes];
                acc = next;
            }
            float expected = acc[0], tail = 0;
            for (; c < n; c++) tail += xs[c] * ys[c];
            expected += tail;
            assertThat(Float.floatToRawIntBits(SimdSparseKernels.dot(a.segment(), 0, b.segment(), 0, n)))
                    .as("n=%d lanes=%d", n, lanes).isEqualTo(Float.floatToRawIntBits(expected));
        }
    }
}
