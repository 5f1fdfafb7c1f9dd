package io.tessera.proptest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.attention.Attention;
import io.tessera.attention.AttentionResult;
import io.tessera.backend.Backend;
import io.tessera.layout.BlockLayout;
import io.tessera.pattern.Pattern;
import io.tessera.reference.DenseReference;
import io.tessera.reference.Tolerance;
import io.tessera.layout.BsrMatrix;
import io.tessera.layout.CsrMatrix;
import io.tessera.variant.sparse.SparseAttention;
import io.tessera.variant.sparse.TopKAttention;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.HashSet;
import java.util.Set;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** The SDDMM → softmax → SpMM path and top-k attention against the oracle and the fused kernel. */
class ExplicitSparseProperties {

    @Provide
    Arbitrary<Pattern> patterns() { return new PatternProperties().patterns(); }

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(40, 40, 10); }

    @Property(tries = 100)
    void csrOfAnyPatternEqualsTheOracleAndTheFusedKernel(@ForAll("cases") AttentionCase c, @ForAll("patterns") Pattern p,
                                                         @ForAll @IntRange(min = 1, max = 20) int block) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena);
            BlockLayout layout = p.compile(c.qLen(), c.kvLen(), block, block);
            CsrMatrix csr = CsrMatrix.fromLayout(layout);
            assertThat((long) csr.nonZeros()).isEqualTo(layout.allowedPairs());
            Tensor out = Tensor.zeros(arena, c.batch(), c.heads(), c.qLen(), c.valueDim()), lse = Tensor.zeros(arena, c.batch(), c.heads(), c.qLen());
            float scale = (float) (1 / Math.sqrt(c.headDim()));
            SparseAttention.forward(q, k, v, csr, scale, out, lse);
            DenseReference.Result oracle = DenseReference.attention(q, k, v, p.asMask(c.qLen(), c.kvLen()), scale);
            DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v, p.asMask(c.qLen(), c.kvLen()), scale);
            double tolerance = Tolerance.exact(q, k, v, scale, naive, oracle).output();
            assertThat(Tolerance.maxError(out, oracle.output())).isLessThanOrEqualTo(tolerance);
            assertThat(Tolerance.maxError(lse, oracle.logSumExp())).isLessThanOrEqualTo(Tolerance.exact(q, k, v, scale, naive, oracle).logSumExp());
            AttentionResult fused = Attention.sparse(p).on(Backend.named("simd")).forwardWithLse(arena, q, k, v);
            double[] fusedOut = new double[(int) fused.output().elementCount()];
            float[] f = fused.output().toArray();
            for (int i = 0; i < f.length; i++) fusedOut[i] = f[i];
            assertThat(Tolerance.maxError(out, fusedOut)).isLessThanOrEqualTo(2 * tolerance);
            // The BSR view of the same layout allows the same pairs.
            BsrMatrix bsr = BsrMatrix.fromLayout(layout);
            assertThat(bsr.blocks()).isEqualTo(layout.tileCount());
        }
    }

    @Provide
    Arbitrary<ElementType> halfTypes() { return Arbitraries.of(ElementType.BF16, ElementType.F16); }

    /**
     * Half-precision storage: q, k, v in BF16 or F16, out in F32 or that type, lse F32. Against the
     * float64 oracle on the same rounded inputs, the EXACT contract, plus one rounding of an output
     * stored in a half type ({@code Tolerance.stored}); the lse obeys EXACT unchanged.
     */
    @Property(tries = 40)
    void halfPrecisionCsrEqualsTheOracleOnRoundedInputs(@ForAll("cases") AttentionCase c, @ForAll("patterns") Pattern p,
                                                        @ForAll @IntRange(min = 1, max = 20) int block, @ForAll("halfTypes") ElementType type,
                                                        @ForAll boolean halfOutput) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena).to(arena, type), k = c.k(arena).to(arena, type), v = c.v(arena).to(arena, type);
            CsrMatrix csr = CsrMatrix.fromLayout(p.compile(c.qLen(), c.kvLen(), block, block));
            Tensor out = Tensor.zeros(arena, halfOutput ? type : ElementType.F32, c.batch(), c.heads(), c.qLen(), c.valueDim());
            Tensor lse = Tensor.zeros(arena, c.batch(), c.heads(), c.qLen());
            float scale = (float) (1 / Math.sqrt(c.headDim()));
            SparseAttention.forward(q, k, v, csr, scale, out, lse);
            DenseReference.Result oracle = DenseReference.attention(q, k, v, p.asMask(c.qLen(), c.kvLen()), scale);
            DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v, p.asMask(c.qLen(), c.kvLen()), scale);
            Tolerance tolerance = Tolerance.exact(q, k, v, scale, naive, oracle);
            GradientOracles.assertStoredWithin("explicit sparse output in " + out.type(), out, oracle.output(), tolerance.output());
            assertThat(Tolerance.maxError(lse, oracle.logSumExp())).isLessThanOrEqualTo(tolerance.logSumExp());
        }
    }

    @Property(tries = 60)
    void topKChoosesAValidTopKAndAttendsExactlyThere(@ForAll("cases") AttentionCase c, @ForAll @IntRange(min = 1, max = 40) int kTop) {
        topK(c, kTop, ElementType.F32, ElementType.F32);
    }

    /**
     * Half-precision storage: q, k, v in BF16 or F16, out in F32 or that type. The selection is a
     * top-k of the scores of the rounded inputs, and the output obeys the EXACT contract on them plus
     * one rounding of an output stored in a half type ({@code Tolerance.stored}).
     */
    @Property(tries = 30)
    void halfPrecisionTopKAttendsATopKOfTheRoundedInputs(@ForAll("cases") AttentionCase c, @ForAll @IntRange(min = 1, max = 40) int kTop,
                                                         @ForAll("halfTypes") ElementType type, @ForAll boolean halfOutput) {
        topK(c, kTop, type, halfOutput ? type : ElementType.F32);
    }

    private static void topK(AttentionCase c, int kTop, ElementType inputType, ElementType outputType) {
        int kk = Math.min(kTop, c.kvLen());
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena).to(arena, inputType), k = c.k(arena).to(arena, inputType), v = c.v(arena).to(arena, inputType);
            Tensor out = Tensor.zeros(arena, outputType, c.batch(), c.heads(), c.qLen(), c.valueDim());
            TopKAttention.withK(kk).forward(q, k, v, out);
            int queryHeadsPerKvHead = c.heads() / c.kvHeads();
            double scale = 1 / Math.sqrt(c.headDim());
            // Re-derive the choice from float64 scores: the kernel's choice must be a top-k up to fp32 rounding of the scores.
            double[][][][] scores = new double[c.batch()][c.heads()][c.qLen()][c.kvLen()];
            double slack = 0;
            for (int b = 0; b < c.batch(); b++) for (int h = 0; h < c.heads(); h++) for (int i = 0; i < c.qLen(); i++) for (int j = 0; j < c.kvLen(); j++) {
                double dot = 0, abs = 0;
                for (int x = 0; x < c.headDim(); x++) {
                    double t = (double) q.get(b, h, i, x) * k.get(b, h / queryHeadsPerKvHead, j, x);
                    dot += t;
                    abs += Math.abs(t);
                }
                scores[b][h][i][j] = dot * scale;
                slack = Math.max(slack, 4 * (c.headDim() + 2) * 0x1p-24 * abs * scale);
            }
            // Which keys did the kernel attend to? Reconstruct from the output by running the oracle on
            // the mask of the float64 top-k, breaking near-ties by the fp32 rule (lower index first).
            Set<Long> chosen = new HashSet<>();
            for (int b = 0; b < c.batch(); b++) for (int h = 0; h < c.heads(); h++) for (int i = 0; i < c.qLen(); i++) {
                double[] row = scores[b][h][i];
                Integer[] order = new Integer[c.kvLen()];
                for (int j = 0; j < order.length; j++) order[j] = j;
                java.util.Arrays.sort(order, (x, y) -> row[x] != row[y] ? Double.compare(row[y], row[x]) : Integer.compare(x, y));
                double kth = row[order[kk - 1]];
                if (kk < c.kvLen() && Math.abs(kth - row[order[kk]]) <= 2 * slack) return;   // a near-tie: either choice is a valid top-k
                for (int t = 0; t < kk; t++) chosen.add((((long) b * c.heads() + h) * c.qLen() + i) * c.kvLen() + order[t]);
            }
            DenseReference.Result oracle = DenseReference.attention(q, k, v,
                    (b, h, i, j) -> chosen.contains((((long) b * c.heads() + h) * c.qLen() + i) * c.kvLen() + j), scale);
            DenseReference.Result naive = DenseReference.naiveFloat32(q, k, v,
                    (b, h, i, j) -> chosen.contains((((long) b * c.heads() + h) * c.qLen() + i) * c.kvLen() + j), scale);
            GradientOracles.assertStoredWithin("top-k output in " + outputType, out, oracle.output(), Tolerance.exact(q, k, v, scale, naive, oracle).output());
        }
    }

    @Property(tries = 30)
    void topKWithKEqualToNIsDenseAttention(@ForAll("cases") AttentionCase c) {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = c.k(arena), v = c.v(arena), out = Tensor.zeros(arena, c.batch(), c.heads(), c.qLen(), c.valueDim());
            TopKAttention.withK(c.kvLen()).forward(q, k, v, out);
            DenseReference.Result oracle = DenseReference.attention(q, k, v), naive = DenseReference.naiveFloat32(q, k, v, (b, h, i, j) -> true, Double.NaN);
            assertThat(Tolerance.maxError(out, oracle.output())).isLessThanOrEqualTo(Tolerance.exact(q, k, v, Double.NaN, naive, oracle).output());
        }
    }

    @Example
    void badInputsNameTheParameter() {
        assertThatThrownBy(() -> TopKAttention.withK(0)).hasMessage("top-k k must be >= 1, got 0");
        assertThatThrownBy(() -> new CsrMatrix(2, 3, new int[] {0, 2, 1}, new int[] {0, 1})).hasMessageContaining("rowOffsets must run from 0 to colIndices.length=2");
        assertThatThrownBy(() -> new CsrMatrix(2, 3, new int[] {0, 2, 3}, new int[] {1, 0, 2})).hasMessageContaining("not strictly increasing");
        assertThatThrownBy(() -> new CsrMatrix(2, 3, new int[] {0, 1, 2}, new int[] {0, 3})).hasMessageContaining("colIndices[1]=3 outside [0, 3)");
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.zeros(arena, 1, 1, 4, 2);
            assertThatThrownBy(() -> TopKAttention.withK(5).forward(x, x, x, Tensor.zeros(arena, 1, 1, 4, 2))).hasMessage("top-k k=5 exceeds kvLen=4");
            assertThatThrownBy(() -> SparseAttention.forward(x, x, x, new CsrMatrix(3, 4, new int[] {0, 0, 0, 0}, new int[0]), 1f, Tensor.zeros(arena, 1, 1, 4, 2), null))
                    .hasMessageContaining("pattern is 3x4 but the call has qLen=4, kvLen=4");
        }
    }
}
