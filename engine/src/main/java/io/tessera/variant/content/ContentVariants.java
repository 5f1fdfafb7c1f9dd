package io.tessera.variant.content;

import io.tessera.variant.AccuracyContract;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantProvider;
import java.util.List;

/** Registers the content-based sparse variants: LSH (Reformer) and routing (Routing Transformer) attention. */
public final class ContentVariants implements VariantProvider {
    /** For {@link java.util.ServiceLoader}. */
    public ContentVariants() {}

    static final String INDUCED = "equals the float64 oracle masked with the exported induced element mask (induce(q, k)) within Tolerance.exact;"
            + " one bucket/cluster covering the sequence equals dense attention; deterministic given seeds/centroids; rows that see no key give 0 and LSE −∞;"
            + " vs dense attention it is an approximation whose error depends on how clustered the input is";

    static VariantInfo.Gradients backward(String operator) {
        return VariantInfo.Gradients.backward(operator + ".backward: the fused kernel's backward pass over the same slot layouts with each query's combined LSE,"
                + " slot gradients summed back in float64; EXACT against float64 gradients under the induced mask (hashing/clustering not differentiated)");
    }

    @Override
    public List<VariantInfo> variants() {
        return List.of(
                new VariantInfo("lsh", "content-based sparse (fused block-sparse)", "Kitaev et al. 2020, Reformer: The Efficient Transformer",
                        "O(n·D·buckets·hashes) hashing + O(n) sort per round + O(hashes·n·chunk·D) attention",
                        AccuracyContract.exact(INDUCED),
                        (batch, heads, n, d) -> VariantInfo.Configured.attention(
                                LshAttention.of(Math.max(2, 2 * ((n + 63) / 64)), 2, Math.min(n, 32), 1), batch, heads, n, d), backward("LshAttention")),
                new VariantInfo("routing", "content-based sparse (fused block-sparse)", "Roy et al. 2021, Efficient Content-Based Sparse Attention with Routing Transformers",
                        "O(n·C·D) scoring + O(n·C) selection + O(n²·D/C) attention for C clusters",
                        AccuracyContract.exact(INDUCED),
                        (batch, heads, n, d) -> VariantInfo.Configured.attention(
                                RoutingAttention.of(RoutingCentroids.random(heads, Math.max(1, (int) Math.round(Math.sqrt(n / 4.0))), d, 1)), batch, heads, n, d), backward("RoutingAttention")));
    }
}
