package io.tessera.variant.lowrank;

import io.tessera.variant.AccuracyContract;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantProvider;
import java.util.List;

/** Registers Linformer and Nyström attention. */
public final class LowRankVariants implements VariantProvider {
    /** For {@link java.util.ServiceLoader}. */
    public LowRankVariants() {}

    @Override
    public List<VariantInfo> variants() {
        return List.of(
                new VariantInfo("linformer", "low-rank", "Wang et al. 2020, Linformer: Self-Attention with Linear Complexity",
                        "O(n·k·D) time; projections O(k·n) per head",
                        AccuracyContract.approximation("with k = n and E = F = I equals dense attention within the fused kernel's tolerance; with seeded JL projections the mean error over seeds decreases as k grows (checked: k = 8 > 32 > 128 at n = 128)"),
                        (batch, heads, n, d) -> VariantInfo.Configured.attention(Linformer.random(n, Math.min(n, 256), heads, Linformer.Sharing.PER_HEAD, 7), batch, heads, n, d),
                        VariantInfo.Gradients.backward("Linformer.backward: dq, dk, dv and the projections' dE, dF through the fused Attention.backward"
                                + " and Backend.gemm; EXACT (10× naive fp32) against float64 gradients of its definition")),
                new VariantInfo("nystrom", "low-rank", "Xiong et al. 2021, Nyströmformer",
                        "O(n·m·D + m³·iterations) time",
                        AccuracyContract.approximation("with m = n landmarks and enough pseudo-inverse iterations equals dense attention within 1e-3; the error decreases as m grows"),
                        (batch, heads, n, d) -> VariantInfo.Configured.attention(Nystromformer.withLandmarks(Math.min(n, 16)), batch, heads, n, d),
                        VariantInfo.Gradients.backward("Nystromformer.backward: the exact gradients of the computation its forward runs (the pseudo-inverse"
                                + " iterations it ran, differentiated step by step), on Backend.gemm; EXACT (10× naive fp32) against float64 gradients of that computation")));
    }
}
