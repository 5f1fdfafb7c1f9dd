package io.tessera.variant.conv;

import io.tessera.variant.AccuracyContract;
import io.tessera.variant.VariantInfo;
import io.tessera.variant.VariantProvider;
import java.util.List;

/** Registers the causal convolution. */
public final class ConvolutionVariants implements VariantProvider {
    /** For {@link java.util.ServiceLoader}. */
    public ConvolutionVariants() {}

    @Override
    public List<VariantInfo> variants() {
        return List.of(new VariantInfo("causal-conv", "convolution", "van den Oord et al. 2016 (WaveNet); Poli et al. 2023 (Hyena)",
                "direct O(n·K·D); FFT O(n log² n·D) (causal divide and conquer)",
                AccuracyContract.ownDefinition("equals attention with the fixed Toeplitz matrix A[i][j] = w[(i−j)/dilation] in float64; FFT path equals the direct path within 8·log2(2n)·ε·Σ|w|·max|x|"),
                (batch, heads, n, d) -> {
                    // Four taps, one filter per channel group of two (or one group), decaying weights.
                    int groups = d % 2 == 0 ? d / 2 : 1;
                    float[][] weights = new float[groups][4];
                    for (int g = 0; g < groups; g++) for (int t = 0; t < 4; t++) weights[g][t] = (float) Math.pow(0.5, t + 1) * (g % 2 == 0 ? 1 : -1);
                    return VariantInfo.Configured.attention(CausalConvolution.of(weights, 1), batch, heads, n, d);
                }));
    }
}
