/**
 * Softmax attention restricted to a pattern, run by one fused block-sparse kernel:
 * {@link io.tessera.attention.Attention} (dense or sparse; backend, scale and block sizes;
 * compiled layouts cached per call geometry), with the log-sum-exp when asked. Registers the
 * {@code dense} and {@code block-sparse} variants.
 */
package io.tessera.attention;
