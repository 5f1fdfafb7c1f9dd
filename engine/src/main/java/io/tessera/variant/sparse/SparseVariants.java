package io.tessera.variant.sparse;

import io.tessera.layout.CsrMatrix;
import io.tessera.pattern.Pattern;
import io.tessera.variant.AccuracyContract;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantProvider;
import java.util.List;

/** Registers the explicit sparse path and top-k attention. */
public final class SparseVariants implements VariantProvider {
    /** For {@link java.util.ServiceLoader}. */
    public SparseVariants() {}

    @Override
    public List<VariantInfo> variants() {
        return List.of(
                new VariantInfo("explicit-sparse", "explicit sparse (SDDMM/SpMM)", "SDDMM/SpMM formulation, e.g. Gale et al. 2020",
                        "O(nnz·D) time, O(nnz) memory",
                        AccuracyContract.exact("on any pattern's CSR equals the masked float64 oracle within Tolerance.exact, and the fused kernel"),
                        (batch, heads, n, d) -> VariantInfo.Configured.attention(
                                SparseAttention.of(CsrMatrix.fromLayout(Pattern.slidingWindow(Math.max(1, n / 8)).compile(n, n, 64, 64))), batch, heads, n, d)),
                new VariantInfo("top-k", "explicit sparse (SDDMM/SpMM)", "Gupta et al. 2021, Memory-efficient Transformers via Top-k Attention",
                        "O(n²·D) scores + O(n·k·D)",
                        AccuracyContract.exact("equals the float64 oracle masked to the chosen top-k keys (which are a valid top-k); k = n equals dense"),
                        (batch, heads, n, d) -> VariantInfo.Configured.attention(TopKAttention.withK(Math.min(n, 8)), batch, heads, n, d)));
    }
}
