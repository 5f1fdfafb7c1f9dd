package io.tessera.variant.kernelized;

import io.tessera.variant.AccuracyContract;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantProvider;
import java.util.List;

/** Registers linear attention and the Performer. */
public final class KernelizedVariants implements VariantProvider {
    /** For {@link java.util.ServiceLoader}. */
    public KernelizedVariants() {}

    @Override
    public List<VariantInfo> variants() {
        return List.of(
                new VariantInfo("linear-attention", "kernelized", "Katharopoulos et al. 2020, Transformers are RNNs",
                        "O(n·D·Dv) time, O(D·Dv) state; causal by prefix sums",
                        AccuracyContract.ownDefinition("equals φ(Q)φ(K)ᵀ row-normalized times V (causal: masked), φ = elu+1, computed densely in float64, within (n+D)·8ε·max|v| + 1e-5"),
                        (batch, heads, n, d) -> VariantInfo.Configured.attention(LinearAttention.bidirectional(), batch, heads, n, d),
                        VariantInfo.Gradients.backward("LinearAttention.backward: the exact gradients of its own definition (bidirectional and causal), recomputed in"
                                + " O(n·D·Dv) on Backend.gemm; within 10× naive fp32 (or the a-priori summation bound) of float64 analytic gradients")),
                new VariantInfo("performer", "kernelized", "Choromanski et al. 2021, Rethinking Attention with Performers (FAVOR+)",
                        "O(n·m·(D+Dv)) time, O(m·Dv) state; causal by prefix sums",
                        AccuracyContract.approximation("unbiased estimate of exp(qᵀk/√D); mean error vs dense over seeds shrinks ~1/√m (m=1024 at most half of m=64); causal equals the bidirectional formula on each prefix"),
                        (batch, heads, n, d) -> VariantInfo.Configured.attention(Performer.withFeatures(256), batch, heads, n, d),
                        VariantInfo.Gradients.backward("Performer.backward: the exact gradients of the estimator it computes (features held fixed, not of softmax"
                                + " attention), on the same core as linear attention; within 10× naive fp32 (or the a-priori summation bound) of float64 analytic gradients")));
    }
}
