/**
 * What every attention variant is to a caller and to the tools: the operator interface
 * {@link io.tessera.variant.AttentionOperator} (forward into caller tensors or a new arena,
 * {@code on(Backend)}, {@code withScale} where the function has a softmax scale, the log-sum-exp
 * where it is defined), and the registry ({@link io.tessera.variant.VariantRegistry}) through which
 * each family registers its variants with their paper, complexity, accuracy contract and a factory
 * for a default-configured operator. The families are the sub-packages; this package sits below them
 * and below {@code attention}.
 */
package io.tessera.variant;
