package io.tessera.variant.factorized;

import io.tessera.variant.AccuracyContract;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantProvider;
import java.util.List;

/** Registers the chained (factorized and axial) variants. */
public final class FactorizedVariants implements VariantProvider {
    /** For {@link java.util.ServiceLoader}. */
    public FactorizedVariants() {}

    static final VariantInfo.Gradients BACKWARD = VariantInfo.Gradients.backward(
            "ChainedAttention.backward: the fused Attention.backward chained through the steps in reverse; EXACT (10× naive fp32) against float64 gradients of the composition");

    static final String CONTRACT = "equals the dense oracle applied in sequence with each step's mask (values of step s+1 = output of step s), within the fused kernel's tolerance per step";

    @Override
    public List<VariantInfo> variants() {
        return List.of(
                new VariantInfo("factorized", "factorized", "Child et al. 2019, Generating Long Sequences with Sparse Transformers",
                        "O(n·√n·D) for stride √n (two sparse steps)", AccuracyContract.ownDefinition(CONTRACT),
                        (batch, heads, n, d) -> VariantInfo.Configured.attention(ChainedAttention.sparseTransformer((int) Math.ceil(Math.sqrt(n)), true), batch, heads, n, d),
                        BACKWARD),
                new VariantInfo("axial", "factorized", "Ho et al. 2019, Axial Attention in Multidimensional Transformers",
                        "O(n·(r+c)·D) for an r×c layout", AccuracyContract.ownDefinition(CONTRACT),
                        (batch, heads, n, d) -> {
                            int cols = (int) Math.sqrt(n);
                            while (n % cols != 0) cols--;   // the widest grid with cols ≤ √n that tiles n
                            return VariantInfo.Configured.attention(ChainedAttention.axial(n / cols, cols), batch, heads, n, d);
                        }, BACKWARD));
    }
}
