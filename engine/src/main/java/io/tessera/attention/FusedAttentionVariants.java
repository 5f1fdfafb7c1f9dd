package io.tessera.attention;

import io.tessera.variant.AccuracyContract;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantProvider;
import java.util.List;

/** Registers dense and block-sparse attention, both run by the fused block-sparse kernel. */
public final class FusedAttentionVariants implements VariantProvider {
    /** For {@link java.util.ServiceLoader}. */
    public FusedAttentionVariants() {}

    static final String EXACT = "max-abs error vs the float64 masked oracle ≤ 10× the naive fp32 dense error on the same input + 1e-5;"
            + " LSE likewise; fully masked rows give 0 and LSE −∞";

    @Override
    public List<VariantInfo> variants() {
        return List.of(
                new VariantInfo("dense", "fused block-sparse", "Vaswani et al. 2017; schedule: Dao et al. 2022 (FlashAttention)",
                        "O(n²·d) time, O(threads·tile) extra memory", AccuracyContract.exact(EXACT)),
                new VariantInfo("block-sparse", "fused block-sparse", "Child et al. 2019; Zaheer et al. 2020; FlexAttention block masks (Dong et al. 2024)",
                        "O(allowed tiles·tile²·d) time, O(threads·tile) extra memory", AccuracyContract.exact(EXACT)));
    }
}
