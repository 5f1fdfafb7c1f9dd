package io.tessera.variant.tensorized;

import io.tessera.variant.AccuracyContract;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantProvider;
import java.util.List;

/** Registers block-term multi-linear attention. */
public final class TensorizedVariants implements VariantProvider {
    /** For {@link java.util.ServiceLoader}. */
    public TensorizedVariants() {}

    @Override
    public List<VariantInfo> variants() {
        return List.of(new VariantInfo("tensorized", "low-rank tensor decomposition", "Ma et al. 2019, A Tensorized Transformer for Language Modeling",
                "O(n·d·S + R·n²·C)",
                AccuracyContract.ownDefinition("a different function from softmax attention: equals SplitConcat(mean_p Σ_r g_p[r] Q_r∘K_r∘V_r)·W_O evaluated by an explicit float64 einsum, within 8(R·n² + d + S)·ε·Σ|terms|"),
                (batch, heads, n, d) -> {
                    // One sequence of n positions with model dimension d in, d out: inputs [n, d].
                    long[] shape = {n, d};
                    return new VariantInfo.Configured(TensorizedAttention.random(n, d, 4, 4, 2, d, 7), shape, shape, shape);
                }));
    }
}
