package io.tessera.proptest;

import io.tessera.reference.Tolerance;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tessera.backend.Backend;
import io.tessera.variant.kernelized.LinearAttention;
import io.tessera.tensor.Tensor;
import java.lang.foreign.Arena;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/** Linear attention against its own quadratic definition, computed densely in float64. */
class LinearAttentionProperties {

    @Provide
    Arbitrary<AttentionCase> cases() { return AttentionCase.cases(300, 300, 12); }

    @Provide
    Arbitrary<String> backends() { return Arbitraries.of("scalar", "simd"); }

    static double phi(double x) { return x > 0 ? x + 1 : Math.exp(x); }

    /** out_i = Σ_j φ(q_i)·φ(k_j) v_j / Σ_j φ(q_i)·φ(k_j), over j ≤ i when causal. */
    static double[] reference(Tensor q, Tensor k, Tensor v, boolean causal) {
        int bs = (int) q.size(0), hs = (int) q.size(1), n = (int) q.size(2), nk = (int) k.size(2), d = (int) q.size(3), dv = (int) v.size(3);
        int queryHeadsPerKvHead = hs / (int) k.size(1);
        double[] out = new double[bs * hs * n * dv];
        for (int b = 0; b < bs; b++) for (int h = 0; h < hs; h++) for (int i = 0; i < n; i++) {
            double den = 0;
            double[] num = new double[dv];
            for (int j = 0; j < (causal ? i + 1 : nk); j++) {
                double w = 0;
                for (int c = 0; c < d; c++) w += phi(q.get(b, h, i, c)) * phi(k.get(b, h / queryHeadsPerKvHead, j, c));
                den += w;
                for (int c = 0; c < dv; c++) num[c] += w * v.get(b, h / queryHeadsPerKvHead, j, c);
            }
            for (int c = 0; c < dv; c++) out[((b * hs + h) * n + i) * dv + c] = num[c] / den;
        }
        return out;
    }

    @Property(tries = 80)
    void equalsItsQuadraticDefinition(@ForAll("cases") AttentionCase c, @ForAll boolean causal, @ForAll("backends") String backend) {
        int nk = causal ? c.qLen() : c.kvLen();
        try (Arena arena = Arena.ofShared()) {
            Tensor q = c.q(arena), k = Tensor.randomNormal(arena, c.seed() + 1, 1f, c.batch(), c.kvHeads(), nk, c.headDim());
            Tensor v = Tensor.randomNormal(arena, c.seed() + 2, 1f, c.batch(), c.kvHeads(), nk, c.valueDim());
            Tensor out = Tensor.zeros(arena, c.batch(), c.heads(), c.qLen(), c.valueDim());
            (causal ? LinearAttention.causal() : LinearAttention.bidirectional()).on(Backend.named(backend)).forward(q, k, v, out);
            double maxV = 0;
            for (float x : v.toArray()) maxV = Math.max(maxV, Math.abs(x));
            // Positive weights: numerator and denominator are sums of n·D positive fp32 products,
            // each off by ≤ (n+D)·ε relatively, so the ratio is off by ≤ 2(n+D)·ε·max|v|.
            double tolerance = 8 * (nk + c.headDim()) * 0x1p-24 * maxV + 1e-5;
            assertThat(Tolerance.maxError(out, reference(q, k, v, causal))).isLessThanOrEqualTo(tolerance);
        }
    }

    @Example
    void causalNeedsEqualLengths() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.zeros(arena, 1, 1, 4, 2), k = Tensor.zeros(arena, 1, 1, 5, 2);
            assertThatThrownBy(() -> LinearAttention.causal().forward(q, k, k, Tensor.zeros(arena, 1, 1, 4, 2)))
                    .hasMessageContaining("causal linear attention needs qLen == kvLen, got qLen=4, kvLen=5");
        }
    }
}
