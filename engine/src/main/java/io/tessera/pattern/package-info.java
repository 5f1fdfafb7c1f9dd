/**
 * Attention patterns: a mask as a function. {@link io.tessera.pattern.Pattern} is the algebra
 * (full, causal, windows, strides, global tokens, BigBird, Longformer, Sparse Transformer, documents,
 * any predicate; {@code and}, {@code or}, {@code not}), each with an exact element rule and a
 * closed-form tile classifier, and {@code compile} turns one into a {@link io.tessera.layout.BlockLayout}.
 * Depends on {@code tensor} and {@code layout}.
 */
package io.tessera.pattern;
