/**
 * Depthwise dilated causal convolution as an attention replacement
 * ({@link io.tessera.variant.conv.CausalConvolution}): a direct path and an FFT path, the crossover
 * between them measured on the machine at first use.
 */
package io.tessera.variant.conv;
